"""Planar constraints as a batched task cost on predicted observations, replaceable at run time.

A task whose cost is a :class:`ConstraintCost` (the RC car's, ``loop_ros/sim/rc_car.py``) has
its constraints read at every call from a :class:`~loop_ros.core.constraints.PlanarConstraints`
set held as tensors on the caller's device. :meth:`ConstraintCost.set` swaps in a new set
between two plans (one attribute assignment, tensors prebuilt on every device seen so far), so
the planner picks up a changed boundary or a new keep-out zone at its next plan without being
rebuilt or retrained. :func:`own_constraint_cost` gives a planner its own copy of a registered
task's cost, so two planners in one process never share constraint changes.

The cost is 1 per predicted state that violates any constraint, else 0: the rule of
:meth:`PlanarConstraints.cost`, which the simulator reports as ``info['cost']``.
:meth:`ConstraintCost.cost_and_violation` also says by how much (metres), which safe ARC uses
to rank plans that all violate.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from loop_ros.core.constraints import ConstraintError
from loop_ros.core.constraints import robot_frame_outlines
from loop_ros.core.constraints import PlanarConstraints
from loop_ros.core.tasks import Task

ObsFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ObservedPosition:
    """Where a task's observation puts the robot in the world frame of its constraints.

    ``absolute`` is False when the observation fixes the pose only up to a rotation about the
    origin (the RC car's circle-relative features): ``position``/``heading`` then give one
    representative pose, and only the boundary circle (unchanged by that rotation) can be
    evaluated; keep-out zones are refused with ``hint``.

    Shapes:
        position: obs (..., O) -> (..., 2) x, y (m); heading: obs (..., O) -> (...) yaw (rad)
    """

    position: ObsFn
    heading: ObsFn
    absolute: bool = True
    hint: str = ''
    """Appended to the refusal of keep-out zones when ``absolute`` is False (what to use)."""

    def pose(self, obs: torch.Tensor) -> torch.Tensor:
        """(..., 3) x, y, yaw."""
        return torch.cat([self.position(obs), self.heading(obs).unsqueeze(-1)], dim=-1)


def check_observable(constraints: PlanarConstraints, observed: ObservedPosition) -> None:
    """ConstraintError when observations located by ``observed`` cannot evaluate them."""
    if constraints.has_zones and not observed.absolute:
        raise ConstraintError("keep-out zones need the robot's position in the world, and this "
                              "task's observation gives only its distance from the origin"
                              + (f': {observed.hint}' if observed.hint else ''))


@dataclass(frozen=True)
class _Geometry:
    """One constraint set as tensors on one device.

    Shapes (K circles, P polygons of at most V vertices, shorter ones padded with their last
    vertex, which adds only zero-length edges):
        circles: (K, 3) x, y, radius; polygon_x, polygon_y: (P, V)
    """

    boundary_radius: float
    circles: torch.Tensor
    polygon_x: torch.Tensor
    polygon_y: torch.Tensor

    @classmethod
    def build(cls, constraints: PlanarConstraints, device: torch.device,
              dtype: torch.dtype) -> _Geometry:
        circles = torch.tensor([[c.x, c.y, c.radius] for c in constraints.circles],
                               dtype=dtype).reshape(-1, 3)
        longest = max((len(p.vertices) for p in constraints.polygons), default=0)
        padded = [list(p.vertices) + [p.vertices[-1]] * (longest - len(p.vertices))
                  for p in constraints.polygons]
        vertices = torch.tensor(padded, dtype=dtype).reshape(len(padded), longest, 2)
        return cls(constraints.boundary_radius, circles.to(device),
                   vertices[..., 0].to(device), vertices[..., 1].to(device))

    def violated(self, xy: torch.Tensor) -> torch.Tensor:
        """Bool (...): (x, y) beyond the boundary or inside a keep-out zone."""
        return self.measure(xy)[0]

    def measure(self, xy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`violated` and how far (m) (x, y) violates, (...) each, in one pass: the
        largest of its distance beyond the boundary circle and, inside a keep-out zone, its
        distance to the zone's edge; 0 where nothing is violated."""
        x, y = xy[..., 0], xy[..., 1]
        beyond = torch.hypot(x, y) - self.boundary_radius
        out, depth = beyond > 0.0, beyond.clamp(min=0.0)
        if self.circles.numel():
            cx, cy, radius = self.circles.unbind(-1)                          # (K,)
            into = radius - torch.hypot(x.unsqueeze(-1) - cx, y.unsqueeze(-1) - cy)
            out = out | (into > 0.0).any(dim=-1)
            depth = torch.maximum(depth, into.clamp(min=0.0).amax(dim=-1))
        if self.polygon_x.numel():
            inside = self._inside_polygons(x, y)                              # (..., P)
            out = out | inside.any(dim=-1)
            # distance to the nearest edge (i, j = i-1), for the points inside the polygon
            xi, yi = self.polygon_x, self.polygon_y                           # (P, V)
            ex, ey = xi - xi.roll(1, dims=-1), yi - yi.roll(1, dims=-1)
            px, py = x[..., None, None], y[..., None, None]                   # (..., 1, 1)
            along = ((px - xi + ex) * ex + (py - yi + ey) * ey) / (ex * ex + ey * ey).clamp(
                min=1e-12)
            along = along.clamp(0.0, 1.0)                                    # 0 on padding
            to_edge = torch.hypot(px - (xi - ex) - along * ex, py - (yi - ey) - along * ey)
            depth = torch.maximum(depth, (to_edge.amin(dim=-1) * inside).amax(dim=-1))
        return out, depth

    def _inside_polygons(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Bool (..., P): (x, y) inside each polygon, by the even-odd rule (crossings of a ray
        towards +x, edge (i, j = i-1) per vertex)."""
        xi, yi = self.polygon_x, self.polygon_y                               # (P, V)
        xj, yj = xi.roll(1, dims=-1), yi.roll(1, dims=-1)
        px, py = x[..., None, None], y[..., None, None]                       # (..., 1, 1)
        straddles = (yi > py) != (yj > py)
        crossing = straddles & (px < (xj - xi) * (py - yi) / (yj - yi) + xi)
        return crossing.sum(dim=-1) % 2 == 1


class ConstraintCost:
    """``cost(obs, action, next_obs)``: 1 where ``next_obs`` violates the constraints, else 0.

    Args:
        default: the task's own constraints (what a ``constraints.boundary_radius`` of 0 means).
        observed: how an observation locates the robot.
    """

    def __init__(self, default: PlanarConstraints, observed: ObservedPosition) -> None:
        self.default = default
        self.observed = observed
        self.check(default)
        self._state: tuple[PlanarConstraints, dict[tuple[torch.device, torch.dtype],
                                                   _Geometry]] = (default, {})

    @property
    def constraints(self) -> PlanarConstraints:
        """The set in force."""
        return self._state[0]

    def check(self, constraints: PlanarConstraints) -> None:
        """ConstraintError when the observation cannot evaluate ``constraints``."""
        check_observable(constraints, self.observed)

    def set(self, constraints: PlanarConstraints) -> None:
        """Use ``constraints`` from the next call on (call between plans, never during one).

        The tensors are built at once on every device and dtype used so far, so the next plan
        pays no host-to-device copy. Raises ConstraintError (see :meth:`check`); nothing
        changes then.
        """
        self.check(constraints)
        cache = {key: _Geometry.build(constraints, *key) for key in self._state[1]}
        self._state = (constraints, cache)

    def fork(self) -> ConstraintCost:
        """An independent cost with the same default and the constraints now in force."""
        twin = ConstraintCost(self.default, self.observed)
        twin.set(self.constraints)
        return twin

    def violated(self, next_obs: torch.Tensor) -> torch.Tensor:
        """Bool (...) of observations (..., O) that violate the constraints in force."""
        return self._geometry(next_obs).violated(self.observed.position(next_obs))

    def _geometry(self, like: torch.Tensor) -> _Geometry:
        """The constraints in force as tensors on ``like``'s device and dtype (built once)."""
        constraints, cache = self._state
        key = (like.device, like.dtype)
        geometry = cache.get(key)
        if geometry is None:
            geometry = cache.setdefault(key, _Geometry.build(constraints, *key))
        return geometry

    def __call__(self, obs: torch.Tensor, action: torch.Tensor,
                 next_obs: torch.Tensor) -> torch.Tensor:
        """Cost (...) of reaching ``next_obs`` (``obs`` and ``action`` are unused)."""
        return self.violated(next_obs).to(next_obs.dtype)

    def cost_and_violation(self, obs: torch.Tensor, action: torch.Tensor,
                           next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The cost (...) and how far (m, (...)) ``next_obs`` violates the constraints in force
        (0 where the cost is 0), in one pass: safe ARC ranks plans that all violate by the
        second (``loop_ros.core.arc``)."""
        violated, depth = self._geometry(next_obs).measure(self.observed.position(next_obs))
        return violated.to(next_obs.dtype), depth

    @torch.no_grad()
    def outlines(self, obs: np.ndarray) -> list[tuple[str, list[tuple[float, float]]]]:
        """The constraints in force as closed outlines in the frame of the robot observing
        ``obs`` (:func:`~loop_ros.core.constraints.robot_frame_outlines`), for drawing."""
        pose = self.observed.pose(torch.as_tensor(np.asarray(obs, np.float64)))
        return robot_frame_outlines(self.constraints, pose.tolist())


def own_constraint_cost(task: Task) -> tuple[Task, ConstraintCost | None]:
    """A copy of ``task`` with its own :class:`ConstraintCost` (None: the task has none).

    A planner changes its copy's constraints without touching the registered task or any other
    planner of the process.
    """
    if not isinstance(task.cost, ConstraintCost):
        return task, None
    cost = task.cost.fork()
    return dataclasses.replace(task, cost=cost), cost
