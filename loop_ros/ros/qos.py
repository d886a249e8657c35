"""Named QoS profiles of every loop_ros topic, in one place (nav2's ``qos_profiles.hpp`` habit).

Use these constants in every publisher and subscription; ``docs/ros.md`` has the rationale.
Two rules follow from the DDS matching rules and the rclpy wheels' behaviour:

* a *best-effort* publisher matches only best-effort subscriptions; a *reliable* publisher
  matches both. Profiles that outside tools (rviz, nav2) subscribe to are reliable.
* a reliable writer that outruns its Python reader makes ``publish()`` raise once the history is
  full: depths are sized for the slowest reader, and high-rate publishers catch the error.
"""
from __future__ import annotations

from rclpy.qos import DurabilityPolicy
from rclpy.qos import HistoryPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy

TRANSITION_DEPTH = 1000
"""History of the transition topic: about 100 s of a 10 Hz robot, 4 s at 250 Hz."""


def _profile(depth: int, reliable: bool, transient_local: bool = False) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=(DurabilityPolicy.TRANSIENT_LOCAL if transient_local
                    else DurabilityPolicy.VOLATILE))


OBSERVATION = _profile(1, reliable=False)
"""``observation`` (bridge -> planner): best effort, keep last 1.

Only the newest state matters to a controller; a lost sample is replaced by the next one and
staleness is judged from ``header.stamp`` (``observation_timeout_s``), never by queueing.
"""

ACTION = _profile(1, reliable=True)
"""``action`` (planner -> bridge): reliable, keep last 1.

One command per tick that should arrive, but an old one is worthless: the bridge's watchdog
applies the safe action when no action is fresher than ``action_timeout_s``.
"""

TRANSITION = QoSProfile(history=HistoryPolicy.KEEP_ALL, depth=TRANSITION_DEPTH,
                        reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)
"""``transition`` (bridge(s) -> learner): reliable, **keep all**.

Every step is training data: the learner may lag (a gradient burst) but must lose nothing. With
keep-last N a reader that has not taken N samples yet has the oldest overwritten without a word
(measured: a flood of 5000 left 1022 stored at depth 1000); with keep-all the reader buffers
them and a writer is held back only when the reader's resources run out (then ``publish()``
raises and the bridge counts the drop). ``depth`` is ignored under keep-all.
"""

POLICY_UPDATE = _profile(1, reliable=True, transient_local=True)
"""``policy_update`` (learner -> planner(s)): reliable, transient local, depth 1 (latched).

A planner started (or restarted) later still receives the newest checkpoint announcement.
Subscriptions must use this profile too: a volatile reader does not get the latched sample.
"""

STATS = _profile(10, reliable=False)
"""Diagnostics (``~/plan_stats``, ``~/train_stats``): best effort, keep last 10.

Monitoring must never slow the control loop down.
"""

EPISODE_STATS = _profile(10, reliable=True)
"""``episode_stats`` (bridge -> anyone): reliable, keep last 10.

One message per episode; every one is a point of the learning curve.
"""

ODOMETRY = _profile(10, reliable=True)
"""``odom`` (bridge -> rviz/nav2): reliable, keep last 10, like ros2_controllers' odometry, so
that reliable subscribers (nav2 uses the system default) match."""

CLOCK = _profile(1, reliable=False)
"""``/clock`` (bridge -> every node with ``use_sim_time``): best effort, keep last 1.

Exactly the profile rclpy's ``TimeSource`` subscribes with; only the newest time matters.
"""

ODOMETRY_INPUT = _profile(1, reliable=False)
"""``odom`` as the robot adapter reads a base driver's odometry: best effort, keep last 1.

A best-effort reader matches reliable and best-effort writers alike (drivers use either), and a
controller wants the newest state only; staleness comes from ``header.stamp``.
"""

COMMAND = _profile(1, reliable=True)
"""``cmd_vel`` (robot adapter -> base driver): reliable, keep last 1.

Matches reliable and best-effort readers (ros2_controllers subscribe with the system default,
reliable); an old command is worthless, so depth 1. The adapter republishes at its command
rate, which keeps the driver's own watchdog fed.
"""

VISUALIZATION = _profile(5, reliable=True)
"""``~/plan`` (nav_msgs/Path) and ``~/plan_markers`` (visualization_msgs/MarkerArray): reliable,
volatile, keep last 5.

What RViz2 and Foxglove subscribe with by default (reliable, volatile, a small depth): a
best-effort writer would not match RViz's default reliable reader. Publishers catch the error a
full reliable history raises (a stalled viewer must not stop the control loop).
"""

DIAGNOSTICS = _profile(10, reliable=True)
"""``/diagnostics`` (diagnostic_msgs/DiagnosticArray, about 1 Hz per node): reliable, volatile,
keep last 10, like diagnostic_updater's publisher, so diagnostic_aggregator, rqt_robot_monitor
and Foxglove match it."""

CONSTRAINTS = _profile(1, reliable=True)
"""``constraints`` (anyone -> planner, sim_bridge): reliable, volatile, keep last 1.

Each message is a whole constraint set, so only the newest matters. A volatile reader matches
every reliable writer, `ros2 topic pub`'s default and a latched one alike (a transient-local
reader would not match a volatile writer). Nodes keep the set as their ``constraints.*``
parameters, so nothing is lost when the publisher goes away.
"""
