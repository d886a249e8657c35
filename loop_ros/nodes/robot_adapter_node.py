"""``robot_adapter``: a real base as a LOOP robot. Standard messages outside, loop_ros inside.

What the sim bridge is to a simulator, this node is to a base driver (``docs/integration.md``):

* ``odom`` (nav_msgs/Odometry, in): the state. Each message becomes the task's observation with
  THE SAME mapping as ``loop-ros bag convert`` (:func:`loop_ros.io.odometry.odometry_observation`:
  ``observation_fields``, or the task's own state -> observation function when it registered
  one). Malformed odometry (NaN, a zero quaternion) is rejected with a throttled warning and
  counted. An unstamped message (stamp 0) is stamped with its receive time.
* ``observation`` (loop_ros/Observation, out): at the control rate (``control_rate_hz``, else
  1 / the task's ``dt``), the newest odometry's observation, stamped with the odometry's stamp,
  with ``episode``/``step`` counters. Odometry older than ``odometry_timeout_s``: no
  observation, a throttled warning, the command ramps to zero and the episode ends (the next
  one begins when fresh odometry returns). A tick without new odometry since the last step is
  skipped and counted (the odometry is slower than the control rate).
* ``action`` (loop_ros/Action, in): normalised actions from the planner (wrong size or NaN:
  rejected, counted).
* ``cmd_vel`` (geometry_msgs/TwistStamped, or Twist with ``command_type: twist``, out): at
  ``command_rate_hz``, the latest action in physical units (``action_fields`` scaled to
  ``[action_low, action_high]``), moved towards at most ``max_acceleration`` per second and never
  outside the bounds (:class:`loop_ros.io.robot.CommandGovernor`). No action for
  ``command_timeout_s``: the command ramps to zero within the same limits, and stays there.
* ``transition`` (loop_ros/Transition, out): each control step (s, a, r, c, s', terminated,
  truncated). ``a`` is the normalised command actually in force at the middle of the step (after
  the limits, re-normalised: the bag converter's rule); r, c and terminated come from the task's
  torch functions (:func:`loop_ros.io.robot.step_labels`). ``source`` is this node's
  fully-qualified name, ``header.frame_id`` the base frame.
* ``episode_stats`` (loop_ros/EpisodeStats, out) when an episode ends.
* ``~/reset`` (std_srvs/Trigger): ends the running episode as truncated at the next step and
  starts the next episode index (the planner drops its warm start); after a termination it
  starts the next episode.

Episodes end on the task's termination (the base is then held at zero, and observations stop,
until ``~/reset`` or, with ``reset_hold_s > 0``, until that long has passed), on the time limit
``max_episode_steps`` (truncated; the base keeps driving into the next episode), on
``~/reset`` and when the odometry goes stale. A task without a reward function is a
configuration error unless ``allow_missing_reward`` (reward 0: the learner learns the model
only).

Dynamic parameters (``max_acceleration``, ``command_timeout_s``, ``odometry_timeout_s``,
``max_episode_steps``, ``reset_hold_s``) apply at once; bad values are refused with a reason.
Everything that defines the learned problem (task, fields, bounds, rates) is static.

Run::

    python -m loop_ros.nodes.robot_adapter_node --ros-args -r odom:=/odom -r cmd_vel:=/cmd_vel
"""
from __future__ import annotations

import enum
from typing import Any, NamedTuple

from geometry_msgs.msg import Twist
from geometry_msgs.msg import TwistStamped
from nav_msgs.msg import Odometry
import numpy as np
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_srvs.srv import Trigger

from loop_ros import graph
from loop_ros.core.config import ConfigError
from loop_ros.core.node_config import NODE_PARAMETERS
from loop_ros.core.node_config import RobotAdapterConfig
from loop_ros.core.tasks import registered_tasks
from loop_ros.io.odometry import odometry_observation
from loop_ros.io.robot import CommandGovernor
from loop_ros.io.robot import CommandLimits
from loop_ros.io.robot import step_labels
from loop_ros.msg import Action
from loop_ros.msg import EpisodeStats
from loop_ros.msg import Observation
from loop_ros.msg import Transition
from loop_ros.nodes.planner_node import load_task
from loop_ros.ros import qos
from loop_ros.ros.clock import ns_to_stamp
from loop_ros.ros.clock import stamp_to_ns
from loop_ros.ros.conversions import action_from_msg
from loop_ros.ros.conversions import validated
from loop_ros.ros.conversions import check_vector
from loop_ros.ros.conversions import observation_msg
from loop_ros.ros.diagnostics import DiagnosticsPublisher
from loop_ros.ros.node_diagnostics import RobotAdapterDiagnostics
from loop_ros.ros.conversions import transition_msg
from loop_ros.ros.params import declare_groups
from loop_ros.ros.params import read_config
from loop_ros.ros.runner import run_node
from loop_ros.ros.runner import spin_until
from loop_ros.ros.publish import safe_publish

