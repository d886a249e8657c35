"""The planner lifecycle node in-process, on a robot task without a gymnasium env."""
from __future__ import annotations

import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from loop_ros.msg import Action, Observation, PlanStats  # noqa: E402
from loop_ros.nodes.planner_node import PlannerNode  # noqa: E402
from loop_ros.ros import qos  # noqa: E402
from loop_ros.ros.clock import clock_msg  # noqa: E402
from loop_ros.ros.clock import ns_to_stamp  # noqa: E402
from loop_ros.ros.executor import PooledExecutor  # noqa: E402

pytestmark = pytest.mark.ros

TINY = {
    'env_id': 'example/PointRobot-v0', 'task_module': 'loop_ros.examples.point_robot',
    'control_rate_hz': 20.0, 'autostart': False, 'observation_timeout_s': 5.0,
    'sac.hidden_sizes': [16, 16], 'ensemble.num_members': 2, 'ensemble.num_elites': 1,
    'ensemble.hidden_size': 16, 'arc.num_samples': 8, 'arc.num_particles': 1,
    'arc.num_iterations': 1, 'arc.num_actor_trajs': 1, 'train.device': 'cpu',
}


@pytest.fixture
def ros(tmp_path):
    rclpy.init()
    overrides = [Parameter(k, value=v) for k, v in {
        **TINY, 'checkpoint_dir': str(tmp_path / 'ckpt')}.items()]
    planner = PlannerNode(parameter_overrides=overrides)
    peer = rclpy.create_node('peer')
    executor = PooledExecutor(2)
    executor.add_node(planner)
    executor.add_node(peer)
    yield planner, peer, executor
    executor.shutdown()
    planner.destroy_node()
    peer.destroy_node()
    rclpy.shutdown()


