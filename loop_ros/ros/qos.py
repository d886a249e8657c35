"""Named QoS profiles of every loop_ros topic, in one place (nav2's ``qos_profiles.hpp`` habit).

Use these constants in every publisher and subscription; ``docs/ros.md`` has the rationale.
Two rules follow from the DDS matching rules and ``ros2-from-pypi.md`` section 1:

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

TRANSITION = _profile(TRANSITION_DEPTH, reliable=True)
"""``transition`` (bridge(s) -> learner): reliable, keep last :data:`TRANSITION_DEPTH`.

Every step is training data: the learner may lag (a gradient burst) but must lose nothing.
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
