"""sim_bridge node, in-process: clock, transitions, actions, safe action, bad input.

A tiny deterministic env (registered here) echoes the raw applied action in its observation, so
the tests can see the rescaling from the normalised [-1, 1] action to its Box bounds.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
gymnasium = pytest.importorskip('gymnasium')

from gymnasium.spaces import Box  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from rclpy.qos import ReliabilityPolicy  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402

from loop_ros.msg import Action  # noqa: E402
from loop_ros.msg import EpisodeStats  # noqa: E402
from loop_ros.msg import Observation  # noqa: E402
from loop_ros.msg import Transition  # noqa: E402
from loop_ros.nodes.sim_bridge_node import EnvError  # noqa: E402
from loop_ros.nodes.sim_bridge_node import SimBridgeNode  # noqa: E402
from loop_ros.ros import qos  # noqa: E402
from loop_ros.ros.clock import stamp_to_ns  # noqa: E402
from loop_ros.ros.conversions import transition_from_msg  # noqa: E402

pytestmark = pytest.mark.ros

ENV_ID = 'LoopRosTestEcho-v0'
DT = 0.02
EPISODE_LENGTH = 12
LOW, HIGH = np.array([-2.0, 0.0]), np.array([2.0, 1.0])


class EchoEnv(gymnasium.Env):
    """obs = [x, raw a0, raw a1]; x += a0 * dt; cost = raw a1; ends after EPISODE_LENGTH steps."""

    metadata: dict[str, Any] = {'render_modes': []}
    dt = DT

    def __init__(self) -> None:
        self.observation_space = Box(-np.inf, np.inf, (3,), np.float64)
        self.action_space = Box(LOW, HIGH, dtype=np.float64)
        self.x, self.t, self.a = 0.0, 0, np.zeros(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.x, self.t, self.a = float(self.np_random.uniform(-1.0, 1.0)), 0, np.zeros(2)
        return np.array([self.x, 0.0, 0.0]), {}

    def step(self, action):
        self.a = np.asarray(action, dtype=np.float64)
        self.x += float(self.a[0]) * DT
        self.t += 1
        obs = np.array([self.x, self.a[0], self.a[1]])
        return obs, -abs(self.x), self.t >= EPISODE_LENGTH, False, {'cost': float(self.a[1])}

    def base_pose_twist(self):
        return (self.x, 0.0, 0.3, float(self.a[0]), 0.0, 0.0)


if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point=EchoEnv)


class Probe(Node):
    """Records everything the bridge publishes; publishes actions."""

    def __init__(self, context: Any, acts: bool = True) -> None:
        super().__init__('probe', context=context)
        self.clocks: list[int] = []
        self.transitions: list[Transition] = []
        self.observations: list[Observation] = []
        self.stats: list[EpisodeStats] = []
        self.odom: list[Odometry] = []
        # best effort like the publishers, but deeper: keep every sample for the checks
        deep = QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.create_subscription(Clock, '/clock', lambda m: self.clocks.append(
            stamp_to_ns(m.clock)), deep)
        self.create_subscription(Transition, 'transition', self.transitions.append,
                                 qos.TRANSITION)
        self.create_subscription(Observation, 'observation', self.observations.append, deep)
        self.create_subscription(EpisodeStats, 'episode_stats', self.stats.append,
                                 qos.EPISODE_STATS)
        self.create_subscription(Odometry, 'odom', self.odom.append, qos.ODOMETRY)
        self.action_pub = self.create_publisher(Action, 'action', qos.ACTION) if acts else None

    def act(self) -> None:
        """Become a planner: publish on ``action`` from now on."""
        self.action_pub = self.create_publisher(Action, 'action', qos.ACTION)

    def send(self, data: list[float]) -> None:
        msg = Action()
        msg.data = [float(v) for v in data]
        self.action_pub.publish(msg)


@pytest.fixture
def graph(context):
    """Factory: (bridge, probe, spin_until) with the given bridge parameters."""
    made: list[tuple[SimBridgeNode, Probe, SingleThreadedExecutor]] = []

    def make(probe_acts: bool = True, **overrides: Any):
        values = {'env_id': ENV_ID, 'seed': 3, 'real_time_factor': 2.0,
                  'action_timeout_s': 0.1, 'use_sim_time': True, **overrides}
        bridge = SimBridgeNode(context=context, parameter_overrides=[
            Parameter(k, value=v) for k, v in values.items()])
        probe = Probe(context, acts=probe_acts)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(bridge)
        executor.add_node(probe)
        made.append((bridge, probe, executor))

        def spin_until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
            deadline = time.monotonic() + timeout
            while not cond():
                assert time.monotonic() < deadline, 'timed out waiting for the bridge'
                executor.spin_once(timeout_sec=0.02)

        return bridge, probe, spin_until

    yield make
    for bridge, probe, executor in made:
        executor.shutdown()
        bridge.close()
        bridge.destroy_node()
        probe.destroy_node()


def test_clock_and_transitions(graph) -> None:
    bridge, probe, spin_until = graph(real_time_factor=0.0)
    dt_ns = int(round(DT * 1e9))
    spin_until(lambda: len(probe.transitions) >= 2 * EPISODE_LENGTH + 3 and probe.stats
               and len(probe.clocks) >= 5 and probe.odom)
    assert bridge.dt == DT

    # /clock: multiples of dt, strictly increasing, (almost always) one dt apart
    clocks = probe.clocks
    assert all(c % dt_ns == 0 for c in clocks)
    diffs = np.diff(clocks)
    assert np.all(diffs > 0) and np.mean(diffs == dt_ns) > 0.8

    trs = [transition_from_msg(m, 3, 2) for m in probe.transitions]
    stamps = [stamp_to_ns(m.header.stamp) for m in probe.transitions]
    assert all(s % dt_ns == 0 for s in stamps) and np.all(np.diff(stamps) == dt_ns)
    assert {m.source for m in probe.transitions} == {'/sim_bridge'}
    assert {m.header.frame_id for m in probe.transitions} == {'base_link'}
    # obs/next_obs chain inside an episode; the episode ends with terminated at its last step
    for prev, cur in zip(trs, trs[1:]):
        if prev.episode == cur.episode:
            assert cur.step == prev.step + 1
            np.testing.assert_array_equal(prev.next_obs, cur.obs)
        else:
            assert prev.terminated and prev.step == EPISODE_LENGTH - 1 and cur.step == 0
    ends = [t for t in trs if t.terminated]
    assert ends and all(t.step == EPISODE_LENGTH - 1 for t in ends)

    # no action sent: every step applied the safe (normalised zero) action = the box centre
    assert all(np.all(t.action == 0.0) for t in trs)
    np.testing.assert_allclose(trs[-1].next_obs[1:], (LOW + HIGH) / 2)
    assert all(t.cost == pytest.approx(0.5) for t in trs)

    stats = probe.stats[0]
    assert stats.length == EPISODE_LENGTH and stats.safe_actions == EPISODE_LENGTH
    assert stats.episode_cost == pytest.approx(0.5 * EPISODE_LENGTH)
    first_episode = [t for t in trs if t.episode == stats.episode]
    assert stats.episode_return == pytest.approx(sum(t.reward for t in first_episode), 1e-5)
    assert bridge.safe_actions >= EPISODE_LENGTH

    odom = probe.odom[-1]
    q = odom.pose.pose.orientation
    assert (q.w, q.z) == (pytest.approx(math.cos(0.15)), pytest.approx(math.sin(0.15)))
    assert odom.header.frame_id == 'odom' and odom.child_frame_id == 'base_link'

    # observations are stamped and carry the episode/step counters
    assert probe.observations and all(len(o.data) == 3 for o in probe.observations)
    assert all(stamp_to_ns(o.header.stamp) % dt_ns == 0 for o in probe.observations)

    # dynamic parameter: a new real_time_factor re-creates the timer
    assert bridge.set_parameters([Parameter('real_time_factor', value=5.0)])[0].successful
    assert bridge.cfg.real_time_factor == 5.0


def test_action_applied_then_safe_after_timeout(graph) -> None:
    bridge, probe, spin_until = graph()
    spin_until(lambda: probe.count_subscribers('action') > 0 and len(probe.transitions) > 2)

    def applied(t) -> bool:
        return bool(np.allclose(t.action, [0.5, 1.0]))

    probe.send([0.5, 1.0])   # -> raw [1.0, 1.0]
    spin_until(lambda: any(applied(transition_from_msg(m)) for m in probe.transitions))
    k = next(i for i, m in enumerate(probe.transitions) if applied(transition_from_msg(m)))
    tr = transition_from_msg(probe.transitions[k])
    np.testing.assert_allclose(tr.next_obs[1:], [1.0, 1.0])   # rescaled to the Box bounds
    assert tr.cost == pytest.approx(1.0)
    safe_before = bridge.safe_actions

    # no new action: held for action_timeout_s (0.1 s = 5 steps), then the safe action again
    spin_until(lambda: len(probe.transitions) > k + 12)
    after = [transition_from_msg(m) for m in probe.transitions[k:]]
    held = [applied(t) for t in after]
    assert 3 <= sum(held) <= 7 and not any(held[-4:])
    assert all(np.all(t.action == 0.0) for t in after[-4:])
    assert bridge.safe_actions > safe_before
    spin_until(lambda: any(s.safe_actions < s.length for s in probe.stats))


def test_rejects_bad_actions(graph) -> None:
    bridge, probe, spin_until = graph()
    spin_until(lambda: probe.count_subscribers('action') > 0)
    # one at a time: the action topic keeps only the newest sample (depth 1)
    for i, bad in enumerate(([float('nan'), 0.0], [0.1], [0.1, 0.2, float('inf')]), 1):
        probe.send(bad)
        spin_until(lambda: bridge.rejected_actions == i)
    n = len(probe.transitions)
    probe.send([5.0, -5.0])   # finite but out of range: clipped to [1, -1]
    spin_until(lambda: any(np.allclose(m.action, [1.0, -1.0])
                           for m in probe.transitions[n:]))
    spin_until(lambda: len(probe.transitions) > n + 3)   # still stepping
    assert bridge.rejected_actions == 3
    assert all(np.all(np.isfinite(m.action)) for m in probe.transitions)


def test_safe_action_modes(graph) -> None:
    bridge, _, _ = graph(safe_action_mode='raw_zero')
    np.testing.assert_allclose(bridge.safe_action(), [0.0, -1.0])   # raw [0, 0]
    assert bridge.set_parameters([Parameter('safe_action_mode', value='hold')])[0].successful
    bridge._last_applied = np.array([0.25, -0.5], dtype=np.float32)
    np.testing.assert_allclose(bridge.safe_action(), [0.25, -0.5])


def test_first_step_waits_for_a_planner(graph) -> None:
    """A recorder alone (a transition subscriber) does not start the first episode: the bridge
    also waits for an action publisher, so no step gets the safe action while the planner
    configures."""
    bridge, probe, spin_until = graph(probe_acts=False, wait_for_subscriber_s=60.0)
    spin_until(lambda: bridge.transition_pub.get_subscription_count() > 0)
    waited = time.monotonic() + 1.0
    spin_until(lambda: time.monotonic() > waited)
    assert bridge.steps == 0 and not probe.transitions
    probe.act()
    spin_until(lambda: bridge.steps > 0)


@pytest.mark.parametrize('transitions_awaited', [True, False])
def test_a_deployed_bridge_waits_for_the_planner_alone(context, transitions_awaited) -> None:
    """Only a planner (an action publisher), no learner or recorder: with
    ``wait_for_transition_subscriber`` false (the launch graphs' mode:=deploy) the first step
    comes as soon as the planner is there; with true (default) the bridge keeps waiting."""
    values = {'env_id': ENV_ID, 'real_time_factor': 0.0, 'use_sim_time': True,
              'wait_for_subscriber_s': 60.0,
              'wait_for_transition_subscriber': transitions_awaited}
    bridge = SimBridgeNode(context=context, parameter_overrides=[
        Parameter(k, value=v) for k, v in values.items()])
    planner = Node('planner_only', context=context)
    planner.create_publisher(Action, 'action', qos.ACTION)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(bridge)
    executor.add_node(planner)
    try:
        end = time.monotonic() + 3.0
        while time.monotonic() < end and bridge.steps == 0:
            executor.spin_once(timeout_sec=0.02)
        assert (bridge.steps > 0) != transitions_awaited
    finally:
        executor.shutdown()
        bridge.close()
        bridge.destroy_node()
        planner.destroy_node()


def test_max_episodes_stops(graph) -> None:
    bridge, probe, spin_until = graph(max_episodes=2, real_time_factor=0.0)
    spin_until(lambda: bridge.done.done())
    assert bridge.episodes == 2 and bridge.steps == 2 * EPISODE_LENGTH


def test_bad_env_id(context) -> None:
    for env_id, match in (('NoSuchEnv-v0', 'NoSuchEnv-v0'),
                          ('loop_ros/NoSuchEnv-v0', 'loop_ros/NoSuchEnv-v0')):
        with pytest.raises(EnvError, match=match):
            SimBridgeNode(context=context,
                          parameter_overrides=[Parameter('env_id', value=env_id)])