CMD_VEL_TOPIC = 'cmd_vel'
RESET_SERVICE = '~/reset'
WARN_PERIOD_S = 2.0
DEFAULT_BASE_FRAME = 'base_link'
NS_PER_S = 1e9


class Phase(enum.Enum):
    """Where the adapter's episode bookkeeping stands."""

    WAITING = 'waiting for fresh odometry'
    RUNNING = 'running'
    HELD = 'held stopped after a termination'


class Sample(NamedTuple):
    """One accepted odometry message as an observation."""

    obs: np.ndarray
    stamp_ns: int
    frame_id: str


def _fill_twist(twist: Twist, fields: tuple[str, ...], values: np.ndarray) -> None:
    """Set ``twist.<group>.<axis>`` for each ``'group.axis'`` field (the rest stay 0)."""
    for name, value in zip(fields, values):
        group, axis = name.split('.')
        setattr(getattr(twist, group), axis, float(value))


class RobotAdapterNode(Node):
    """Odometry -> observations and transitions; actions -> limited velocity commands."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('robot_adapter', **kwargs)
        declare_groups(self, NODE_PARAMETERS['robot_adapter'])
        self.cfg: RobotAdapterConfig = read_config(self, RobotAdapterConfig)
        cfg = self.cfg
        self.task = load_task(cfg.env_id, cfg.task_module)   # ValueError: bad task_module
        if cfg.env_id not in registered_tasks():
            raise ConfigError(
                f'task {cfg.env_id!r} is not registered (task_module {cfg.task_module!r} did not '
                f'register it); registered: {", ".join(registered_tasks())}')
        if self.task.reward is None and not cfg.allow_missing_reward:
            raise ConfigError(
                f'task {cfg.env_id!r} has no reward function, so the adapter cannot label its '
                'transitions: give the task a reward (Task.reward), or set allow_missing_reward '
                'to publish reward 0 (the learner then learns the dynamics model only)')
        self.limits = self._limits(cfg)
        self.act_dim = len(cfg.action_fields)
        self.obs_dim = self._observation_size()
        for name, want, have in (('obs_dim', self.task.obs_dim, self.obs_dim),
                                 ('act_dim', self.task.act_dim, self.act_dim)):
            if want is not None and want != have:
                raise ConfigError(f'task {cfg.env_id!r} has {name} {want}, but the adapter makes '
                                  f'{have} (observation_fields / action_fields)')
        rate = cfg.control_rate_hz or (1.0 / self.task.dt if self.task.dt else 0.0)
        if rate <= 0.0:
            raise ConfigError(f'task {cfg.env_id!r} has no dt: set control_rate_hz')
        self.period_s = 1.0 / rate
        command_period = 1.0 / cfg.command_rate_hz
        self.governor = CommandGovernor(
            self.limits, cfg.command_timeout_s, max_dt_s=2.0 * command_period,
            history_s=max(4.0 * self.period_s, 1.0))
        self.source = self.get_fully_qualified_name()
        self._t0_ns = self._now_ns()

        stamped = cfg.command_type == 'twist_stamped'
        self.cmd_pub = self.create_publisher(TwistStamped if stamped else Twist, CMD_VEL_TOPIC,
                                             qos.COMMAND)
        self.obs_pub = self.create_publisher(Observation, graph.OBSERVATION_TOPIC,
                                             qos.OBSERVATION)
        self.transition_pub = self.create_publisher(Transition, graph.TRANSITION_TOPIC,
                                                    qos.TRANSITION)
        self.stats_pub = self.create_publisher(EpisodeStats, graph.EPISODE_STATS_TOPIC,
                                               qos.EPISODE_STATS)
        self.create_subscription(Odometry, graph.ODOM_TOPIC, self._on_odometry,
                                 qos.ODOMETRY_INPUT)
        self.create_subscription(Action, graph.ACTION_TOPIC, self._on_action, qos.ACTION)
        self.create_service(Trigger, RESET_SERVICE, self._on_reset)

        # counters (whole run)
        self.rejected_odometry = 0
        self.rejected_actions = 0
        self.stale_odometry = 0
        self.repeated_odometry = 0
        self.command_timeouts = 0
        self.transitions_sent = 0
        self.commands_sent = 0
        self.dropped_messages = 0
        # episode bookkeeping
        self.phase = Phase.WAITING
        self.episode = -1          # the first episode that begins is 0
        self.step = 0
        self._latest: Sample | None = None
        self._prev: Sample | None = None
        self._held_since_ns = 0
        self._reset_requested = False
        self._was_timed_out = False
        self._ep_return = 0.0
        self._ep_cost = 0.0
        self._ep_timeouts = 0

        self.add_post_set_parameters_callback(self._on_parameters_set)
        self.diagnostics = DiagnosticsPublisher(self, 'base', RobotAdapterDiagnostics(self),
                                                hardware_id=cfg.env_id)
        self.create_timer(command_period, self._on_command_tick)
        self.create_timer(self.period_s, self._on_control_tick)
        if not self.limits.symmetric:
            self.get_logger().warning(
                'action bounds are not symmetric: the planner\'s safe action (normalised 0) is '
                f'the command {self.limits.to_physical(np.zeros(self.act_dim)).tolist()}, not a '
                'stop (the adapter itself stops with the zero command)')
        self.get_logger().info(
            f'{cfg.env_id}: observation {self.obs_dim} ({", ".join(cfg.observation_fields)}), '
            f'action {list(cfg.action_fields)} in [{list(cfg.action_low)}, '
            f'{list(cfg.action_high)}], max acceleration {list(cfg.max_acceleration)}; '
            f'{rate:g} Hz control, {cfg.command_rate_hz:g} Hz {cfg.command_type} on cmd_vel, '
            f'command timeout {cfg.command_timeout_s:g} s')

    # --- setup -----------------------------------------------------------------------------------

    @staticmethod
    def _limits(cfg: RobotAdapterConfig) -> CommandLimits:
        try:
            return CommandLimits.create(cfg.action_fields, cfg.action_low, cfg.action_high,
                                        cfg.max_acceleration)
        except ValueError as exc:
            raise ConfigError(f'robot_adapter: {exc}') from None

    def _observation_size(self) -> int:
        """Size of the observation the mapping makes (on a resting pose at the origin)."""
        probe = Odometry()
        probe.pose.pose.orientation.w = 1.0
        try:
            return int(odometry_observation(probe, self.cfg.observation_fields,
                                            self.cfg.env_id).shape[0])
        except ValueError as exc:
            raise ConfigError(f'robot_adapter: {exc}') from None

    def _on_parameters_set(self, parameters: list[Parameter]) -> None:
        """Apply accepted dynamic changes (validated before by ``add_validation``)."""
        self.cfg = read_config(self, RobotAdapterConfig)
        self.limits = self._limits(self.cfg)
        self.governor.set_limits(self.limits)
        self.governor.timeout_s = self.cfg.command_timeout_s
        self.get_logger().info('parameters updated: ' + ', '.join(
            f'{p.name}={p.value!r}' for p in parameters))

    # --- time ------------------------------------------------------------------------------------

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _seconds(self, ns: int) -> float:
        """Node-clock nanoseconds as the governor's seconds (since start: no float rounding
        of a 1.7e9 s epoch)."""
        return (ns - self._t0_ns) / NS_PER_S

    # --- inputs: check and store -----------------------------------------------------------------

    def _on_odometry(self, msg: Odometry) -> None:
        try:
            obs = check_vector(odometry_observation(msg, self.cfg.observation_fields,
                                                    self.cfg.env_id),
                               'odometry observation', self.obs_dim)
        except ValueError as exc:
            self.rejected_odometry += 1
            self.get_logger().warning(f'rejected odometry ({self.rejected_odometry} so far): '
                                      f'{exc}', throttle_duration_sec=WARN_PERIOD_S)
            return
        stamp_ns = stamp_to_ns(msg.header.stamp) or self._now_ns()
        frame = self.cfg.base_frame_id or msg.child_frame_id or DEFAULT_BASE_FRAME
        self._latest = Sample(obs, stamp_ns, frame)

    def _on_action(self, msg: Action) -> None:
        action = validated(self, 'rejected_actions', 'action', action_from_msg, msg, self.act_dim)
        if action is None:
            return
        if self.phase is Phase.RUNNING:   # held or waiting: the base stays stopped
            self.governor.receive(action, self._seconds(self._now_ns()))

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response
                  ) -> Trigger.Response:
        if self.phase is Phase.WAITING:
            response.success = False
            response.message = ('no fresh odometry: the next episode begins when it arrives '
                                f'(episode {self.episode + 1})')
            return response
        self._reset_requested = True
        response.success = True
        response.message = (f'episode {self.episode} ends at the next step; episode '
                            f'{self.episode + 1} begins' if self.phase is Phase.RUNNING else
                            f'episode {self.episode + 1} begins at the next step')
        self.get_logger().info(f'~/reset: {response.message}')
        return response

    # --- the command loop ------------------------------------------------------------------------

    def _on_command_tick(self) -> None:
        """Publish the limited command (zero target while held, waiting or timed out)."""
        now_ns = self._now_ns()
        command, timed_out = self.governor.update(self._seconds(now_ns),
                                                  hold=self.phase is not Phase.RUNNING)
        if timed_out and not self._was_timed_out:
            self.command_timeouts += 1
            self._ep_timeouts += 1
            self.get_logger().warning(
                f'no action for command_timeout_s={self.cfg.command_timeout_s:g} s: ramping the '
                f'command to zero ({self.command_timeouts} timeouts so far)',
                throttle_duration_sec=WARN_PERIOD_S)
        self._was_timed_out = timed_out
        if self.cfg.command_type == 'twist_stamped':
            msg = TwistStamped()
            msg.header.stamp = ns_to_stamp(now_ns)
            msg.header.frame_id = self._frame()
            _fill_twist(msg.twist, self.limits.fields, command)
        else:
            msg = Twist()
            _fill_twist(msg, self.limits.fields, command)
        self._publish(self.cmd_pub, msg)
        self.commands_sent += 1

    def _publish(self, publisher: Any, msg: Any) -> bool:
        """Publish; a full reliable history (a reader far behind) drops the message, counted."""
        return safe_publish(self, publisher, msg, 'dropped_messages')

    def _frame(self) -> str:
        latest = self._latest
        return latest.frame_id if latest is not None else \
            (self.cfg.base_frame_id or DEFAULT_BASE_FRAME)

    # --- the control loop ------------------------------------------------------------------------

    def _on_control_tick(self) -> None:
        """One control step: observation, transition, episode bookkeeping."""
        now_ns = self._now_ns()
        latest = self._latest
        if latest is None or now_ns - latest.stamp_ns > self.cfg.odometry_timeout_s * NS_PER_S:
            self._odometry_lost(latest)
            return
        if self.phase is Phase.WAITING:
            self._begin_episode(latest, after_stop=True)
        elif self.phase is Phase.HELD:
            held_s = (now_ns - self._held_since_ns) / NS_PER_S
            if self._reset_requested or (self.cfg.reset_hold_s > 0.0
                                         and held_s >= self.cfg.reset_hold_s):
                self._begin_episode(latest, after_stop=True)
        elif self._prev is not None and latest.stamp_ns <= self._prev.stamp_ns:
            self.repeated_odometry += 1
            self.get_logger().warning(
                'no new odometry since the last control step: step skipped (is the odometry '
                f'slower than the control rate?); {self.repeated_odometry} so far',
                throttle_duration_sec=WARN_PERIOD_S)
        else:
            self._step(latest, now_ns)

    def _odometry_lost(self, latest: Sample | None) -> None:
        self.stale_odometry += 1
        age = ('none received' if latest is None else
               f'{(self._now_ns() - latest.stamp_ns) / NS_PER_S:.2f} s old')
        self.get_logger().warning(
            f'no fresh odometry ({age}; odometry_timeout_s={self.cfg.odometry_timeout_s:g}): no '
            'observation, commanding zero', throttle_duration_sec=WARN_PERIOD_S)
        if self.phase is Phase.RUNNING:   # no s' for the last step: the episode just ends
            self._end_episode('odometry lost')
            self.phase = Phase.WAITING
            self.governor.clear()

    def _begin_episode(self, sample: Sample, after_stop: bool = False) -> None:
        """Episode ``episode + 1`` from ``sample`` (step 0). ``after_stop``: the base was
        stopped (termination, lost odometry) and waits for the planner's answer to this
        observation; after a time limit or a reset it keeps the command in force."""
        self.episode += 1
        self.step = 0
        self.phase = Phase.RUNNING
        self._reset_requested = False
        self._ep_return = self._ep_cost = 0.0
        self._ep_timeouts = 0
        if after_stop:
            self.governor.clear()
        self._publish_observation(sample)

    def _publish_observation(self, sample: Sample) -> None:
        self._prev = sample
        self._publish(self.obs_pub, observation_msg(
            sample.obs, ns_to_stamp(sample.stamp_ns), sample.frame_id, self.episode, self.step))

    def _step(self, sample: Sample, now_ns: int) -> None:
        """Transition (s_prev, a, r, c, s) with a = the command in force mid-step."""
        prev = self._prev
        assert prev is not None
        action = self.governor.action_at(self._seconds((prev.stamp_ns + sample.stamp_ns) // 2))
        try:
            reward, cost, terminated = step_labels(
                self.task, prev.obs, action, sample.obs,
                0.0 if self.cfg.allow_missing_reward else None)
            limit = self.cfg.max_episode_steps
            truncated = not terminated and (self._reset_requested
                                            or (limit > 0 and self.step + 1 >= limit))
            msg = transition_msg(prev.obs, action, sample.obs, reward, cost, terminated,
                                 truncated, ns_to_stamp(sample.stamp_ns), sample.frame_id,
                                 self.episode, self.step, source=self.source)
        except ValueError as exc:   # a task function gave NaN: keep the robot safe, say so
            self.get_logger().error(f'cannot label step {self.step} of episode {self.episode} '
                                    f'({exc}): the episode ends, the base is held',
                                    throttle_duration_sec=WARN_PERIOD_S)
            self._terminate(now_ns, 'invalid step')
            return
        if self._publish(self.transition_pub, msg):
            self.transitions_sent += 1
        self.step += 1
        self._ep_return += reward
        self._ep_cost += cost
        if terminated:
            self._terminate(now_ns, 'terminated')
        elif truncated:
            self._end_episode('reset' if self._reset_requested else 'time limit')
            self._begin_episode(sample)
        else:
            self._publish_observation(sample)

    def _terminate(self, now_ns: int, reason: str) -> None:
        self._end_episode(reason)
        self.phase = Phase.HELD
        self._held_since_ns = now_ns   # a ~/reset already requested starts the next episode
        self._prev = None
        self.governor.clear()
        how = (f'for {self.cfg.reset_hold_s:g} s' if self.cfg.reset_hold_s > 0.0
               else f'until {self.get_fully_qualified_name()}/reset is called')
        self.get_logger().info(f'episode {self.episode} {reason}: holding the base stopped '
                               f'{how}')

    def _end_episode(self, reason: str) -> None:
        msg = EpisodeStats(episode=max(self.episode, 0), length=self.step,
                           episode_return=float(self._ep_return),
                           episode_cost=float(self._ep_cost), safe_actions=self._ep_timeouts)
        msg.header.stamp = ns_to_stamp(self._now_ns())
        msg.header.frame_id = self._frame()
        self._publish(self.stats_pub, msg)
        self.get_logger().info(
            f'episode {self.episode} ended ({reason}): return {self._ep_return:.3f}, cost '
            f'{self._ep_cost:.3f}, length {self.step}, command timeouts {self._ep_timeouts}; '
            f'rejected odometry {self.rejected_odometry}, rejected actions '
            f'{self.rejected_actions} (total)')

    def close(self) -> None:
        """Last words to the base: one zero command (run_node calls this before destroying)."""
        zero = np.zeros(self.act_dim)
        if self.cfg.command_type == 'twist_stamped':
            msg = TwistStamped()
            msg.header.stamp = ns_to_stamp(self._now_ns())
            msg.header.frame_id = self._frame()
            _fill_twist(msg.twist, self.limits.fields, zero)
        else:
            msg = Twist()
            _fill_twist(msg, self.limits.fields, zero)
        try:
            self.cmd_pub.publish(msg)
        except Exception:  # noqa: BLE001  (the context may be going down: nothing else to do)
            pass


def main(args: list[str] | None = None) -> int:
    """Run the adapter until shutdown (Ctrl-C); every callback on one thread."""
    return run_node(RobotAdapterNode, 'robot_adapter', (ConfigError, ValueError),
                    spin=lambda node: spin_until(node, threads=1), args=args)


if __name__ == '__main__':
    import sys
    sys.exit(main())
