"""The planner's and the learner's ecosystem parts, kept out of the node files.

:class:`PlannerExtras` and :class:`LearnerExtras` give the two nodes, with a few one-line hooks:

* ``/diagnostics`` (:mod:`loop_ros.ros.diagnostics`; the rules:
  :mod:`loop_ros.ros.node_diagnostics`);
* run-time parameters (:class:`loop_ros.ros.live_params.LiveParameters`), applied at the node's
  safe point: ``before_tick()``;
* the planner's run-time constraints (``constraints.*``, also set by the ``constraints`` topic:
  :mod:`loop_ros.ros.constraints`): its own copy of the task's
  :class:`~loop_ros.core.constraint_cost.ConstraintCost`, changed in ``before_tick()``;
* the planner's ``~/plan_markers`` (``publish_markers``), drawn by :mod:`loop_ros.ros.markers`
  from :func:`loop_ros.core.plan_view.plan_view` and the constraints in ``after_tick()``.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from loop_ros import graph
from loop_ros.core.config import ConfigError
from loop_ros.core.constraint_cost import ConstraintCost
from loop_ros.core.constraint_cost import own_constraint_cost
from loop_ros.core.constraints import PlanarConstraints
from loop_ros.core.live_config import apply_learner_changes
from loop_ros.core.live_config import apply_policy_changes
from loop_ros.core.live_config import check_learner_changes
from loop_ros.core.live_config import check_policy_changes
from loop_ros.core.live_config import group_changes
from loop_ros.core.live_config import split_changes
from loop_ros.core.node_config import ConstraintsConfig
from loop_ros.core.plan_view import plan_view
from loop_ros.core.tasks import Task
from loop_ros.ros import qos
from loop_ros.ros.clock import ns_to_stamp
from loop_ros.ros.diagnostics import DiagnosticsPublisher
from loop_ros.ros.live_params import LiveParameters
from loop_ros.ros.markers import constraint_markers
from loop_ros.ros.markers import plan_markers
from loop_ros.ros.node_diagnostics import LearnerDiagnostics
from loop_ros.ros.node_diagnostics import PlannerDiagnostics
from loop_ros.ros.params import read_config
from loop_ros.ros.publish import safe_publish


MARKER_BEST = 3
MARKER_WORST = 3
"""Candidates drawn per plan: the best and the worst of the last ARC iteration."""


def _own_changes(cfg: Any, own: dict[str, Any]) -> Any:
    """``cfg`` (a node dataclass) with the node-level changes it has fields for."""
    names = {f.name for f in dataclasses.fields(cfg)}
    known = {k: tuple(v) if isinstance(v, list) else v for k, v in own.items() if k in names}
    return dataclasses.replace(cfg, **known) if known else cfg


class PlannerExtras:
    """Diagnostics, run-time parameters and plan markers of the planner node."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self.status = PlannerDiagnostics(node)
        env_id = str(node.get_parameter('env_id').value)
        self.diagnostics = DiagnosticsPublisher(node, 'control loop', self.status,
                                                hardware_id=env_id)
        self.live = LiveParameters(node, self._check)
        self.marker_pub = node.create_publisher(MarkerArray, graph.PLAN_MARKERS_TOPIC,
                                                qos.VISUALIZATION)
        self._no_pose_warned = False
        self.constraint_cost: ConstraintCost | None = None
        """The planner's own copy of its task's constraint cost (None: the task has none)."""

    def count_rejected(self) -> None:
        """One malformed message refused (shown in the diagnostics)."""
        self.status.rejected_messages += 1

    def _check(self, changes: dict[str, Any]) -> str | None:
        _, loop = split_changes(changes)
        constraints = group_changes(changes, 'constraints')
        policy = self.node.policy
        try:
            if loop and policy is not None:
                check_policy_changes(policy, loop)
            if constraints and policy is not None:   # unconfigured: checked at configure
                self._constraints(read_config(self.node, ConstraintsConfig, 'constraints',
                                              changes=constraints))
        except (ValueError, ConfigError) as exc:   # ConstraintError is a ConfigError
            return str(exc)
        return None

    # --- run-time constraints ---------------------------------------------------------------

    def _constraints(self, cfg: ConstraintsConfig) -> PlanarConstraints | None:
        """The set ``cfg`` gives on this planner's task; ConstraintError if it cannot use it."""
        cost = self.constraint_cost
        constraints = cfg.for_task(cost.default if cost is not None else None,
                                   self.node.cfg.env_id)
        if cost is not None and constraints is not None:
            cost.check(constraints)
        return constraints

    def configure_constraints(self, task: Task) -> Task:
        """At configure: ``task`` with the planner's own constraint cost, set from the
        ``constraints.*`` parameters. Raises ConfigError when the task cannot take them."""
        task, self.constraint_cost = own_constraint_cost(task)
        self._apply_constraints()
        return task

    def _apply_constraints(self) -> None:
        """Plan against the ``constraints.*`` parameters from the next plan on."""
        constraints = self._constraints(read_config(self.node, ConstraintsConfig,
                                                    'constraints'))
        if constraints is not None and self.constraint_cost is not None:
            self.constraint_cost.set(constraints)
            self.node.get_logger().info(f'constraints: {constraints.describe()}')

    def before_tick(self) -> None:
        """At a tick start with no plan in flight: apply the staged parameter changes.

        Also notes the policy version right after the tick's weight swap, so the diagnostics'
        policy age counts from the swap (to a tick), not from the next report.
        """
        node = self.node
        if node.policy is not None:
            self.status.weights_age(node.policy.version, time.monotonic())
        future = node._plan_future
        if (future is not None and not future.done()) or not self.live.pending:
            return
        changes = self.live.take()
        own, loop = split_changes(changes)
        try:
            if own and node.cfg is not None:
                node.cfg = _own_changes(node.cfg, own)
            if loop and node.policy is not None:
                apply_policy_changes(node.policy, loop)
            if group_changes(changes, 'constraints') and node.policy is not None:
                self._apply_constraints()
        except (ValueError, ConfigError) as exc:   # checked on set; only a race gets here
            node.get_logger().error(f'could not apply {sorted(changes)}: {exc}')
            return
        node.get_logger().info('parameters applied: ' + ', '.join(
            f'{k}={v!r}' for k, v in sorted(changes.items())))

    def after_tick(self, obs: np.ndarray, stamp_ns: int, frame_id: str, info: Any) -> None:
        """After a tick that planned: publish ``~/plan_markers`` when ``publish_markers``."""
        node = self.node
        if info is None or node.cfg is None or not node.cfg.publish_markers:
            return
        view = plan_view(node.policy, obs, node.period_s, MARKER_BEST, MARKER_WORST)
        if view is None:
            if not self._no_pose_warned:
                self._no_pose_warned = True
                node.get_logger().warning('publish_markers: this task has no planar base '
                                          '(Task.body_twist_indices) or no planner: no markers')
            return
        header = Header(stamp=ns_to_stamp(stamp_ns), frame_id=frame_id)
        array = plan_markers(view, header)
        if self.constraint_cost is not None:
            array.markers += constraint_markers(self.constraint_cost.outlines(obs), header)
        safe_publish(node, self.marker_pub, array)


