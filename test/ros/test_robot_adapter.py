"""The robot adapter: command limits, the example task, the node in-process, and the robot graph
against a fake differential-drive base.

* Pure (no ROS graph): :mod:`loop_ros.io.robot` (bounds, acceleration limits, the timeout ramp,
  the command in force at a time), the example task's reward/cost/termination, the ``robot``
  graph's node specs.
* In-process node tests: a probe publishes ``nav_msgs/Odometry`` and actions and records what
  the adapter sends (observations, transitions, ``cmd_vel``, episode stats).
* End to end (slow): adapter + planner + learner + a fake unicycle base
  (``loop_ros.examples.fake_base``, recording here) that integrates the
  ``cmd_vel`` it receives and publishes odometry at 50 Hz, all in one process: commands stay in
  the limits, the base stops after the planner is killed, transitions reach the learner, and
  the model's holdout error falls between retrains.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

rclpy = pytest.importorskip('rclpy')

from loop_ros import graph
from loop_ros.core.config import ConfigError
from loop_ros.core.node_config import RobotAdapterConfig
from loop_ros.core.tasks import Task
from loop_ros.examples import diff_drive
from loop_ros.io import odometry
from loop_ros.io.robot import CommandGovernor
from loop_ros.io.robot import CommandLimits
from loop_ros.io.robot import limit_command
from loop_ros.io.robot import step_labels

ROOT = Path(__file__).resolve().parents[2]
LIMITS = CommandLimits.create(('linear.x', 'angular.z'), (-0.5, -1.0), (0.5, 1.0), (1.0, 2.0))


# --- pure: command limits ------------------------------------------------------------------------

def test_limit_command_clips_to_bounds_and_acceleration() -> None:
    # a target beyond the bounds is clipped to them; the change per step to a * dt
    out = limit_command(np.array([3.0, -5.0]), np.zeros(2), 0.1, LIMITS)
    assert np.allclose(out, [0.1, -0.2])
    # a long enough step reaches the (clipped) target and never passes it
    out = limit_command(np.array([3.0, -5.0]), np.array([0.45, -0.9]), 0.1, LIMITS)
    assert np.allclose(out, [0.5, -1.0])
    # 0 = unlimited: a jump straight to the target, still inside the bounds
    free = CommandLimits.create(LIMITS.fields, LIMITS.low, LIMITS.high, (0.0, 0.0))
    assert np.allclose(limit_command(np.array([0.3, 2.0]), np.array([-0.5, -1.0]), 0.01, free),
                       [0.3, 1.0])


def test_limit_command_never_leaves_the_limits() -> None:
    rng = np.random.default_rng(0)
    previous = np.zeros(2)
    for _ in range(2000):
        dt = float(rng.uniform(0.0, 0.2))
        target = rng.uniform(-3.0, 3.0, 2)
        out = limit_command(target, previous, dt, LIMITS)
        assert np.all(out >= LIMITS.low) and np.all(out <= LIMITS.high)
        assert np.all(np.abs(out - previous) <= LIMITS.max_acceleration * dt + 1e-12)
        previous = out


def test_limits_must_fit() -> None:
    with pytest.raises(ValueError, match='one value per action field'):
        CommandLimits.create(('linear.x', 'angular.z'), (-1, -1), (1, 1), (1.0,))
    with pytest.raises(ValueError, match='contain 0'):
        CommandLimits.create(('linear.x',), (0.1,), (1.0,), (1.0,))
    with pytest.raises(ValueError, match='>= 0'):
        CommandLimits.create(('linear.x',), (-1.0,), (1.0,), (-1.0,))
    with pytest.raises(ValueError, match='unknown action field'):
        CommandLimits.create(('linear.w',), (-1.0,), (1.0,), (1.0,))
    with pytest.raises(ConfigError, match='max_acceleration'):
        RobotAdapterConfig(max_acceleration=(1.0,))
    with pytest.raises(ConfigError, match='action_low <= 0'):
        RobotAdapterConfig(action_low=(0.1, -1.0))
    # the node's defaults are the bag converter's fields
    assert RobotAdapterConfig().observation_fields == odometry.DEFAULT_OBSERVATION
    assert RobotAdapterConfig().action_fields == odometry.DEFAULT_ACTION


def test_governor_follows_times_out_and_ramps_to_zero() -> None:
    gov = CommandGovernor(LIMITS, timeout_s=0.5, max_dt_s=0.1)
    t = 0.0
    cmd, timed_out = gov.update(t)
    assert np.allclose(cmd, 0.0) and not timed_out   # no action yet: zero, not a timeout
    gov.receive(np.array([1.0, -1.0]), t)
    for _ in range(10):   # 1 m/s^2, 2 rad/s^2 at 20 Hz: 0.05 m/s and 0.1 rad/s per update
        t += 0.05
        cmd, timed_out = gov.update(t)
        assert not timed_out
    assert np.allclose(cmd, [0.5, -1.0])
    assert np.allclose(gov.action_at(t), [1.0, -1.0])
    assert np.allclose(gov.action_at(0.05), [0.1, -0.1])   # what was in force back then
    # the action is 0.5 s old at t = 0.5 (fresh), older after: ramp down at the same limits
    speeds = []
    while t < 2.0:
        t += 0.05
        cmd, timed_out = gov.update(t)
        speeds.append(cmd[0])
        assert timed_out == (t > 0.5 + 1e-9)
    assert np.allclose(cmd, 0.0)
    ramp = np.array(speeds)
    assert np.all(np.diff(ramp) <= 1e-12) and np.all(np.abs(np.diff(ramp)) <= 0.05 + 1e-12)
    first_zero = 0.5 + 0.05 * (1 + int(np.argmax(ramp <= 1e-12)))
    assert first_zero <= 0.5 + 0.5 / 1.0 + 0.1   # timeout + v / a (+ one update)
    # hold (an episode ended): zero target even with a fresh action, and no timeout reported
    gov.receive(np.array([1.0, 1.0]), t)
    cmd, timed_out = gov.update(t + 0.05, hold=True)
    assert np.allclose(cmd, 0.0) and not timed_out
    # a stalled update may not jump further than max_dt_s worth of acceleration
    gov.receive(np.array([1.0, 1.0]), t + 5.0)
    cmd, _ = gov.update(t + 5.0)
    assert np.allclose(cmd, [0.1, 0.2])


def test_asymmetric_bounds_normalise_zero_away_from_the_centre() -> None:
    limits = CommandLimits.create(('linear.x',), (-0.2,), (1.0,), (0.0,))
    assert not limits.symmetric and LIMITS.symmetric
    assert np.allclose(limits.to_physical(np.array([0.0])), [0.4])
    assert np.allclose(limits.to_normalized(np.array([0.0])), [-2 / 3])


# --- pure: the example task and step labels -----------------------------------------------------

def _obs(x: float, y: float, yaw: float, vx: float = 0.0, vy: float = 0.0,
         wz: float = 0.0) -> np.ndarray:
    return np.array([x, y, math.sin(yaw), math.cos(yaw), vx, vy, wz], np.float32)


def test_diff_drive_task() -> None:
    task = diff_drive.TASK
    a = np.zeros(2, np.float32)
    on_circle = _obs(1.0, 0.0, math.pi / 2, vx=0.3, wz=0.3)   # CCW tangent at target speed
    assert step_labels(task, on_circle, a, on_circle) == pytest.approx((0.0, 0.0, False),
                                                                        abs=1e-6)
    wide = _obs(0.0, 1.5, math.pi, vx=0.3)                      # 0.5 m out, still tangent
    assert step_labels(task, on_circle, a, wide)[0] == pytest.approx(-0.5, abs=1e-6)
    backwards = _obs(1.0, 0.0, -math.pi / 2, vx=0.3)            # clockwise: heading error pi
    assert step_labels(task, on_circle, a, backwards)[0] == pytest.approx(
        -0.25 * (math.pi / 2) ** 2, abs=1e-5)
    slow = _obs(1.0, 0.0, math.pi / 2)                          # standing still on the circle
    assert step_labels(task, on_circle, a, slow)[0] == pytest.approx(-0.25 * 0.09, abs=1e-6)
    assert step_labels(task, on_circle, a, _obs(1.6, 0.0, 0.0))[1:] == (1.0, False)
    assert step_labels(task, on_circle, a, _obs(0.0, -3.1, 0.0))[1:] == (1.0, True)
    assert (task.obs_dim, task.act_dim, task.dt) == (7, 2, 0.1)
    batch = torch.stack([torch.as_tensor(on_circle), torch.as_tensor(wide)]).reshape(1, 2, 7)
    assert task.reward(batch, torch.zeros(1, 2, 2), batch).shape == (1, 2)


def test_step_labels_without_a_reward() -> None:
    task = Task(obs_dim=2, act_dim=1, dt=0.1)
    o = np.zeros(2, np.float32)
    with pytest.raises(ValueError, match='no reward'):
        step_labels(task, o, np.zeros(1), o)
    assert step_labels(task, o, np.zeros(1), o, missing_reward=0.0) == (0.0, 0.0, False)


# --- the robot graph -----------------------------------------------------------------------------

def test_robot_graph_specs() -> None:
    specs = {s.fully_qualified_name: s for s in graph.node_specs(
        'robot', {'namespace': 'bot', 'odom_topic': '/base/odom', 'cmd_topic': 'cmd_vel_nav',
                  'task_module': 'my.task', 'checkpoint_dir': '/tmp/ck'}, str(ROOT))}
    assert sorted(specs) == ['/bot/learner', '/bot/planner', '/bot/robot_adapter']
    adapter = specs['/bot/robot_adapter']
    assert dict(adapter.remappings) == {'odom': '/base/odom', 'cmd_vel': 'cmd_vel_nav'}
    assert adapter.module == 'loop_ros.nodes.robot_adapter_node'
    for s in specs.values():
        assert s.params_files == (str(ROOT / 'config' / 'robot.yaml'),)
        assert s.parameters['use_sim_time'] is False   # a real robot: the wall clock
        assert s.parameters['env_id'] == diff_drive.ENV_ID
        assert s.parameters['task_module'] == 'my.task'
    assert specs['/bot/planner'].parameters['checkpoint_dir'] == '/tmp/ck'
    assert 'task_module' not in graph.node_specs('robot', {}, str(ROOT))[0].parameters
    only = graph.node_specs('robot', {'nodes': 'robot_adapter,planner', 'mode': 'deploy'},
                            str(ROOT))
    assert [s.name for s in only] == ['robot_adapter', 'planner']
    for bad, match in (({'nodes': 'sim_bridge'}, "'robot_adapter'"), ({'odom_topic': '9x'},
                       'odom_topic'), ({'robots': '2'}, 'no launch argument')):
        with pytest.raises(graph.GraphError, match=match):
            graph.node_specs('robot', bad, str(ROOT))


def test_launcher_prints_the_robot_graph(capsys) -> None:
    from loop_ros.launcher import main
    assert main(['robot', 'odom_topic:=/wheel/odom', '--print']) == 0
    out = capsys.readouterr().out
    assert 'loop_ros.nodes.robot_adapter_node' in out and '-r odom:=/wheel/odom' in out
    assert '-r cmd_vel:=/cmd_vel' in out


# --- in-process node tests -----------------------------------------------------------------------

from geometry_msgs.msg import Twist  # noqa: E402
from geometry_msgs.msg import TwistStamped  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from rclpy.qos import ReliabilityPolicy  # noqa: E402
from rclpy.signals import SignalHandlerOptions  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from loop_ros.msg import Action  # noqa: E402
from loop_ros.msg import EpisodeStats  # noqa: E402
from loop_ros.msg import Observation  # noqa: E402
from loop_ros.msg import PolicyUpdate  # noqa: E402
from loop_ros.msg import TrainStats  # noqa: E402
from loop_ros.msg import Transition  # noqa: E402
from loop_ros.nodes.robot_adapter_node import RobotAdapterNode  # noqa: E402
from loop_ros.ros import qos  # noqa: E402
from loop_ros.ros.clock import ns_to_stamp  # noqa: E402
from loop_ros.ros.clock import stamp_to_ns  # noqa: E402
from loop_ros.ros.conversions import odometry_msg  # noqa: E402
from loop_ros.core.checkpoint import load_checkpoint  # noqa: E402
from loop_ros.examples.fake_base import FakeBase  # noqa: E402

DEEP = QoSProfile(depth=1000, reliability=ReliabilityPolicy.BEST_EFFORT)
FAST = {'control_rate_hz': 20.0, 'command_rate_hz': 50.0}


class Probe(Node):
    """Publishes odometry (a fixed pose, at 50 Hz, stamped now - ``age_s``) and actions;
    records what the adapter publishes."""

    def __init__(self, context: Any, command_type: type = TwistStamped) -> None:
        super().__init__('probe', context=context)
        self.pose: tuple[float, ...] | None = None   # (x, y, yaw, vx, vy, wz); None: silent
        self.age_s = 0.0
        self.action: list[float] | None = None       # re-sent at 50 Hz while set
        self.observations: list[Observation] = []
        self.transitions: list[Transition] = []
        self.commands: list[Any] = []
        self.stats: list[EpisodeStats] = []
        self.odom_pub = self.create_publisher(Odometry, 'odom', qos.ODOMETRY)
        self.action_pub = self.create_publisher(Action, 'action', qos.ACTION)
        self.create_subscription(Observation, 'observation', self.observations.append, DEEP)
        self.create_subscription(Transition, 'transition', self.transitions.append,
                                 qos.TRANSITION)
        self.create_subscription(command_type, 'cmd_vel', self.commands.append,
                                 QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
        self.create_subscription(EpisodeStats, 'episode_stats', self.stats.append,
                                 qos.EPISODE_STATS)
        self.reset_client = self.create_client(Trigger, 'robot_adapter/reset')
        self.create_timer(0.02, self._tick)

    def _tick(self) -> None:
        if self.pose is not None:
            stamp = ns_to_stamp(self.get_clock().now().nanoseconds - int(self.age_s * 1e9))
            self.odom_pub.publish(odometry_msg(self.pose, stamp))
        if self.action is not None:
            self.send(self.action)

    def send(self, data: list[float]) -> None:
        msg = Action()
        msg.data = [float(v) for v in data]
        self.action_pub.publish(msg)

    def command(self, i: int = -1) -> tuple[float, float]:
        msg = self.commands[i]
        twist = getattr(msg, 'twist', msg)
        return twist.linear.x, twist.angular.z


@pytest.fixture
def adapter(context):
    """Factory: (adapter, probe, spin_until) with the given adapter parameters."""
    made: list[tuple[RobotAdapterNode, Probe, SingleThreadedExecutor]] = []

    def make(probe_type: type = TwistStamped, **overrides: Any):
        node = RobotAdapterNode(context=context, parameter_overrides=[
            Parameter(k, value=v) for k, v in {**FAST, **overrides}.items()])
        probe = Probe(context, probe_type)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        executor.add_node(probe)
        made.append((node, probe, executor))

        def spin_until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
            deadline = time.monotonic() + timeout
            while not cond():
                assert time.monotonic() < deadline, 'timed out waiting for the adapter'
                executor.spin_once(timeout_sec=0.01)

        return node, probe, spin_until

    yield make
    for node, probe, executor in made:
        executor.shutdown()
        node.destroy_node()
        probe.destroy_node()


ON_CIRCLE = (1.0, 0.0, math.pi / 2, 0.3, 0.0, 0.3)   # x y yaw vx vy wz: the task's optimum


def test_observations_and_labelled_transitions(adapter) -> None:
    node, probe, spin_until = adapter()
    probe.pose = ON_CIRCLE
    spin_until(lambda: len(probe.transitions) >= 3)
    expected = _obs(*ON_CIRCLE[:3], vx=0.3, wz=0.3)
    first = probe.observations[0]
    assert (first.episode, first.step) == (0, 0) and first.header.frame_id == 'base_link'
    assert np.allclose(first.data, expected, atol=1e-6)
    steps = [o.step for o in probe.observations]
    assert steps == list(range(len(steps)))   # one observation per control step
    for i, tr in enumerate(probe.transitions[:3]):
        assert (tr.episode, tr.step) == (0, i)
        assert tr.source == node.get_fully_qualified_name() == '/robot_adapter'
        assert tr.header.frame_id == 'base_link'
        assert tr.reward == pytest.approx(0.0, abs=1e-6) and tr.cost == 0.0
        assert not tr.terminated and not tr.truncated
        assert np.allclose(tr.obs, expected, atol=1e-6)
        assert list(tr.action) == [0.0, 0.0]   # no action yet: the stop command was in force
        # the transition is stamped with the odometry of s'
        assert stamp_to_ns(tr.header.stamp) == stamp_to_ns(probe.observations[i + 1].header.stamp)
    # 0.5 m outside the circle: the task's reward, from its torch function
    probe.pose = (1.5, 0.0, math.pi / 2, 0.3, 0.0, 0.3)
    spin_until(lambda: np.isclose(probe.transitions[-1].next_obs[0], 1.5))
    assert probe.transitions[-1].reward == pytest.approx(-0.5, abs=1e-6)


def test_actions_become_limited_commands(adapter) -> None:
    node, probe, spin_until = adapter(command_timeout_s=0.3)
    probe.pose = ON_CIRCLE
    spin_until(lambda: len(probe.observations) >= 1)
    probe.action = [1.0, -0.5]          # -> 0.5 m/s, -0.5 rad/s
    spin_until(lambda: probe.commands and np.allclose(probe.command(), [0.5, -0.5]))
    stamps = [stamp_to_ns(c.header.stamp) * 1e-9 for c in probe.commands]
    values = np.array([probe.command(i) for i in range(len(probe.commands))])
    assert np.all(values <= LIMITS.high + 1e-9) and np.all(values >= LIMITS.low - 1e-9)
    assert np.all(np.abs(np.diff(values, axis=0)) <= LIMITS.max_acceleration
                  * np.diff(stamps)[:, None] + 1e-6)
    assert sum(v[0] > 0.0 for v in values) >= 8   # a ramp (0.5 m/s at 1 m/s^2), not a jump
    # the transitions carry the normalised command in force mid-step (after the limits)
    spin_until(lambda: np.allclose(probe.transitions[-1].action, [1.0, -0.5]))
    ramped = [tr.action[0] for tr in probe.transitions]
    assert any(0.0 < a < 1.0 for a in ramped)
    # the planner goes quiet: after command_timeout_s the command ramps to zero and stays
    probe.action = None
    quiet = time.monotonic()
    spin_until(lambda: probe.command() == (0.0, 0.0), timeout=5.0)
    assert time.monotonic() - quiet <= 0.3 + 0.5 / 1.0 + 0.3   # timeout + v / a + slack
    assert node.command_timeouts == 1
    n = len(probe.commands)
    spin_until(lambda: len(probe.commands) >= n + 10)   # republished at the command rate
    assert all(probe.command(i) == (0.0, 0.0) for i in range(n, len(probe.commands)))


def test_termination_holds_the_base_until_reset(adapter) -> None:
    node, probe, spin_until = adapter()
    probe.pose = ON_CIRCLE
    probe.action = [1.0, 1.0]
    spin_until(lambda: probe.commands and probe.command()[0] > 0.2)
    probe.pose = (3.5, 0.0, 0.0, 0.3, 0.0, 0.0)          # beyond the 3 m arena
    spin_until(lambda: any(tr.terminated for tr in probe.transitions))
    last = probe.transitions[-1]
    assert last.terminated and not last.truncated and last.episode == 0
    spin_until(lambda: len(probe.stats) == 1)
    assert probe.stats[0].episode == 0 and probe.stats[0].length == last.step + 1
    held_obs = len(probe.observations)
    spin_until(lambda: probe.command() == (0.0, 0.0), timeout=3.0)   # ramping to a stop
    n = len(probe.commands)
    deadline = time.monotonic() + 1.0
    spin_until(lambda: time.monotonic() > deadline)
    # held: actions keep coming, yet every command is zero and no observation is published
    assert all(probe.command(i) == (0.0, 0.0) for i in range(n, len(probe.commands)))
    assert len(probe.observations) == held_obs
    # the robot is put back; ~/reset starts episode 1 and the base follows actions again
    probe.pose = ON_CIRCLE
    assert probe.reset_client.wait_for_service(timeout_sec=5.0)
    future = probe.reset_client.call_async(Trigger.Request())
    spin_until(future.done)
    assert future.result().success, future.result().message
    spin_until(lambda: len(probe.observations) > held_obs)
    assert (probe.observations[held_obs].episode, probe.observations[held_obs].step) == (1, 0)
    spin_until(lambda: probe.command()[0] > 0.2)
    assert node.episode == 1


def test_time_limit_and_reset_truncate(adapter) -> None:
    node, probe, spin_until = adapter(max_episode_steps=3)
    probe.pose = ON_CIRCLE
    probe.action = [0.5, 0.5]
    spin_until(lambda: len(probe.transitions) >= 5)
    first = [(tr.episode, tr.step, tr.truncated) for tr in probe.transitions[:5]]
    assert first == [(0, 0, False), (0, 1, False), (0, 2, True), (1, 0, False), (1, 1, False)]
    assert [(o.episode, o.step) for o in probe.observations[:5]] == \
        [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    assert probe.commands and probe.command()[0] > 0.0   # a time limit does not stop the base
    # ~/reset during an episode: its next transition is truncated, a new episode begins
    node.set_parameters([Parameter('max_episode_steps', value=0)])
    future = probe.reset_client.call_async(Trigger.Request())
    spin_until(future.done)
    n = len(probe.transitions)
    spin_until(lambda: len(probe.transitions) > n)
    cut = probe.transitions[n]
    assert cut.truncated and not cut.terminated
    spin_until(lambda: probe.observations[-1].episode == cut.episode + 1)
    begun = next(o for o in probe.observations if o.episode == cut.episode + 1)
    assert begun.step == 0 and stamp_to_ns(begun.header.stamp) == stamp_to_ns(cut.header.stamp)
    assert probe.command()[0] > 0.0   # a reset while driving does not stop the base either


def test_rejects_malformed_input(adapter) -> None:
    node, probe, spin_until = adapter()
    probe.pose = ON_CIRCLE
    spin_until(lambda: len(probe.transitions) >= 1)

    def deliver(publish: Callable[[], None], counter: Callable[[], int]) -> None:
        """Publish until the adapter counted it (its inputs keep only the newest message)."""
        before = counter()
        for _ in range(50):
            publish()
            end = time.monotonic() + 0.1
            while counter() == before and time.monotonic() < end:
                probe.executor.spin_once(timeout_sec=0.01)  # type: ignore[union-attr]
            if counter() > before:
                assert counter() == before + 1
                return
        pytest.fail('the adapter never counted the message')

    def odom(change: Callable[[Odometry], None]) -> Callable[[], None]:
        def publish() -> None:
            msg = odometry_msg(ON_CIRCLE, ns_to_stamp(node.get_clock().now().nanoseconds))
            change(msg)
            probe.odom_pub.publish(msg)
        return publish

    rejected_odometry = lambda: node.rejected_odometry  # noqa: E731
    rejected_actions = lambda: node.rejected_actions  # noqa: E731
    deliver(odom(lambda m: setattr(m.pose.pose.position, 'x', math.nan)), rejected_odometry)
    deliver(odom(lambda m: [setattr(m.pose.pose.orientation, k, 0.0) for k in 'xyzw']),
            rejected_odometry)   # an unset (all-zero) quaternion
    deliver(odom(lambda m: setattr(m.twist.twist.linear, 'x', math.inf)), rejected_odometry)
    deliver(lambda: probe.send([0.5, 0.5, 0.5]), rejected_actions)   # wrong size
    deliver(lambda: probe.send([math.nan, 0.0]), rejected_actions)   # NaN
    deliver(lambda: probe.send([0.5]), rejected_actions)             # wrong size
    assert (node.rejected_odometry, node.rejected_actions) == (3, 3)
    n = len(probe.transitions)
    spin_until(lambda: len(probe.transitions) >= n + 3)   # still working
    for tr in probe.transitions:
        assert np.all(np.isfinite(tr.obs)) and np.all(np.isfinite(tr.next_obs))
    assert all(c == (0.0, 0.0) for c in map(probe.command, range(len(probe.commands))))


def test_stale_odometry_gives_no_observation(adapter) -> None:
    node, probe, spin_until = adapter(odometry_timeout_s=0.2)
    probe.pose = ON_CIRCLE
    probe.age_s = 0.5                   # every message arrives half a second old
    spin_until(lambda: node.stale_odometry >= 5)
    assert not probe.observations and not probe.transitions
    probe.age_s = 0.0
    spin_until(lambda: len(probe.observations) >= 2)
    assert probe.observations[0].episode == 0
    probe.pose = None                   # the driver dies mid-episode: the episode ends
    spin_until(lambda: len(probe.stats) == 1)
    count = len(probe.observations)
    probe.pose = ON_CIRCLE
    spin_until(lambda: len(probe.observations) > count)
    assert (probe.observations[count].episode, probe.observations[count].step) == (1, 0)


def test_runtime_parameters(adapter) -> None:
    node, probe, spin_until = adapter()

    def set_one(name: str, value: Any):
        return node.set_parameters([Parameter(name, value=value)])[0]

    assert set_one('max_acceleration', [1, 4]).successful   # integers become floats
    assert np.allclose(node.governor.limits.max_acceleration, [1.0, 4.0])
    assert set_one('max_acceleration', [0.5, 4.0]).successful
    assert np.allclose(node.governor.limits.max_acceleration, [0.5, 4.0])
    assert set_one('command_timeout_s', 0.2).successful and node.governor.timeout_s == 0.2
    result = set_one('max_acceleration', [1.0])
    assert not result.successful and 'max_acceleration' in result.reason
    result = set_one('max_acceleration', [-1.0, 1.0])
    assert not result.successful and '>= 0' in result.reason
    result = set_one('command_timeout_s', 0.0)
    assert not result.successful and 'command_timeout_s' in result.reason
    assert not set_one('action_high', [2.0, 2.0]).successful   # static: defines the problem
    assert np.allclose(node.governor.limits.max_acceleration, [0.5, 4.0])
    # the applied limit shapes the ramp: 0.5 m/s^2 at 50 Hz = 0.01 m/s per command
    probe.pose = ON_CIRCLE
    probe.action = [1.0, 0.0]
    spin_until(lambda: len(probe.commands) > 3 and probe.command()[0] > 0.05)
    v = [probe.command(i)[0] for i in range(len(probe.commands))]
    t = [stamp_to_ns(c.header.stamp) * 1e-9 for c in probe.commands]
    assert np.all(np.diff(v) <= 0.5 * np.diff(t) + 1e-6)


def test_twist_commands(adapter) -> None:
    node, probe, spin_until = adapter(probe_type=Twist, command_type='twist')
    probe.pose = ON_CIRCLE
    probe.action = [-1.0, 1.0]
    spin_until(lambda: probe.commands and probe.command() == (-0.5, 1.0))
    assert isinstance(probe.commands[-1], Twist)


def test_configuration_errors(context) -> None:
    def build(**values: Any) -> RobotAdapterNode:
        return RobotAdapterNode(context=context, parameter_overrides=[
            Parameter(k, value=v) for k, v in values.items()])

    point = {'env_id': 'example/PointRobot-v0', 'task_module': 'loop_ros.examples.point_robot',
             'observation_fields': ['x', 'y', 'vx', 'vy']}
    with pytest.raises(ConfigError, match='allow_missing_reward'):
        build(**point)
    node = build(**point, allow_missing_reward=True)   # reward 0: the model learns dynamics
    assert node.obs_dim == 4
    node.destroy_node()
    with pytest.raises(ConfigError, match='not registered'):
        build(env_id='example/Nothing-v0')
    with pytest.raises(ConfigError, match='obs_dim 7'):
        build(observation_fields=['x', 'y'])
    with pytest.raises(ConfigError, match='unknown observation field'):
        build(observation_fields=['x', 'y', 'z', 'roll', 'pitch', 'yaw', 'altitude'])
    with pytest.raises(ConfigError, match='action_low <= 0'):
        build(action_low=[0.1, -1.0])


def test_packaged_params_file_parses_in_rcl() -> None:
    """config/robot.yaml through rcl's own YAML parser (which reads a bare y as a bool, where
    PyYAML and test_config_consistency.py read a string), as the launcher passes it."""
    import yaml
    path = ROOT / 'config' / 'robot.yaml'
    ctx = rclpy.Context()
    rclpy.init(context=ctx, args=['--ros-args', '--params-file', str(path)],
               signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = RobotAdapterNode(context=ctx)
        section = yaml.safe_load(path.read_text())['/**/robot_adapter']['ros__parameters']
        assert node.cfg == RobotAdapterConfig(**section)
        assert node.cfg.observation_fields == odometry.DEFAULT_OBSERVATION
        assert node.period_s == pytest.approx(diff_drive.DT_S)
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)


# --- end to end: adapter + planner + learner + a fake base --------------------------------------

class RecordingBase(FakeBase):
    """The example fake base (a unicycle following cmd_vel through a 0.1 s lag, odometry at
    50 Hz), recording every command it gets and its speed."""

    def __init__(self, context: Any) -> None:
        super().__init__(context=context, cli_args=[
            '--ros-args', '-r', 'odom:=/base/odom', '-r', 'cmd_vel:=/base/cmd_vel'],
            parameter_overrides=[Parameter('watchdog_s', value=60.0)])   # the adapter's job
        self.commands: list[tuple[float, float, float]] = []   # (stamp s, v, w)
        self.speeds: list[float] = []                           # |v| + |w| per tick
        self.create_timer(0.02, lambda: self.speeds.append(abs(self.v) + abs(self.w)))

    def on_command(self, stamp_s: float, v: float, w: float) -> None:
        self.commands.append((stamp_s, v, w))


def model_error(payload: dict, held_out: list[Transition]) -> float:
    """MSE of the checkpoint's elite members' mean prediction of [r, s' - s] on ``held_out``."""
    from loop_ros.core.config import from_dict
    from loop_ros.core.config import LoopConfig
    from loop_ros.core.ensemble import ProbabilisticEnsemble
    cfg = from_dict(LoopConfig, payload['config'])
    ens = ProbabilisticEnsemble(payload['obs_dim'], payload['act_dim'], cfg.ensemble)
    ens.load_state_dict(payload['ensemble'])
    obs, act, nxt = (torch.tensor(np.array([getattr(tr, f) for tr in held_out]),
                                  dtype=torch.float32) for f in ('obs', 'action', 'next_obs'))
    reward = torch.tensor([tr.reward for tr in held_out], dtype=torch.float32)
    with torch.no_grad():
        scores = ens.eval_score(obs, act, ens.targets(obs, reward, nxt))
    return float(scores[ens.elites].mean())


TINY = {
    'env_id': diff_drive.ENV_ID, 'task_module': 'loop_ros.examples.diff_drive',
    'sac.hidden_sizes': [32, 32], 'sac.batch_size': 32,
    'ensemble.num_members': 3, 'ensemble.num_elites': 2, 'ensemble.hidden_size': 32,
    'ensemble.num_layers': 2, 'ensemble.max_epochs': 20, 'ensemble.patience': 20,
    'ensemble.batch_size': 32, 'ensemble.lr': 0.003,
    'arc.horizon': 3, 'arc.num_samples': 16, 'arc.num_actor_trajs': 2,
    'arc.num_particles': 1, 'arc.num_iterations': 2,
    'train.start_steps': 20, 'train.model_train_every': 40, 'train.sac_update_every': 10,
    'train.device': 'cpu',
}


@pytest.mark.slow
def test_robot_graph_on_a_fake_base(context, tmp_path) -> None:
    from loop_ros.nodes.learner_node import LearnerNode
    from loop_ros.nodes.planner_node import PlannerNode

    ckpt = str(tmp_path / 'ckpt')
    rate = {'control_rate_hz': 20.0}

    def params(values: dict[str, Any]) -> list[Parameter]:
        return [Parameter(k, value=v) for k, v in values.items()]

    # the robot graph's own wiring: odom and cmd_vel remapped onto the base driver's topics
    spec = next(s for s in graph.node_specs('robot', {'odom_topic': '/base/odom',
                                                       'cmd_topic': '/base/cmd_vel'}, str(ROOT))
                if s.name == 'robot_adapter')
    remaps = [f'{src}:={dst}' for src, dst in spec.remappings]
    limits = {'action_low': [-0.5, -1.0], 'action_high': [0.5, 1.0],
              'max_acceleration': [1.0, 2.0], 'command_timeout_s': 0.4,
              'command_rate_hz': 50.0, 'reset_hold_s': 0.5, 'max_episode_steps': 200}
    adapter = RobotAdapterNode(context=context, cli_args=['--ros-args', *sum(
        (['-r', r] for r in remaps), [])], parameter_overrides=params({**rate, **limits}))
    learner = LearnerNode(context=context, parameter_overrides=params({
        **TINY, 'checkpoint_dir': ckpt, 'checkpoint_every_steps': 20, 'updates_per_tick': 10,
        'tick_period_s': 0.05}))
    planner = PlannerNode(context=context, parameter_overrides=params({
        **TINY, **rate, 'checkpoint_dir': ckpt, 'autostart': False,
        'observation_timeout_s': 0.3}))
    base = RecordingBase(context)
    watcher = Node('watcher', context=context)
    stats: list[TrainStats] = []
    transitions: list[Transition] = []
    models: dict[float, dict] = {}   # holdout MSE of a retrain -> its first checkpoint

    def on_update(msg: PolicyUpdate) -> None:   # read at once: old files get deleted
        payload = load_checkpoint(msg.path) if msg.path else None
        if payload is not None and math.isfinite(payload['holdout_mse']):
            models.setdefault(payload['holdout_mse'], payload)

    watcher.create_subscription(TrainStats, 'learner/train_stats', stats.append,
                                QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT))
    watcher.create_subscription(Transition, 'transition', transitions.append, qos.TRANSITION)
    watcher.create_subscription(PolicyUpdate, 'policy_update', on_update, qos.POLICY_UPDATE)
    executor = SingleThreadedExecutor(context=context)
    nodes = [adapter, learner, planner, base, watcher]
    for n in nodes:
        executor.add_node(n)

    def spin_until(cond: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not cond() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.01)
        return cond()

    planner_alive = True
    try:
        from rclpy.lifecycle import TransitionCallbackReturn
        assert planner.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert planner.trigger_activate() == TransitionCallbackReturn.SUCCESS
        # learn until the model has been retrained three times (40, 80, 120 transitions) and
        # 30 more transitions that no retrain has seen yet have come in
        assert spin_until(lambda: len(models) >= 3 and stats[-1].env_steps >= 150,
                          timeout=45.0), (
            f'model versions {sorted({s.model_version for s in stats})}, env steps '
            f'{stats[-1].env_steps if stats else None}, adapter sent {adapter.transitions_sent}')
        driving = [c for c in base.commands if abs(c[1]) + abs(c[2]) > 0.05]
        assert len(driving) > 20, 'the planner never drove the base'

        # kill the planner: no deactivate, no last zero action; it just stops talking
        executor.remove_node(planner)
        planner.close()
        planner.destroy_node()
        planner_alive = False
        killed = adapter.get_clock().now().nanoseconds * 1e-9
        # command timeout + the longest ramp (0.5 m/s at 1 m/s^2, 1 rad/s at 2 rad/s^2) + slack
        stop_bound = 0.4 + max(0.5 / 1.0, 1.0 / 2.0) + 0.1
        assert spin_until(lambda: base.commands[-1][0] > killed + stop_bound + 0.5,
                          timeout=10.0)
        after = [c for c in base.commands if c[0] >= killed + stop_bound]
        assert after and all(c[1] == 0.0 and c[2] == 0.0 for c in after), after[:5]
        assert adapter.command_timeouts >= 1
        assert spin_until(lambda: base.speeds[-1] < 1e-3, timeout=2.0)   # it stands still

        # every command the base got was inside the bounds and the acceleration limits
        t, v, w = (np.array(col) for col in zip(*base.commands))
        assert np.all(np.abs(v) <= 0.5 + 1e-9) and np.all(np.abs(w) <= 1.0 + 1e-9)
        assert np.all(np.abs(np.diff(v)) <= 1.0 * np.diff(t) + 1e-6)   # (float stamps)
        assert np.all(np.abs(np.diff(w)) <= 2.0 * np.diff(t) + 1e-6)

        # the driver goes quiet: no more transitions; the learner got every one of them
        base.publishing = False
        assert spin_until(lambda: adapter.phase.name == 'WAITING', timeout=5.0)
        sent = adapter.transitions_sent
        assert spin_until(lambda: stats[-1].env_steps == sent, timeout=5.0), \
            (stats[-1].env_steps, sent)
        assert stats[-1].rejected_transitions == 0
        steps = [s.env_steps for s in stats]
        assert steps == sorted(steps) and steps[-1] >= 120
        assert {tr.source for tr in transitions} == {'/robot_adapter'}
        assert all(np.all(np.abs(tr.action) <= 1.0) for tr in transitions)

        # the model's error on held-out transitions of the base falls between retrains: the
        # first and the third model, on the transitions after the third retrain's data (which
        # neither was trained on). TrainStats.holdout_mse itself is measured on a new random
        # split of a growing buffer each time, so it is not comparable across retrains.
        assert all(math.isfinite(s.holdout_mse) for s in stats if s.model_version >= 1)
        retrains = sorted(models.values(), key=lambda m: m['env_steps'])
        first, third = retrains[0], retrains[2]
        held_out = [tr for tr in transitions[third['env_steps']:]]
        assert len(held_out) >= 20
        errors = [model_error(m, held_out) for m in (first, third)]
        assert errors[1] < errors[0], (errors, [m['env_steps'] for m in retrains])
    finally:
        executor.shutdown()
        learner.close()
        if planner_alive:
            planner.close()
        for n in nodes:
            if n is not planner or planner_alive:
                n.destroy_node()