def spin_until(executor, condition, timeout_s=10.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end and not condition():
        executor.spin_once(timeout_sec=0.05)
    return condition()


def test_planner_lifecycle_answers_observations_on_a_robot_task(ros):
    planner, peer, executor = ros
    actions: list[Action] = []
    stats: list[PlanStats] = []
    peer.create_subscription(Action, 'action', actions.append, qos.ACTION)
    peer.create_subscription(PlanStats, 'planner/plan_stats', stats.append, qos.STATS)
    obs_pub = peer.create_publisher(Observation, 'observation', qos.OBSERVATION)

    assert planner.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert (planner.obs_dim, planner.act_dim) == (4, 2)
    assert planner.trigger_activate() == TransitionCallbackReturn.SUCCESS
    msg = Observation(data=[0.5, -0.2, 0.0, 0.1], episode=0, step=0)

    def publish_and_check() -> bool:
        msg.header.stamp = planner.get_clock().now().to_msg()
        obs_pub.publish(msg)
        return len(actions) >= 3

    assert spin_until(executor, publish_and_check), 'no actions from the planner'
    for action in actions:
        assert len(action.data) == 2 and np.all(np.abs(action.data) <= 1.0)
    # with no learner yet the planner explores uniformly at random, and says so
    assert spin_until(executor, lambda: len(stats) > 0)
    assert stats[-1].random_action and stats[-1].policy_version == 0

    # deactivate publishes the safe (zero) action
    before = len(actions)
    assert planner.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert spin_until(executor, lambda: len(actions) > before)
    assert list(actions[-1].data) == [0.0, 0.0]
    assert planner.trigger_cleanup() == TransitionCallbackReturn.SUCCESS


def test_invalid_parameter_is_rejected_with_a_reason(ros):
    planner, _, _ = ros
    result = planner.set_parameters([Parameter('arc.temperature', value=-1.0)])[0]
    assert not result.successful and 'arc.temperature' in result.reason
    result = planner.set_parameters([Parameter('arc.horizon', value=7)])[0]
    assert not result.successful  # static: shapes change only through cleanup/configure


def test_configure_fails_cleanly_on_an_unknown_task(tmp_path):
    rclpy.init()
    try:
        node = PlannerNode(parameter_overrides=[
            Parameter('env_id', value='nope/Nothing-v0'), Parameter('autostart', value=False)])
        assert node.trigger_configure() == TransitionCallbackReturn.ERROR
        node.destroy_node()
    finally:
        rclpy.shutdown()


def _offline_checkpoint(path, arc: dict) -> None:
    """A train-offline style checkpoint for the point robot (fresh weights, offline config)."""
    from loop_ros.core.agent import LoopLearner
    from loop_ros.core.checkpoint import save_checkpoint
    from loop_ros.core.config import LoopConfig, replace, to_dict
    from loop_ros.core.tasks import get_task
    import loop_ros.examples.point_robot  # noqa: F401  (registers the task)
    dotted = {k: tuple(v) if isinstance(v, list) else v for k, v in TINY.items() if '.' in k}
    cfg = replace(LoopConfig(), **dotted, **arc, **{'train.algo': 'loop-offline',
                                                    'train.start_steps': 0})
    state = LoopLearner(cfg, 4, 2, get_task('example/PointRobot-v0')).policy_state()
    save_checkpoint(path, state, kind='loop_ros.learner')


def _planner(tmp_path, **params):
    return PlannerNode(parameter_overrides=[Parameter(k, value=v) for k, v in {
        **TINY, 'checkpoint_dir': str(tmp_path / 'ckpt'), **params}.items()])


def test_an_offline_checkpoint_brings_its_planner_settings(tmp_path):
    ck = tmp_path / 'final.pt'
    _offline_checkpoint(ck, {'arc.prior': 'policy', 'arc.pessimism': 2.5,
                             'arc.policy_noise': 0.3})
    rclpy.init()
    try:
        node = _planner(tmp_path, checkpoint=str(ck))
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        arc = node.policy.cfg.arc
        assert node.policy.cfg.train.algo == 'loop-offline'
        assert (arc.prior, arc.pessimism, arc.policy_noise) == ('policy', 2.5, 0.3)
        assert not node._explore   # a trained policy: no random exploration
        node.destroy_node()
        kept = _planner(tmp_path, checkpoint=str(ck), checkpoint_planner_settings=False)
        assert kept.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert kept.policy.cfg.arc.pessimism == 0.0 and kept.policy.cfg.arc.prior == 'mixture'
        kept.destroy_node()
    finally:
        rclpy.shutdown()


@pytest.mark.parametrize('content', [None, b'not a checkpoint'])
def test_a_named_checkpoint_that_cannot_be_read_is_a_configure_error(tmp_path, content):
    ck = tmp_path / 'final.pt'
    if content is not None:
        ck.write_bytes(content)
    rclpy.init()
    try:
        node = _planner(tmp_path, checkpoint=str(ck))
        assert node.trigger_configure() == TransitionCallbackReturn.ERROR
        node.destroy_node()
    finally:
        rclpy.shutdown()


class SimTimeRig:
    """A planner on simulated time that only this test moves: a peer publishes ``/clock`` and
    observations, and collects the actions by the stamp they answer."""

    def __init__(self, tmp_path, tick_on: str) -> None:
        self.planner = _planner(tmp_path, tick_on=tick_on, use_sim_time=True,
                                future_tolerance_s=100.0)
        self.peer = rclpy.create_node('peer')
        self.answered: list[int] = []   # action stamps, in arrival order
        self.peer.create_subscription(
            Action, 'action', lambda m: self.answered.append(
                m.header.stamp.sec * 10**9 + m.header.stamp.nanosec), qos.ACTION)
        self.clock_pub = self.peer.create_publisher(Clock, '/clock', qos.CLOCK)
        self.obs_pub = self.peer.create_publisher(Observation, 'observation', qos.OBSERVATION)
        self.executor = PooledExecutor(2)
        self.executor.add_node(self.planner)
        self.executor.add_node(self.peer)
        self.set_clock(1.0)
        assert self.planner.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert self.planner.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert spin_until(self.executor, lambda: self.obs_pub.get_subscription_count() == 1)
        self.settle()

    def set_clock(self, seconds: float) -> None:
        ns = round(seconds * 1e9)
        self.clock_pub.publish(clock_msg(ns))
        assert spin_until(self.executor,
                          lambda: self.planner.get_clock().now().nanoseconds == ns)

    def observe(self, seconds: float) -> int:
        ns = round(seconds * 1e9)
        self.obs_pub.publish(Observation(data=[0.5, -0.2, 0.0, 0.1], episode=0, step=0,
                                         header=Header(stamp=ns_to_stamp(ns))))
        return ns

    def answer(self, seconds: float) -> int:
        """Publish an observation (again, should best effort lose it) until it is answered."""
        ns = self.observe(seconds)
        end = time.monotonic() + 10.0
        while ns not in self.answered and time.monotonic() < end:
            if spin_until(self.executor, lambda: ns in self.answered, timeout_s=0.3):
                break
            self.observe(seconds)
        assert ns in self.answered, f'observation at {seconds} s never answered'
        return ns

    def settle(self, seconds: float = 0.3) -> None:
        spin_until(self.executor, lambda: False, timeout_s=seconds)

    def close(self) -> None:
        self.executor.shutdown()
        self.planner.destroy_node()
        self.peer.destroy_node()


@pytest.fixture
def sim_time_rig(tmp_path):
    rclpy.init()
    rigs: list[SimTimeRig] = []   # one per test: two planners would share the topics
    yield lambda tick_on: rigs.append(SimTimeRig(tmp_path, tick_on)) or rigs[-1]
    for rig in rigs:
        rig.close()
    rclpy.shutdown()


def test_tick_on_observation_answers_without_waiting_for_the_timer(sim_time_rig):
    """Simulated time stands still, so the timer never fires: with ``tick_on: observation``
    each observation a period apart is answered, one closer than 3/4 period is not."""
    rig = sim_time_rig('observation')
    before = len(rig.answered)
    stamps = [rig.answer(1.0 + k * 0.05) for k in range(1, 5)]   # 20 Hz: one period apart
    too_soon = rig.observe(1.2 + 0.02)
    rig.settle()
    assert rig.answered[before:] == stamps and too_soon not in rig.answered


def test_tick_on_timer_waits_for_the_timer(sim_time_rig):
    """The same observations with ``tick_on: timer`` (the default): no answer while
    simulated time stands still."""
    rig = sim_time_rig('timer')
    before = len(rig.answered)
    for k in range(1, 4):
        rig.observe(1.0 + k * 0.05)
        rig.settle(0.2)
    assert rig.answered[before:] == []


def test_tick_on_observation_timer_only_stands_in_when_observations_stop(sim_time_rig):
    """Observations then /clock each period (the sim bridge's order): one action per
    observation, none from the timer; observations stop: the timer acts again."""
    rig = sim_time_rig('observation')
    before = len(rig.answered)
    t = 1.0
    stamps = []
    for _ in range(6):
        t += 0.05
        stamps.append(rig.answer(t))
        rig.set_clock(t)
    rig.settle(0.2)
    assert rig.answered[before:] == stamps   # each answered once, by its observation
    before = len(rig.answered)
    for _ in range(4):   # no more observations: 0.2 s of clock, 1.5 periods is 0.075 s
        t += 0.05
        rig.set_clock(t)
        rig.settle(0.1)
    assert len(rig.answered) - before >= 2
    assert set(rig.answered[before:]) == {stamps[-1]}   # the newest state, re-planned