class LearnerExtras:
    """Diagnostics and run-time parameters of the learner node."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self.status = LearnerDiagnostics(node)
        self.diagnostics = DiagnosticsPublisher(node, 'training', self.status,
                                                hardware_id=node.cfg.env_id)
        self.live = LiveParameters(node, self._check)

    def _check(self, changes: dict[str, Any]) -> str | None:
        _, loop = split_changes(changes)
        if loop:
            try:
                check_learner_changes(self.node.learner, loop)
            except (ValueError, ConfigError) as exc:
                return str(exc)
        return None

    def before_tick(self) -> None:
        """Between two training slices (the training thread): apply the staged changes.

        Also notes the checkpoint version, so its age counts from the slice that wrote it.
        """
        node = self.node
        if node.version > 0:
            self.status.checkpoint_age(node.version, time.monotonic())
        if not self.live.pending:
            return
        changes = self.live.take()
        own, loop = split_changes(changes)
        try:
            if own:
                node.cfg = _own_changes(node.cfg, own)
            if loop:
                apply_learner_changes(node.learner, loop)
        except (ValueError, ConfigError) as exc:
            node.get_logger().error(f'could not apply {sorted(changes)}: {exc}')
            return
        node.get_logger().info('parameters applied: ' + ', '.join(
            f'{k}={v!r}' for k, v in sorted(changes.items())))

