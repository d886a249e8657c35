"""The planner's view as ``visualization_msgs/MarkerArray`` for RViz and Foxglove.

:func:`plan_markers` draws a :class:`loop_ros.core.plan_view.PlanPoses` (planar poses in the
observation's frame) as:

* ``candidates``: one ``LINE_STRIP`` per shown candidate of the last ARC iteration (the best and
  the worst by score), coloured from red (lowest score shown) to green (highest);
* ``members``: one thin blue ``LINE_STRIP`` per scored ensemble member, the executed plan as
  that member imagines it;
* ``spread``: one ``SPHERE`` per step of the executed plan at the members' mean position, its
  diameter twice the members' positional standard deviation (at least :data:`MIN_SPHERE_M`):
  where the model is unsure, the sphere is large.

and :func:`constraint_markers` adds the planner's constraints in force (namespace
``constraints``): the boundary circle (orange) and each keep-out circle and polygon (red) as a
closed ``LINE_STRIP``, in the same robot frame (the outlines come from
:meth:`loop_ros.core.constraint_cost.ConstraintCost.outlines`).

The array starts with a ``DELETEALL``, so markers of a previous plan (more candidates, another
horizon) never linger. Markers have no lifetime: the next plan replaces them.
"""
from __future__ import annotations

from typing import Any

from geometry_msgs.msg import Point
import numpy as np
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker
from visualization_msgs.msg import MarkerArray

from loop_ros.core.plan_view import PlanPoses

NAMESPACE_CANDIDATES = 'candidates'
NAMESPACE_MEMBERS = 'members'
NAMESPACE_SPREAD = 'spread'
NAMESPACE_CONSTRAINTS = 'constraints'
LINE_WIDTH_M = 0.02
MEMBER_LINE_WIDTH_M = 0.01
MIN_SPHERE_M = 0.02
CONSTRAINT_LINE_WIDTH_M = 0.03
CONSTRAINT_COLOURS = {
    'boundary': ColorRGBA(r=1.0, g=0.55, b=0.0, a=0.9),
    'circle': ColorRGBA(r=0.9, g=0.1, b=0.1, a=0.9),
    'polygon': ColorRGBA(r=0.9, g=0.1, b=0.1, a=0.9),
}
"""Outline colour per constraint kind: the boundary orange, keep-out zones red."""


def score_colour(fraction: float, alpha: float = 0.8) -> ColorRGBA:
    """Red (0, the lowest score shown) through yellow to green (1, the highest)."""
    f = float(np.clip(fraction, 0.0, 1.0)) if np.isfinite(fraction) else 0.0
    return ColorRGBA(r=float(min(1.0, 2.0 * (1.0 - f))), g=float(min(1.0, 2.0 * f)), b=0.0,
                     a=float(alpha))


def _points(poses: np.ndarray) -> list[Point]:
    return [Point(x=float(x), y=float(y), z=0.0) for x, y, _ in poses]


def _marker(header: Any, ns: str, index: int, kind: int) -> Marker:
    marker = Marker()
    marker.header = header
    marker.ns = ns
    marker.id = index
    marker.type = kind
    marker.action = Marker.ADD
    marker.pose.orientation.w = 1.0
    marker.frame_locked = False
    return marker


def plan_markers(view: PlanPoses, header: Any) -> MarkerArray:
    """The markers of one plan (see the module docstring); ``header`` of the observation."""
    out = MarkerArray()
    clear = Marker()
    clear.header = header
    clear.action = Marker.DELETEALL
    out.markers.append(clear)
    scores = np.asarray(view.candidate_scores, dtype=np.float64)
    finite = scores[np.isfinite(scores)]
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
    span = high - low
    for i, (poses, score) in enumerate(zip(view.candidate_poses, scores)):
        marker = _marker(header, NAMESPACE_CANDIDATES, i, Marker.LINE_STRIP)
        marker.scale.x = LINE_WIDTH_M
        fraction = ((score - low) / span if span > 0 else 1.0) if np.isfinite(score) else 0.0
        marker.color = score_colour(fraction)
        marker.points = _points(poses)
        out.markers.append(marker)
    members = np.asarray(view.member_poses, dtype=np.float64)
    for i, poses in enumerate(members):
        marker = _marker(header, NAMESPACE_MEMBERS, i, Marker.LINE_STRIP)
        marker.scale.x = MEMBER_LINE_WIDTH_M
        marker.color = ColorRGBA(r=0.2, g=0.4, b=1.0, a=0.6)
        marker.points = _points(poses)
        out.markers.append(marker)
    if members.size:
        mean = members[..., :2].mean(axis=0)                                 # (H+1, 2)
        std = np.sqrt(members[..., :2].var(axis=0).sum(axis=-1))            # (H+1,)
        for t, ((x, y), s) in enumerate(zip(mean, std)):
            marker = _marker(header, NAMESPACE_SPREAD, t, Marker.SPHERE)
            marker.pose.position.x, marker.pose.position.y = float(x), float(y)
            diameter = max(2.0 * float(s), MIN_SPHERE_M)
            marker.scale.x = marker.scale.y = marker.scale.z = diameter
            marker.color = ColorRGBA(r=0.2, g=0.4, b=1.0, a=0.25)
            out.markers.append(marker)
    return out


def constraint_markers(outlines: list[tuple[str, list[tuple[float, float]]]],
                       header: Any) -> list[Marker]:
    """One closed ``LINE_STRIP`` per outline ``(kind, points in the robot frame)``."""
    out = []
    for i, (kind, points) in enumerate(outlines):
        marker = _marker(header, NAMESPACE_CONSTRAINTS, i, Marker.LINE_STRIP)
        marker.scale.x = CONSTRAINT_LINE_WIDTH_M
        marker.color = CONSTRAINT_COLOURS[kind]
        marker.points = [Point(x=float(x), y=float(y), z=0.0) for x, y in points]
        out.append(marker)
    return out
