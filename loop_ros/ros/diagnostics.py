"""``/diagnostics`` for every loop_ros node, the way diagnostic_updater publishes it.

A node hands :class:`DiagnosticsPublisher` a callable returning a :class:`Status` (level, a
message saying why, key-values); the publisher calls it about once a second on a **wall-clock**
timer (steady time: diagnostics must keep coming when simulated time stalls) and publishes a
``diagnostic_msgs/DiagnosticArray`` on the absolute ``/diagnostics`` with one
``DiagnosticStatus``:

* ``name``: ``'<node>: <what>'`` as diagnostic_updater writes it, with the node's namespace in
  front when it has one (``robot0/planner: control loop``), so several robots stay apart;
* ``hardware_id``: what the node drives or serves (the env id for loop_ros's nodes);
* ``level``: OK, WARN or ERROR (``diagnostic_msgs/DiagnosticStatus`` constants), ``message``:
  why; ``values``: ``KeyValue`` strings.

Use in a node (three lines)::

    from loop_ros.ros.diagnostics import DiagnosticsPublisher, Status, OK, WARN
    self.diagnostics = DiagnosticsPublisher(self, 'driver', self._status,
                                            hardware_id='my_robot')
    # def _status(self, window_s: float) -> Status: return Status(OK, 'ok', {'rate': 10.0})

The status callable gets the wall seconds since its previous call (the window), so rules like
"more than 10% of the plans in the last window missed the deadline" need no clock of their own;
:class:`Deltas` turns the node's running counters into per-window changes. A callable that
raises gives an ERROR status naming the exception instead of killing the timer.
"""
from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
import math
import time
from typing import Any, Callable, Mapping

from diagnostic_msgs.msg import DiagnosticArray
from diagnostic_msgs.msg import DiagnosticStatus
from diagnostic_msgs.msg import KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock
from rclpy.clock import ClockType
from rclpy.node import Node

from loop_ros.ros import qos
from loop_ros.ros.publish import PublishError as RCLError  # full reliable history

DIAGNOSTICS_TOPIC = '/diagnostics'
"""Absolute, as diagnostic_updater and diagnostic_aggregator use it."""
PERIOD_S = 1.0
"""Default update period (wall seconds), diagnostic_updater's default."""

OK, WARN, ERROR, STALE = 0, 1, 2, 3
"""Levels as ints; :data:`LEVEL_BYTES` maps them to the message's ``byte`` constants."""
LEVEL_BYTES = {OK: DiagnosticStatus.OK, WARN: DiagnosticStatus.WARN,
               ERROR: DiagnosticStatus.ERROR, STALE: DiagnosticStatus.STALE}
LEVEL_NAMES = {OK: 'OK', WARN: 'WARN', ERROR: 'ERROR', STALE: 'STALE'}


@dataclass(frozen=True)
class Status:
    """One diagnostic status: ``level`` (OK/WARN/ERROR), ``message`` (why), ``values``."""

    level: int
    message: str
    values: Mapping[str, Any] = field(default_factory=dict)


def worst(*checks: tuple[int, str]) -> tuple[int, str]:
    """The highest level of ``(level, reason)`` pairs and the reasons at that level, joined."""
    level = max((lvl for lvl, _ in checks), default=OK)
    reasons = [why for lvl, why in checks if lvl == level and why]
    return level, '; '.join(reasons)


def format_value(value: Any) -> str:
    """A KeyValue string: floats with 4 significant digits, bools lower case, lists joined."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, float):
        return 'nan' if math.isnan(value) else f'{value:.4g}'
    if isinstance(value, (list, tuple, set, frozenset)):
        return ', '.join(format_value(v) for v in value)
    return str(value)


def diagnostic_name(node: Node, what: str) -> str:
    """``'<node>: <what>'``; the namespace is kept (``robot0/planner: control loop``)."""
    return f'{node.get_fully_qualified_name().lstrip("/")}: {what}'


class Deltas:
    """Changes of running counters between two calls (one diagnostics window)."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def __call__(self, name: str, value: float) -> float:
        """``value`` minus its value at the previous call (the whole value at the first)."""
        previous = self._last.get(name, 0)
        self._last[name] = value
        return value - previous


def to_message(status: Status, name: str, hardware_id: str, stamp: Any) -> DiagnosticArray:
    """The DiagnosticArray of one status."""
    msg = DiagnosticArray()
    msg.header.stamp = stamp
    entry = DiagnosticStatus()
    entry.level = LEVEL_BYTES[int(status.level)]
    entry.name = name
    entry.message = status.message
    entry.hardware_id = hardware_id
    entry.values = [KeyValue(key=str(k), value=format_value(v)) for k, v in status.values.items()]
    msg.status.append(entry)
    return msg


class DiagnosticsPublisher:
    """Publishes ``status(window_s)`` on ``/diagnostics`` every ``period_s`` wall seconds.

    Args:
        node: the node; its clock stamps the message (simulated time under ``use_sim_time``),
            its name and namespace name the status.
        what: the part being diagnosed, after ``'<node>: '``.
        status: called with the wall seconds since its previous call.
        hardware_id: ``DiagnosticStatus.hardware_id`` (diagnostic_updater wants one; 'none'
            for pure software).
        period_s: update period in wall seconds (steady clock).
    """

    def __init__(self, node: Node, what: str, status: Callable[[float], Status],
                 hardware_id: str = 'none', period_s: float = PERIOD_S) -> None:
        self.node = node
        self.name = diagnostic_name(node, what)
        self.hardware_id = hardware_id or 'none'
        self.status = status
        self.publisher = node.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC,
                                               qos.DIAGNOSTICS)
        self._last = time.monotonic()
        self.last_status: Status | None = None
        self.timer = node.create_timer(period_s, self.update,
                                       callback_group=MutuallyExclusiveCallbackGroup(),
                                       clock=Clock(clock_type=ClockType.STEADY_TIME))

    def evaluate(self) -> Status:
        """Call the status function for the window since the previous call."""
        now = time.monotonic()
        window, self._last = max(now - self._last, 1e-9), now
        try:
            return self.status(window)
        except Exception as exc:  # a broken status must not silence the node's diagnostics
            return Status(ERROR, f'diagnostics failed: {exc!r}')

    def update(self) -> DiagnosticArray:
        """Evaluate and publish now; returns the message (tests use it)."""
        status = self.evaluate()
        self.last_status = status
        msg = to_message(status, self.name, self.hardware_id,
                         self.node.get_clock().now().to_msg())
        try:
            self.publisher.publish(msg)
        except RCLError:  # a reliable reader far behind: skip this update
            pass
        return msg

    def destroy(self) -> None:
        """Stop the timer and remove the publisher."""
        self.node.destroy_timer(self.timer)
        self.node.destroy_publisher(self.publisher)
