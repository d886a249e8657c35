"""The whole LOOP graph as separate processes: sim bridge, planner and learner over Fast DDS.

Two launchers from the one graph description: planner + learner, and a sim bridge that stops
after two RC-car episodes (200 steps at 10 Hz of simulated time, real time). The test checks
the action rate, that every transition reaches the learner, that a checkpoint is written and
the planner reports its version, and that everything shuts down cleanly.
"""
from __future__ import annotations

import copy
import os
import threading
import time
from pathlib import Path

import pytest
import yaml

rclpy = pytest.importorskip('rclpy')

from loop_ros.graph import node_specs  # noqa: E402
from loop_ros.launcher import find_share_dir, Launcher  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

EPISODES, EPISODE_STEPS, RATE_HZ = 2, 100, 10.0
TINY_LOOP = {
    'sac': {'hidden_sizes': [32, 32], 'batch_size': 32},
    'ensemble': {'num_members': 3, 'num_elites': 2, 'hidden_size': 32, 'num_layers': 2,
                 'max_epochs': 5},
    'arc': {'horizon': 3, 'num_samples': 16, 'num_actor_trajs': 2, 'num_particles': 1,
            'num_iterations': 2},
    'train': {'start_steps': 30, 'model_train_every': 40, 'sac_update_every': 10,
              'device': 'cpu'},
}


def tiny_params(tmp_path: Path) -> Path:
    """config/rccar.yaml with a tiny LOOP and a bridge that stops after two episodes."""
    params = yaml.safe_load((Path(find_share_dir()) / 'config' / 'rccar.yaml').read_text())
    for node in ('/**/planner', '/**/learner'):
        for group, values in TINY_LOOP.items():
            params[node]['ros__parameters'][group].update(copy.deepcopy(values))  # no aliases
    params['/**/learner']['ros__parameters'].update(checkpoint_every_steps=50)
    params['/**/sim_bridge']['ros__parameters'].update(max_episodes=EPISODES)
    path = tmp_path / 'params.yaml'
    path.write_text(yaml.safe_dump(params))
    return path


RECORDER_QOS = 100  # reliable, depth 100: the test's recorder must not be the one that drops


class Observer:
    """Records what the graph publishes. It does not subscribe to ``transition``: the bridge
    holds its first step until a transition subscriber (the learner) is matched."""

    def __init__(self) -> None:
        from loop_ros.msg import Action, EpisodeStats, PlanStats, TrainStats
        from loop_ros.ros import qos
        self.node = rclpy.create_node('test_observer')
        self.action_stamps: list[float] = []
        self.train_stats = None
        self.policy_versions: set[int] = set()
        self.episode_lengths: list[int] = []
        self.node.create_subscription(EpisodeStats, 'episode_stats',
                                      lambda m: self.episode_lengths.append(m.length),
                                      qos.EPISODE_STATS)
        self.node.create_subscription(
            Action, 'action',
            lambda m: self.action_stamps.append(m.header.stamp.sec + m.header.stamp.nanosec * 1e-9),
            RECORDER_QOS)
        self.node.create_subscription(TrainStats, 'learner/train_stats',
                                      lambda m: setattr(self, 'train_stats', m), qos.STATS)
        self.node.create_subscription(PlanStats, 'planner/plan_stats',
                                      lambda m: self.policy_versions.add(m.policy_version),
                                      qos.STATS)


def start(specs, log: Path) -> tuple[Launcher, threading.Thread, list[int]]:
    launcher = Launcher(specs, out=log.open('w'), sigint_timeout=10.0)
    code: list[int] = []
    thread = threading.Thread(target=lambda: code.append(launcher.run()), daemon=True)
    thread.start()
    return launcher, thread, code


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_graph_learns_online_and_shuts_down_cleanly(tmp_path: Path, monkeypatch) -> None:
    # three torch processes on 2 cores: one intra-op thread each, or they spin against each other
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    params = tiny_params(tmp_path)
    ckpt = tmp_path / 'checkpoints'
    common = {'params_file': str(params), 'checkpoint_dir': str(ckpt)}
    share = find_share_dir()
    rclpy.init()
    observer = Observer()
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(observer.node)
    brain, brain_thread, brain_code = start(
        node_specs('rccar', {**common, 'nodes': 'planner,learner'}, share), tmp_path / 'a.log')
    try:
        deadline = time.monotonic() + 60.0  # nodes up: the learner's stats arrive
        while observer.train_stats is None and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        assert observer.train_stats is not None, (tmp_path / 'a.log').read_text()[-3000:]
        bridge, bridge_thread, bridge_code = start(
            node_specs('rccar', {**common, 'nodes': 'sim_bridge'}, share), tmp_path / 'b.log')
        deadline = time.monotonic() + 120.0  # two 10 s episodes, with slack for a loaded CPU
        while bridge_thread.is_alive() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        assert not bridge_thread.is_alive(), 'the bridge did not finish its two episodes'
        assert bridge_code == [0], (tmp_path / 'b.log').read_text()[-3000:]
        settle = time.monotonic() + 10.0  # let the learner's last ticks report
        while time.monotonic() < settle:
            executor.spin_once(timeout_sec=0.1)
            stats = observer.train_stats
            if stats.env_steps == EPISODES * EPISODE_STEPS and stats.pending_sac_updates == 0:
                break
    finally:
        pids = [p.popen.pid for p in brain.procs if p.popen is not None]
        brain.request_shutdown()
        brain_thread.join(timeout=60.0)
        executor.shutdown()
        observer.node.destroy_node()
        rclpy.shutdown()
    log = (tmp_path / 'a.log').read_text()
    # every transition the bridge published (its episode lengths) reached the learner
    assert observer.episode_lengths == [EPISODE_STEPS] * EPISODES
    assert observer.train_stats.env_steps == EPISODES * EPISODE_STEPS, log[-3000:]
    assert observer.train_stats.rejected_transitions == 0
    assert observer.train_stats.sac_updates > 0 and observer.train_stats.model_version >= 1
    # actions at the configured rate: count the answered observations in the middle 10 s of
    # simulated time (the action stamp is the stamp of the observation it answers)
    window = [s for s in observer.action_stamps if 5.0 <= s < 15.0]
    assert abs(len(window) - 10.0 * RATE_HZ) <= 0.1 * 10.0 * RATE_HZ, len(window)
    # a checkpoint was written and the planner acted with it
    assert sorted(p.name for p in ckpt.glob('policy_*.pt'))
    assert max(observer.policy_versions) >= 1, observer.policy_versions
    # clean shutdown: exit code 0 and no process left behind
    assert brain_code == [0], log[-3000:]
    assert not any(alive(pid) for pid in pids)
