"""``sim_bridge``: any gymnasium environment as a ROS 2 robot on simulated time.

The node steps the environment on a timer at its control period (``env.unwrapped.dt``, else
``control_period_s``) scaled by ``real_time_factor`` and publishes, per step:

* ``/clock`` (rosgraph_msgs/Clock): simulated time, advancing by exactly ``dt`` per step;
* ``observation`` (loop_ros/Observation): the state to act on, stamped with the time it was
  observed (the reset observation after an episode ends);
* ``transition`` (loop_ros/Transition): (s, a, r, c, s', terminated, truncated); reward and cost
  are published only here (and summed in ``episode_stats``);
* ``odom`` (nav_msgs/Odometry) when the env has ``base_pose_twist() -> (x, y, yaw, v_x, v_y,
  yaw_rate)`` and ``publish_odometry`` is set;
* ``episode_stats`` (loop_ros/EpisodeStats) at the end of each episode.

It subscribes to ``action`` (loop_ros/Action, normalised to [-1, 1] and rescaled to the env's
Box bounds) and applies the latest one (zero-order hold). When no action arrived within
``action_timeout_s`` it applies the safe action (``safe_action_mode``, by default the normalised
zero), logs a throttled warning and counts it in ``EpisodeStats.safe_actions``. Malformed actions
(wrong length, NaN/inf) are rejected with a throttled warning and counted; out-of-range values are
clipped to [-1, 1].

Constraints: an env with ``set_constraints`` (the RC car) counts violations (``info['cost']``)
of the ``constraints.*`` parameters, which a ``loop_ros/Constraints`` message on
``constraints`` sets too; a change applies from the next step. Other envs take only the
defaults.

Time base: with ``use_sim_time`` (the default of the launch graphs) every stamp and the action
timeout use the simulated time this node publishes on ``/clock``; without it, the wall clock. The
stepping timer always runs on the steady clock (the bridge is the clock source).

Run::

    python -m loop_ros.nodes.sim_bridge_node --ros-args -p env_id:=InvertedPendulum-v5 \\
        -r __ns:=/robot1
"""
from __future__ import annotations

import math
import time
from typing import Any

import gymnasium
from nav_msgs.msg import Odometry
import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock
from rclpy.clock import ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.task import Future
from rosgraph_msgs.msg import Clock as ClockMsg

from loop_ros import graph
from loop_ros.core.config import ConfigError
from loop_ros.core.constraints import PlanarConstraints
from loop_ros.core.node_config import ConstraintsConfig
from loop_ros.core.node_config import NODE_PARAMETERS
from loop_ros.core.node_config import SimBridgeConfig
from loop_ros.envs import EnvError
from loop_ros.envs import make_env
from loop_ros.envs import normalized_action
from loop_ros.envs import raw_action_bounds
from loop_ros.msg import Action
from loop_ros.msg import EpisodeStats
from loop_ros.msg import Observation
from loop_ros.msg import Transition
from loop_ros.ros import qos
from loop_ros.ros.clock import clock_msg
from loop_ros.ros.clock import ns_to_stamp
from loop_ros.ros.clock import SimClock
from loop_ros.ros.clock import stamp_to_ns
from loop_ros.ros.constraints import subscribe_constraints
from loop_ros.ros.conversions import action_from_msg
from loop_ros.ros.conversions import validated
from loop_ros.ros.conversions import observation_msg
from loop_ros.ros.conversions import odometry_msg
from loop_ros.ros.conversions import transition_msg
from loop_ros.ros.diagnostics import DiagnosticsPublisher
from loop_ros.ros.node_diagnostics import SimBridgeDiagnostics
from loop_ros.ros.params import declare_groups
from loop_ros.ros.params import read_config
from loop_ros.ros.runner import run_node
from loop_ros.ros.runner import spin_until
from loop_ros.ros.publish import safe_publish

WARN_PERIOD_S = 2.0


def env_period(env: gymnasium.Env, default: float) -> float:
    """The env's control period ``env.unwrapped.dt`` in seconds, else ``default``."""
    dt = getattr(env.unwrapped, 'dt', None)
    try:
        dt = float(dt)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return dt if math.isfinite(dt) and dt > 0.0 else default


