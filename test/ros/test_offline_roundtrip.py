"""Rosbag round trip through ROS: record the RC-car graph, train offline, deploy the planner.

1. ``loop-ros launch rccar nodes:=sim_bridge,planner record:=BAG``: with no learner the planner
   acts uniformly at random; the recorder writes every Transition to a bag;
2. ``train_offline`` on that bag (ensemble + CRR), as ``loop-ros train-offline`` does;
3. the same graph in deploy mode on the offline checkpoint (``mode:=deploy
   checkpoint:=final.pt``: no learner is started, the planner acts with the plan mean and never
   explores): offline LOOP must drive the car better than the random actions did.
"""
from __future__ import annotations

import copy
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

rclpy = pytest.importorskip('rclpy')

from loop_ros.graph import node_specs  # noqa: E402
from loop_ros.launcher import find_share_dir, Launcher  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

ENV = 'loop_ros/RCCarCircle-v0'
RECORD_EPISODES, DEPLOY_EPISODES, EPISODE_STEPS = 15, 6, 100
CRR_UPDATES = 5000
"""1500 random transitions and 5000 CRR updates: on 2026-12-02, 6 datasets made like the
recording (seeds 0-5, without ROS) gave offline LOOP returns of -16 to -129 per episode against
random driving's -467 on average. With the earlier 600 transitions and 2000 updates the CRR
policy was sometimes worse than random (-664, -1040), and LOOP, searching around it, stayed
there."""
SMALL = {
    'sac': {'hidden_sizes': [64, 64]},
    'ensemble': {'num_members': 5, 'num_elites': 3, 'hidden_size': 64, 'num_layers': 3},
    'train': {'device': 'cpu'},
}


def params_file(tmp_path: Path, name: str, episodes: int) -> Path:
    params = yaml.safe_load((Path(find_share_dir()) / 'config' / 'rccar.yaml').read_text())
    planner = params['/**/planner']['ros__parameters']
    for group, values in SMALL.items():
        planner[group].update(copy.deepcopy(values))
    planner['deadline_fraction'] = 1.0
    bridge = params['/**/sim_bridge']['ros__parameters']
    bridge.update(max_episodes=episodes, action_timeout_s=1.0, wait_for_subscriber_s=30.0)
    path = tmp_path / f'{name}.yaml'
    path.write_text(yaml.safe_dump(params))
    return path


