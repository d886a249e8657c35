"""Parameters set at run time: validated on set, staged, applied by the node between two ticks.

rclpy's three parameter callbacks (pre-set, on-set, post-set):
:func:`loop_ros.ros.params.add_validation` already refuses wrong types, ranges, strings and
cross-field errors, and the read-only descriptors
refuse static parameters (and those the node does not use while running,
``loop_ros.core.live_config``). :class:`LiveParameters` adds the node's own on-set check
(e.g. the planner asks its ARC planner whether it can serve the new values) and, in post-set,
stages what was accepted; the node takes the staged changes at a safe point (the planner: a
tick start with no plan in flight; the learner: between two training slices) and applies them.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

from loop_ros.ros.params import _from_ros

Check = Callable[[dict[str, Any]], 'str | None']
"""``check(changes) -> reason`` (None: acceptable); ``changes``: the staged ones plus the new."""


class LiveParameters:
    """Stages accepted parameter changes until the node :meth:`take` s them.

    Create it after the node declared its parameters: rclpy runs on-set callbacks for
    declarations too.
    """

    def __init__(self, node: Node, check: Check | None = None) -> None:
        self.node = node
        self._check = check
        self._lock = threading.Lock()
        self._staged: dict[str, Any] = {}
        node.add_on_set_parameters_callback(self._on_set)
        node.add_post_set_parameters_callback(self._on_post_set)

    def _on_set(self, parameters: list[Parameter]) -> SetParametersResult:
        if self._check is None:
            return SetParametersResult(successful=True)
        changes = {p.name: _from_ros(p.value) for p in parameters}
        with self._lock:
            merged = {**self._staged, **changes}
        try:
            reason = self._check(merged)
        except Exception as exc:  # a failing check refuses, it does not crash the service
            reason = f'cannot check {", ".join(sorted(changes))}: {exc!r}'
        return SetParametersResult(successful=reason is None, reason=reason or '')

    def _on_post_set(self, parameters: list[Parameter]) -> None:
        with self._lock:
            self._staged.update({p.name: _from_ros(p.value) for p in parameters})

    def take(self) -> dict[str, Any]:
        """The changes accepted since the last call (name -> value), and forget them."""
        with self._lock:
            staged, self._staged = self._staged, {}
        return staged

    @property
    def pending(self) -> bool:
        """Changes are staged and not applied yet."""
        with self._lock:
            return bool(self._staged)
