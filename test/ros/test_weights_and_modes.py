"""Weights between learner and planner: the topic route, model signatures, restarts, deploy mode.

In-process nodes on the point robot (no gymnasium env); the last test runs learner and planner
as separate launcher processes that exchange weights only over ``policy_weights``.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from loop_ros.core.checkpoint import checkpoint_bytes, save_checkpoint  # noqa: E402
from loop_ros.core.config import ConfigError  # noqa: E402
from loop_ros.msg import Observation, PlanStats, PolicyUpdate, PolicyWeights  # noqa: E402
from loop_ros.nodes.planner_node import PlannerNode  # noqa: E402
from loop_ros.ros import qos  # noqa: E402
from loop_ros.ros.conversions import transition_msg  # noqa: E402
from loop_ros.ros.executor import PooledExecutor  # noqa: E402

pytestmark = pytest.mark.ros

TINY = {
    'env_id': 'example/PointRobot-v0', 'task_module': 'loop_ros.examples.point_robot',
    'sac.hidden_sizes': [16, 16], 'ensemble.num_members': 2, 'ensemble.num_elites': 1,
    'ensemble.hidden_size': 16, 'ensemble.num_layers': 2, 'train.device': 'cpu',
}
PLANNER = {**TINY, 'control_rate_hz': 20.0, 'autostart': False, 'observation_timeout_s': 5.0,
           'arc.num_samples': 8, 'arc.num_particles': 1, 'arc.num_iterations': 1,
           'arc.num_actor_trajs': 1}
LEARNER = {**TINY, 'ensemble.max_epochs': 2, 'train.start_steps': 40,
           'train.model_train_every': 40, 'train.sac_update_every': 10,
           'checkpoint_every_steps': 40, 'updates_per_tick': 50, 'tick_period_s': 0.02}


def _params(values: dict) -> list[Parameter]:
    return [Parameter(k, value=v) for k, v in values.items()]


def _trained_checkpoint(path: Path, version: int, env_steps: int = 500, **cfg) -> str:
    """A learner checkpoint of the point robot past start_steps; returns its model signature."""
    from loop_ros.core.agent import LoopLearner
    from loop_ros.core.config import LoopConfig, replace
    from loop_ros.core.tasks import get_task
    import loop_ros.examples.point_robot  # noqa: F401  (registers the task)
    dotted = {k: tuple(v) if isinstance(v, list) else v for k, v in {**TINY, **cfg}.items()
              if '.' in k}
    learner = LoopLearner(replace(LoopConfig(), **dotted), 4, 2,
                          get_task('example/PointRobot-v0'))
    learner.env_steps = env_steps
    state = learner.policy_state()
    state['version'] = version
    save_checkpoint(path, state, kind='loop_ros.learner')
    return learner.model_signature


def _weights_msg(path: Path, version: int, signature: str, env_steps: int = 500,
                 explore: bool = False, data: bytes | None = None) -> PolicyWeights:
    msg = PolicyWeights(version=version, source='/test_learner', model_signature=signature,
                        env_steps=env_steps, explore=explore)
    msg.checkpoint = checkpoint_bytes(path) if data is None else data
    return msg


@pytest.fixture
def graph(tmp_path, feed_observations):
    """An activated learning planner, a peer node and a 2-thread executor."""
    rclpy.init()
    planner = PlannerNode(parameter_overrides=_params(
        {**PLANNER, 'checkpoint_dir': str(tmp_path / 'planner_ckpt')}))
    peer = rclpy.create_node('peer')
    executor = PooledExecutor(2)
    executor.add_node(planner)
    executor.add_node(peer)
    assert planner.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert planner.trigger_activate() == TransitionCallbackReturn.SUCCESS
    obs_pub = peer.create_publisher(Observation, 'observation', qos.OBSERVATION)
    stats: list[PlanStats] = []
    peer.create_subscription(PlanStats, 'planner/plan_stats', stats.append, qos.STATS)

    def spin(condition, timeout_s=15.0) -> bool:
        return feed_observations(executor, obs_pub, planner, condition, timeout_s, spin_s=0.05)

    yield planner, peer, spin, stats
    executor.shutdown()
    planner.destroy_node()
    peer.destroy_node()
    rclpy.shutdown()


def test_weights_over_the_topic_are_checked_then_used(graph, tmp_path):
    planner, peer, spin, stats = graph
    weights = peer.create_publisher(PolicyWeights, 'policy_weights', qos.POLICY_UPDATE)
    updates = peer.create_publisher(PolicyUpdate, 'policy_update', qos.POLICY_UPDATE)
    assert spin(lambda: len(stats) > 2) and stats[-1].random_action   # no weights yet

    # another model (wider actor): refused by its signature, nothing is loaded
    wide = tmp_path / 'wide.pt'
    wide_sig = _trained_checkpoint(wide, 3, **{'sac.hidden_sizes': [32, 32]})
    assert wide_sig != planner.policy.model_signature
    weights.publish(_weights_msg(wide, 3, wide_sig))
    assert spin(lambda: planner.rejected_weights == 1)
    # the right signature but bytes that are no checkpoint: an error, still nothing loaded
    good = tmp_path / 'good.pt'
    sig = _trained_checkpoint(good, 3)
    weights.publish(_weights_msg(good, 3, sig, data=b'garbage'))
    spin(lambda: False, timeout_s=1.0)
    assert planner.policy.version == 0 and planner._requested_version is None

    # the learner's folder is not readable here: the announcement names a path that does not
    # exist, the same version arrives as bytes and is used
    updates.publish(PolicyUpdate(version=3, path='/nonexistent/policy_000003.pt',
                                 env_steps=500, explore=False))
    weights.publish(_weights_msg(good, 3, sig))
    assert spin(lambda: planner.policy.version == 3), 'weights from the topic never swapped in'
    assert spin(lambda: stats[-1].policy_version == 3 and not stats[-1].random_action)

    # a learner restarted without its state says "explore" again: a planner that acted on
    # trained weights keeps planning with them
    updates.publish(PolicyUpdate(version=0, path='', env_steps=0, explore=True))
    spin(lambda: False, timeout_s=1.0)
    assert not planner._explore and stats[-1].policy_version == 3
    assert not stats[-1].random_action


def test_a_file_that_is_not_the_announced_version_is_not_used(graph, tmp_path):
    planner, peer, spin, stats = graph
    updates = peer.create_publisher(PolicyUpdate, 'policy_update', qos.POLICY_UPDATE)
    stale = tmp_path / 'policy_000004.pt'
    _trained_checkpoint(stale, version=2)    # same path, another learner's older file
    updates.publish(PolicyUpdate(version=4, path=str(stale), env_steps=500, explore=False))
    spin(lambda: False, timeout_s=1.5)
    assert planner.policy.version == 0
    _trained_checkpoint(stale, version=4)
    updates.publish(PolicyUpdate(version=4, path=str(stale), env_steps=500, explore=False))
    assert spin(lambda: planner.policy.version == 4), 'the matching file was not loaded'


def test_deploy_mode_needs_a_checkpoint_and_takes_no_weights(tmp_path):
    rclpy.init()
    try:
        empty = PlannerNode(parameter_overrides=_params(
            {**PLANNER, 'mode': 'deploy', 'checkpoint_dir': str(tmp_path / 'none')}))
        assert empty.trigger_configure() == TransitionCallbackReturn.ERROR
        empty.destroy_node()

        ckpt_dir = tmp_path / 'ckpt'
        _trained_checkpoint(ckpt_dir / 'policy_000007.pt', 7)
        node = PlannerNode(parameter_overrides=_params(
            {**PLANNER, 'mode': 'deploy', 'checkpoint_dir': str(ckpt_dir)}))
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.policy.version == 7 and not node._explore
        topics = {sub.topic_name for sub in node.subscriptions}
        assert '/observation' in topics and not topics & {'/policy_update', '/policy_weights'}
        node.destroy_node()
    finally:
        rclpy.shutdown()


def _feed(node, n: int, start: int = 0, source: str = '/robot') -> None:
    rng = np.random.default_rng(start)
    stamp = rclpy.time.Time().to_msg()
    for i in range(start, start + n):
        obs = rng.normal(size=4)
        node._on_transition(transition_msg(obs, rng.uniform(-1, 1, 2), obs + 0.1, 0.5, 0.0,
                                           False, (i + 1) % 20 == 0, stamp, 'base_link',
                                           i // 20, i % 20, source=source))


def _wait(condition, timeout_s=60.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end and not condition():
        time.sleep(0.05)
    return condition()


def test_a_restarted_learner_resumes_and_keeps_the_planners_planning(tmp_path):
    from loop_ros.nodes.learner_node import LearnerNode, STATE_FILE

    class Probe(LearnerNode):
        def __init__(self, **kwargs) -> None:
            self.announced: list[tuple[int, bool, str]] = []
            super().__init__(**kwargs)

        def _announce(self, path: str) -> None:
            self.announced.append((self.version, self.explore, path))
            super()._announce(path)

    params = _params({**LEARNER, 'checkpoint_dir': str(tmp_path / 'ckpt')})
    rclpy.init()
    try:
        first = Probe(parameter_overrides=params)
        try:
            assert first.announced == [(0, True, '')]
            _feed(first, 50)
            assert _wait(lambda: first.version >= 1)
            _feed(first, 50, start=50)
            assert _wait(lambda: first.version >= 2 and first.learner.sac.num_updates > 0)
        finally:
            first.close()       # a clean stop stores what was queued and saves the state
            first.destroy_node()
        steps, version = first.learner.env_steps, first.version
        updates = first.learner.sac.num_updates
        assert steps == 100 and (tmp_path / 'ckpt' / STATE_FILE).is_file()

        second = Probe(parameter_overrides=params)
        try:
            learner = second.learner
            assert (learner.env_steps, len(learner.buffer)) == (100, 100)
            assert learner.sac.num_updates == updates and second.version == version
            # the newest checkpoint is announced again, not "version 0, explore"
            v, explore, path = second.announced[0]
            assert (v, explore) == (version, False) and Path(path).is_file()
            # and it carries on: versions keep counting up, new producers get new chains
            _feed(second, 40, start=100, source='/robot')
            assert _wait(lambda: second.version > version)
            assert second._streams['/robot'] == 1
        finally:
            second.close()
            second.destroy_node()
    finally:
        rclpy.shutdown()


def test_a_learner_state_it_cannot_use_is_a_clear_error(tmp_path):
    from loop_ros.nodes.learner_node import LearnerNode, STATE_FILE

    state = tmp_path / 'ckpt' / STATE_FILE
    state.parent.mkdir()
    state.write_bytes(b'\x00' * 100)   # a file cut short by a crash of the disk
    rclpy.init()
    try:
        with pytest.raises(ConfigError, match=f'cannot resume from {state}.*resume:=false'):
            LearnerNode(parameter_overrides=_params(
                {**LEARNER, 'checkpoint_dir': str(state.parent)}))
        # another model's state: refused by its signature
        other = LearnerNode(parameter_overrides=_params(
            {**LEARNER, 'checkpoint_dir': str(tmp_path / 'other'),
             'sac.hidden_sizes': [32, 32]}))
        try:
            _feed(other, 10)
        finally:
            other.close()
            other.destroy_node()
        with pytest.raises(ConfigError, match='written for another model'):
            LearnerNode(parameter_overrides=_params(
                {**LEARNER, 'checkpoint_dir': str(tmp_path / 'other')}))
        fresh = LearnerNode(parameter_overrides=_params(
            {**LEARNER, 'checkpoint_dir': str(tmp_path / 'other'), 'resume': False}))
        assert fresh.learner.env_steps == 0
        fresh.close()
        fresh.destroy_node()
    finally:
        rclpy.shutdown()


@pytest.mark.slow
def test_planner_and_learner_in_separate_processes_share_no_folder(tmp_path):
    """Learner (+ sim bridge) in one launcher, the planner in another; distinct checkpoint
    folders and ``weights_route: topic``: the planner plans on the learner's weights."""
    import json

    import yaml

    from loop_ros.graph import node_specs
    from loop_ros.launcher import find_share_dir, Launcher

    params = yaml.safe_load((Path(find_share_dir()) / 'config' / 'rccar.yaml').read_text())
    small = {'sac': {'hidden_sizes': [32, 32]},
             'ensemble': {'num_members': 3, 'num_elites': 2, 'hidden_size': 32,
                          'num_layers': 2, 'max_epochs': 3},
             'train': {'device': 'cpu', 'start_steps': 150, 'model_train_every': 150}}
    for node in ('planner', 'learner'):
        section = params[f'/**/{node}']['ros__parameters']
        for group, values in small.items():
            section.setdefault(group, {}).update(values)
    params['/**/planner']['ros__parameters']['weights_route'] = 'topic'
    params['/**/learner']['ros__parameters']['checkpoint_every_steps'] = 150
    params['/**/sim_bridge']['ros__parameters']['wait_for_subscriber_s'] = 0.0
    params_file = tmp_path / 'params.yaml'
    # no shared objects (they would become YAML aliases, which rcl refuses)
    params_file.write_text(yaml.safe_dump(json.loads(json.dumps(params))))
    common = {'params_file': str(params_file), 'real_time_factor': '4'}
    learner_dir, planner_dir = tmp_path / 'workstation', tmp_path / 'robot'

    rclpy.init()
    observer = rclpy.create_node('observer')
    stats: list[PlanStats] = []
    observer.create_subscription(PlanStats, 'planner/plan_stats', stats.append, qos.STATS)
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(observer)
    logs = [(tmp_path / 'workstation.log').open('w'), (tmp_path / 'robot.log').open('w')]
    launchers = [
        Launcher(node_specs('rccar', {**common, 'nodes': 'sim_bridge,learner',
                                      'checkpoint_dir': str(learner_dir)}, find_share_dir()),
                 out=logs[0], sigint_timeout=10.0),
        Launcher(node_specs('rccar', {**common, 'nodes': 'planner',
                                      'checkpoint_dir': str(planner_dir)}, find_share_dir()),
                 out=logs[1], sigint_timeout=10.0),
    ]
    threads = [threading.Thread(target=launcher.run, daemon=True) for launcher in launchers]
    for thread in threads:
        thread.start()
    try:
        end = time.monotonic() + 150.0
        while time.monotonic() < end and all(t.is_alive() for t in threads) and not (
                stats and stats[-1].policy_version >= 1 and not stats[-1].random_action):
            executor.spin_once(timeout_sec=0.1)
    finally:
        for launcher in launchers:
            launcher.request_shutdown()
        for thread in threads:
            thread.join(timeout=60.0)
        executor.shutdown()
        observer.destroy_node()
        rclpy.shutdown()
        for log in logs:
            log.close()
    robot_log = (tmp_path / 'robot.log').read_text()
    assert stats and stats[-1].policy_version >= 1, robot_log[-3000:]
    assert not stats[-1].random_action and np.isfinite(stats[-1].elite_return)
    assert list(learner_dir.glob('policy_*.pt')), 'the learner wrote no checkpoint'
    assert not list(planner_dir.glob('*')), 'the planner must not need a shared folder'
    assert 'policy version 1' in robot_log