class EpisodeReturns:
    def __init__(self) -> None:
        from loop_ros.msg import EpisodeStats
        from loop_ros.ros import qos
        self.node = rclpy.create_node('test_episode_returns')
        self.returns: list[float] = []
        self.safe_actions: list[int] = []
        self.node.create_subscription(EpisodeStats, 'episode_stats', self._on_stats,
                                      qos.EPISODE_STATS)

    def _on_stats(self, msg) -> None:
        self.returns.append(msg.episode_return)
        self.safe_actions.append(int(msg.safe_actions))

    def clear(self) -> None:
        self.returns.clear()
        self.safe_actions.clear()

    def driven(self) -> list[float]:
        """Returns of the episodes the planner drove: at most 10% of the steps got the bridge's
        safe action (zero) because no fresh action came: a planner stalled by a loaded machine
        says nothing about the policy. (In deploy the bridge waits for the planner alone,
        ``wait_for_transition_subscriber`` false, so the first episode starts once it is
        there.)"""
        return [r for r, n in zip(self.returns, self.safe_actions) if n <= EPISODE_STEPS // 10]


def run_graph(args: dict, log: Path, observer: EpisodeReturns, executor, timeout: float,
              real_time_factor: float = 4.0) -> int:
    args = {**args, 'real_time_factor': str(real_time_factor)}   # sim s per wall s
    launcher = Launcher(node_specs('rccar', args, find_share_dir()), out=log.open('w'),
                        sigint_timeout=10.0)
    code: list[int] = []
    thread = threading.Thread(target=lambda: code.append(launcher.run()), daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout   # the bridge stops after its episodes, and with it
    try:                                    # the graph (it is a required node)
        while thread.is_alive() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
    finally:
        launcher.request_shutdown()
        thread.join(timeout=60.0)
    assert code, f'launcher did not stop: {log.read_text()[-2000:]}'
    return code[0]


def test_record_train_offline_deploy(tmp_path: Path, monkeypatch) -> None:
    from loop_ros.core.agent import OFFLINE_PRESETS
    from loop_ros.core.config import LoopConfig, OfflineConfig, replace
    from loop_ros.io import read_transitions
    from loop_ros.offline.training import train_offline

    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    bag = tmp_path / 'random_drive'
    # the test's own context must outlive any stray SIGINT (rclpy's handler would shut it down)
    from rclpy.signals import SignalHandlerOptions
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    observer = EpisodeReturns()
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(observer.node)
    try:
        code = run_graph({'params_file': str(params_file(tmp_path, 'rec', RECORD_EPISODES)),
                          'nodes': 'sim_bridge,planner', 'record': str(bag),
                          'checkpoint_dir': str(tmp_path / 'none')},
                         tmp_path / 'record.log', observer, executor, timeout=150.0,
                         real_time_factor=8.0)   # random actions: the planner is quick
        assert code == 0, (tmp_path / 'record.log').read_text()[-3000:]
        assert len(observer.returns) == RECORD_EPISODES
        random_returns = observer.driven()
        recorded_safe = list(observer.safe_actions)

        data = read_transitions(bag)   # the bridge's last messages may still be in flight
        assert 0.9 * RECORD_EPISODES * EPISODE_STEPS <= len(data) <= RECORD_EPISODES * EPISODE_STEPS
        cfg = replace(LoopConfig(), **OFFLINE_PRESETS, **{
            f'{g}.{k}': tuple(v) if isinstance(v, list) else v
            for g, values in SMALL.items() for k, v in values.items()})
        threads = torch.get_num_threads()
        torch.set_num_threads(1)   # as `loop-ros train-offline --threads 1`: two threads on a
        try:                       # loaded 2-core machine ran 5x slower
            result = train_offline([bag], cfg, OfflineConfig(updates=CRR_UPDATES, batch_size=128,
                                                             model_epochs=40, seed=0),
                                   tmp_path / 'offline', env_id=ENV, progress=False,
                                   log=lambda s: None)
        finally:
            torch.set_num_threads(threads)
        ens = result.metrics['ensemble']
        assert ens['heldout_obs_mse'] < ens['no_change_obs_mse']

        observer.clear()
        code = run_graph({'params_file': str(params_file(tmp_path, 'deploy', DEPLOY_EPISODES)),
                          'mode': 'deploy', 'checkpoint': str(result.checkpoint),
                          'checkpoint_dir': str(tmp_path / 'none')},
                         tmp_path / 'deploy.log', observer, executor, timeout=150.0)
        log = (tmp_path / 'deploy.log').read_text()
        assert code == 0, log[-3000:]
        assert 'offline checkpoint: planning with its settings' in log
        assert 'mode deploy' in log and 'started learner' not in log
        assert 'stepping anyway' not in log   # the bridge waited for the planner, not a learner
        assert len(observer.returns) == DEPLOY_EPISODES, log[-3000:]
        loop_returns = observer.driven()
        deployed_safe = list(observer.safe_actions)
    finally:
        executor.shutdown()
        observer.node.destroy_node()
        rclpy.shutdown()
    # Until 2026-12-02 the planner was starved in most runs: rclpy's MultiThreadedExecutor spun
    # on a queued callback (loop_ros/ros/executor.py), its /clock fell seconds behind, and the
    # bridge applied the safe action in 30-100% of the steps; the test could only xfail. With
    # PooledExecutor the planner drives (nearly) every episode, and a starved one fails here.
    assert len(random_returns) >= RECORD_EPISODES - 2, \
        f'the planner drove {len(random_returns)} of {RECORD_EPISODES} recorded episodes ' \
        f'(safe actions per episode: {recorded_safe})'
    assert len(loop_returns) >= DEPLOY_EPISODES // 2, \
        f'offline LOOP drove only {len(loop_returns)} of {DEPLOY_EPISODES} episodes in time ' \
        f'(safe actions per episode: {deployed_safe})'
    print(f'safe actions per episode: recorded {recorded_safe}, deployed {deployed_safe}')
    print(f'random {np.mean(random_returns):.1f} (median {np.median(random_returns):.1f}), '
          f'offline LOOP {np.mean(loop_returns):.1f} (median {np.median(loop_returns):.1f})')
    assert all(np.isfinite(loop_returns)), loop_returns
    # issue #10: a typical episode (the median) 25% better than random driving's, the mean too
    median_random = np.median(random_returns)
    assert np.median(loop_returns) > median_random + 0.25 * abs(median_random), \
        (loop_returns, random_returns)
    assert np.mean(loop_returns) > np.mean(random_returns), (loop_returns, random_returns)