class SimBridgeNode(Node):
    """Steps a gymnasium env on a timer; publishes clock, observations and transitions."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('sim_bridge', **kwargs)
        declare_groups(self, NODE_PARAMETERS['sim_bridge'])
        self.cfg: SimBridgeConfig = read_config(self, SimBridgeConfig)
        self._use_sim_time = bool(self.get_parameter('use_sim_time').value)

        self.env = make_env(self.cfg.env_id)
        self.act_dim = int(self.env.action_space.shape[0])
        self.obs_dim = int(self.env.observation_space.shape[0])
        self.dt = env_period(self.env, self.cfg.control_period_s)
        self.sim_clock = SimClock(self.dt)
        self._raw_low, self._raw_high = raw_action_bounds(self.env)
        self._apply_constraints(read_config(self, ConstraintsConfig, 'constraints'))
        pose_fn = getattr(self.env.unwrapped, 'base_pose_twist', None)
        self._pose_fn = pose_fn if (callable(pose_fn) and self.cfg.publish_odometry) else None
        self.source = self.get_fully_qualified_name()

        self.clock_pub = self.create_publisher(ClockMsg, graph.CLOCK_TOPIC, qos.CLOCK)
        self.obs_pub = self.create_publisher(Observation, graph.OBSERVATION_TOPIC,
                                             qos.OBSERVATION)
        self.transition_pub = self.create_publisher(Transition, graph.TRANSITION_TOPIC,
                                                    qos.TRANSITION)
        self.stats_pub = self.create_publisher(EpisodeStats, graph.EPISODE_STATS_TOPIC,
                                               qos.EPISODE_STATS)
        self.odom_pub = (self.create_publisher(Odometry, graph.ODOM_TOPIC, qos.ODOMETRY)
                         if self._pose_fn is not None else None)
        self.action_sub = self.create_subscription(Action, graph.ACTION_TOPIC,
                                                   self._on_action, qos.ACTION)
        self.constraints_sub = subscribe_constraints(self)

        # counters (whole run); per-episode ones are reset in _reset()
        self.steps = 0
        self.episodes = 0
        self.safe_actions = 0
        self.rejected_actions = 0
        self.dropped_messages = 0
        self._latest_action: np.ndarray | None = None
        self._latest_action_ns = 0
        self._last_applied = np.zeros(self.act_dim, dtype=np.float32)
        self._latency_ns: list[int] = []
        self.done: Future = Future()
        self._rng_seeded = False
        self._reset()
        self._wall_start = time.monotonic()
        self._warned_no_subscriber = False
        self._timer = None
        self._make_timer()
        self.add_on_set_parameters_callback(self._check_constraints)
        self.add_post_set_parameters_callback(self._on_parameters_set)
        self.diagnostics = DiagnosticsPublisher(self, 'simulation', SimBridgeDiagnostics(self),
                                                hardware_id=self.cfg.env_id)
        self.get_logger().info(
            f'{self.cfg.env_id}: obs {self.obs_dim}, action {self.act_dim} (normalised to '
            f'[-1, 1] from low={self._raw_low.tolist()} high={self._raw_high.tolist()}), '
            f'dt {self.dt:g} s, real_time_factor {self.cfg.real_time_factor:g}, '
            f'odometry {"on" if self.odom_pub else "off"}')

    # --- time ------------------------------------------------------------------------------------

    def _now_ns(self) -> int:
        """Current time in the graph's time base (simulated under use_sim_time)."""
        if self._use_sim_time:
            return self.sim_clock.ns
        return self.get_clock().now().nanoseconds

    def _make_timer(self) -> None:
        if self._timer is not None:
            self.destroy_timer(self._timer)
        rtf = self.cfg.real_time_factor
        period = self.dt / rtf if rtf > 0.0 else 0.0
        self._timer = self.create_timer(period, self._on_tick,
                                        clock=Clock(clock_type=ClockType.STEADY_TIME))

    def _on_parameters_set(self, parameters: list[Parameter]) -> None:
        old = self.cfg
        self.cfg = read_config(self, SimBridgeConfig)
        if self.cfg.real_time_factor != old.real_time_factor:
            self._make_timer()
        if any(p.name.startswith('constraints.') for p in parameters):
            self._apply_constraints(read_config(self, ConstraintsConfig, 'constraints'))
        self.get_logger().info('parameters updated: ' + ', '.join(
            f'{p.name}={p.value!r}' for p in parameters))

    # --- constraints -----------------------------------------------------------------------------

    def _constraints(self, cfg: ConstraintsConfig) -> PlanarConstraints | None:
        """The set ``cfg`` gives on this env; ConstraintError when the env cannot count it."""
        env = self.env.unwrapped
        supported = callable(getattr(env, 'set_constraints', None))
        constraints = cfg.for_task(env.default_constraints if supported else None,
                                   self.cfg.env_id)
        if constraints is not None:
            env.check_constraints(constraints)
        return constraints

    def _check_constraints(self, parameters: list[Parameter]) -> SetParametersResult:
        """On-set: refuse constraints this env cannot count (the geometry is checked before)."""
        changes = {p.name: list(p.value) if isinstance(p.value, (list, tuple)) else p.value
                   for p in parameters if p.name.startswith('constraints.')}
        if changes:
            try:
                self._constraints(read_config(self, ConstraintsConfig, 'constraints',
                                              changes=changes))
            except ConfigError as exc:   # ConstraintError is one
                return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _apply_constraints(self, cfg: ConstraintsConfig) -> None:
        """Count violations of ``cfg`` from the next step on. Raises ConfigError."""
        constraints = self._constraints(cfg)
        if constraints is not None:
            self.env.unwrapped.set_constraints(constraints)
            self.get_logger().info(f'constraints: {constraints.describe()}')

    # --- actions -------------------------------------------------------------------------------

    def _on_action(self, msg: Action) -> None:
        action = validated(self, 'rejected_actions', 'action', action_from_msg, msg, self.act_dim)
        if action is None:
            return
        self._latest_action = action
        self._latest_action_ns = self._now_ns()
        answered_ns = stamp_to_ns(msg.header.stamp)
        if answered_ns > 0:   # stamped with the observation it answers
            self._latency_ns.append(self._latest_action_ns - answered_ns)

    def safe_action(self) -> np.ndarray:
        """The normalised action applied when no fresh one is available."""
        mode = self.cfg.safe_action_mode
        if mode == 'hold':
            return self._last_applied.copy()
        if mode == 'raw_zero':
            return normalized_action(np.zeros(self.act_dim), self._raw_low, self._raw_high)
        return np.zeros(self.act_dim, dtype=np.float32)

    def _select_action(self) -> tuple[np.ndarray, bool]:
        timeout_ns = int(self.cfg.action_timeout_s * 1e9)
        if (self._latest_action is not None
                and self._now_ns() - self._latest_action_ns <= timeout_ns):
            return self._latest_action, False
        return self.safe_action(), True

    # --- stepping --------------------------------------------------------------------------------

    def _reset(self) -> None:
        seed = None if self._rng_seeded else self.cfg.seed
        if not self._rng_seeded:
            self.env.action_space.seed(self.cfg.seed)
        self._obs, _ = self.env.reset(seed=seed)
        self._rng_seeded = True
        self._step = 0
        self._ep_return = 0.0
        self._ep_cost = 0.0
        self._ep_safe = 0

    def _publish(self, publisher: Any, msg: Any) -> None:
        """Publish; a full reliable history (a reader far behind) drops the message, counted."""
        safe_publish(self, publisher, msg, 'dropped_messages')

    def _ready_to_start(self) -> bool:
        """Hold the first step until the graph is there: a transition subscriber (the learner or
        a recorder; unless ``wait_for_transition_subscriber`` is false) and an action publisher
        (the planner, once configured)."""
        awaited = [('a publisher of action', self.action_sub.get_publisher_count())]
        if self.cfg.wait_for_transition_subscriber:
            awaited.append(('a subscriber of transition',
                            self.transition_pub.get_subscription_count()))
        waiting_for = [what for what, count in awaited if count == 0]
        if not waiting_for:
            return True
        if time.monotonic() - self._wall_start < self.cfg.wait_for_subscriber_s:
            return False
        if not self._warned_no_subscriber:
            self._warned_no_subscriber = True
            self.get_logger().warning(
                f'no {" and no ".join(w.removeprefix("a ") for w in waiting_for)} after '
                f'{self.cfg.wait_for_subscriber_s:g} s: stepping anyway (transitions go to '
                'nobody until a learner joins; the safe action until a planner does)')
        return True

    def _on_tick(self) -> None:
        if self.done.done():
            return
        if self.steps == 0 and not self._ready_to_start():
            return
        action, is_safe = self._select_action()
        if is_safe:
            self.safe_actions += 1
            self._ep_safe += 1
            self.get_logger().warning(
                f'no action within action_timeout_s={self.cfg.action_timeout_s:g} s: applying '
                f"the safe action ('{self.cfg.safe_action_mode}'); {self.safe_actions} so far",
                throttle_duration_sec=WARN_PERIOD_S)
        obs = self._obs
        next_obs, reward, terminated, truncated, info = self.env.step(action)
        self._last_applied = np.asarray(action, dtype=np.float32)
        cost = float(info.get('cost', 0.0)) if isinstance(info, dict) else 0.0
        self.sim_clock.advance()
        self.steps += 1
        stamp = ns_to_stamp(self._now_ns())
        try:
            tr = transition_msg(obs, action, next_obs, float(reward), cost, bool(terminated),
                                bool(truncated), stamp, self.cfg.base_frame_id,
                                self.episodes, self._step, source=self.source)
        except ValueError as exc:
            self.get_logger().error(f'env produced an invalid step ({exc}): resetting the '
                                    'episode', throttle_duration_sec=WARN_PERIOD_S)
            terminated = True
        else:
            self._publish(self.transition_pub, tr)
            self._ep_return += float(reward)
            self._ep_cost += cost
            self._step += 1
            if self.odom_pub is not None:
                self._publish_odometry(stamp)
        if terminated or truncated:
            self._end_episode(stamp)
            if self.done.done():
                return
            self._reset()
        else:
            self._obs = next_obs
        try:
            self._publish(self.obs_pub, observation_msg(
                self._obs, stamp, self.cfg.base_frame_id, self.episodes, self._step))
        except ValueError as exc:
            self.get_logger().error(f'env produced an invalid observation ({exc})',
                                    throttle_duration_sec=WARN_PERIOD_S)
        # /clock last: a planner whose timer runs on sim time wakes up with the new
        # observation already delivered, so it plans on the state of this very step
        self._publish(self.clock_pub, clock_msg(self.sim_clock.ns))

    def _publish_odometry(self, stamp: Any) -> None:
        try:
            msg = odometry_msg(self._pose_fn(), stamp, self.cfg.odom_frame_id,  # type: ignore
                               self.cfg.base_frame_id)
        except (ValueError, TypeError) as exc:
            self.get_logger().warning(f'no odometry: base_pose_twist() gave {exc}',
                                      throttle_duration_sec=WARN_PERIOD_S)
            return
        self._publish(self.odom_pub, msg)

    def _end_episode(self, stamp: Any) -> None:
        msg = EpisodeStats(episode=self.episodes, length=self._step,
                           episode_return=float(self._ep_return),
                           episode_cost=float(self._ep_cost), safe_actions=self._ep_safe)
        msg.header.stamp = stamp
        msg.header.frame_id = self.cfg.base_frame_id
        self._publish(self.stats_pub, msg)
        wall = time.monotonic() - self._wall_start
        latency = (f', action latency {np.mean(self._latency_ns) / 1e6:.1f} ms'
                   if self._latency_ns else '')
        self.get_logger().info(
            f'episode {self.episodes}: return {self._ep_return:.3f}, cost {self._ep_cost:.3f}, '
            f'length {self._step}, safe actions {self._ep_safe}, rejected actions '
            f'{self.rejected_actions} (total), real-time factor '
            f'{self.sim_clock.seconds / max(wall, 1e-9):.2f}{latency}',
            throttle_duration_sec=1.0)   # fast sims end many short episodes per second
        self._latency_ns.clear()
        self.episodes += 1
        if self.cfg.max_episodes and self.episodes >= self.cfg.max_episodes:
            self.get_logger().info(f'max_episodes={self.cfg.max_episodes} reached: stopping')
            if self._timer is not None:
                self._timer.cancel()
            self.done.set_result(True)

    def close(self) -> None:
        """Release the environment."""
        self.env.close()


def main(args: list[str] | None = None) -> int:
    """Run the node until shutdown (Ctrl-C) or ``max_episodes``; returns the exit code."""
    return run_node(SimBridgeNode, 'sim_bridge', (ConfigError, EnvError),
                    spin=lambda node: spin_until(node, node.done, threads=1),
                    args=args)


if __name__ == '__main__':
    import sys
    sys.exit(main())