@pytest.mark.slow
def test_a_learner_killed_with_sigkill_recovers_every_flushed_transition(tmp_path):
    """``kill -9`` between two checkpoints: the journal brings back what the state lacks."""
    import os
    import signal
    import subprocess
    import sys

    import yaml

    from loop_ros.core.checkpoint import load_checkpoint
    from loop_ros.launcher import child_env
    from loop_ros.msg import TrainStats, Transition
    from loop_ros.nodes.learner_node import LearnerNode, STATE_FILE

    ckpt = tmp_path / 'ckpt'
    # the state is written once, when start_steps (40) is crossed: somewhere in 40..60, as the
    # ticks split the first batch; the next periodic write is due 100 transitions after that
    params = {**LEARNER, 'checkpoint_dir': str(ckpt), 'train.model_train_every': 1000,
              'checkpoint_every_steps': 100, 'journal_flush_s': 0.2}
    params_file = tmp_path / 'learner.yaml'
    # dotted names, as the launcher's inline params files
    params_file.write_text(yaml.safe_dump({'/**': {'ros__parameters': params}}))
    log = (tmp_path / 'learner.log').open('w')
    proc = subprocess.Popen([sys.executable, '-m', 'loop_ros.nodes.learner_node', '--ros-args',
                             '--params-file', str(params_file)], env=child_env(),
                            stdout=log, stderr=subprocess.STDOUT)
    rclpy.init()
    peer = rclpy.create_node('feeder')
    stats: list[TrainStats] = []
    peer.create_subscription(TrainStats, 'learner/train_stats', stats.append, qos.STATS)
    pub = peer.create_publisher(Transition, 'transition', qos.TRANSITION)
    rng = np.random.default_rng(0)

    def send(start: int, n: int) -> None:
        for i in range(start, start + n):
            obs = rng.normal(size=4)
            pub.publish(transition_msg(obs, rng.uniform(-1, 1, 2), obs + 0.1, 0.5, 0.0, False,
                                       False, peer.get_clock().now().to_msg(), 'base_link', 0,
                                       i, source='/robot'))

    def spin_until(condition, timeout_s=60.0) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and proc.poll() is None and not condition():
            rclpy.spin_once(peer, timeout_sec=0.05)
        return condition()

    try:
        assert spin_until(lambda: pub.get_subscription_count() > 0), 'learner never subscribed'
        send(0, 60)
        assert spin_until(lambda: (ckpt / STATE_FILE).is_file() and stats
                          and stats[-1].env_steps == 60), log.name
        send(60, 30)   # no state write is due: only the journal has these
        assert spin_until(lambda: stats and stats[-1].env_steps == 90)
        time.sleep(1.0)   # several journal flushes
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        peer.destroy_node()
        rclpy.shutdown()
        log.close()
    saved = load_checkpoint(ckpt / STATE_FILE, kind='loop_ros.learner_state')
    in_state = int(saved['learner']['env_steps'])
    assert 40 <= in_state < 90

    rclpy.init()
    try:
        node = LearnerNode(parameter_overrides=_params(params))
        try:
            assert node.learner.env_steps == 90 and len(node.learner.buffer) == 90
            assert node.recovered == 90 - in_state
            data = node.learner.buffer.all()
            assert np.allclose(data.reward.cpu().numpy(), 0.5)
        finally:
            node.close()
            node.destroy_node()
    finally:
        rclpy.shutdown()
