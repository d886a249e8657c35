"""Planar constraints a robot must respect: a boundary circle and keep-out zones (no ROS/torch).

A :class:`PlanarConstraints` set lives in the world frame of a task (the RC car: the simulator's
frame, origin at the centre of the circle it drives round; on a robot: its odometry frame) and
says where the robot must not be:

* beyond ``boundary_radius`` of the origin (``inf``: no boundary);
* strictly inside a :class:`KeepOutCircle` (centre, radius);
* inside a :class:`KeepOutPolygon` (vertices in order; even-odd rule; a point exactly on an
  edge may count either way).

A state violating any of them costs 1, else 0 (:meth:`PlanarConstraints.cost`): the simulator
reports that as ``info['cost']``, and :class:`loop_ros.core.constraint_cost.ConstraintCost`
evaluates the same rule batched on predicted observations for safe ARC. Sets are immutable;
a new one replaces the old (run-time changes: ``docs/ros.md``, "Constraints at run time").

Parameter encoding (``constraints.*`` ROS parameters, ``ConstraintsConfig``): circles as a flat
list of ``x, y, radius`` triples, polygons as one string each, ``'x1,y1 x2,y2 x3,y3'``
(:func:`circles_from_flat`, :func:`polygon_from_text` and their inverses).
"""
from __future__ import annotations

from dataclasses import dataclass
import math
import numbers
from typing import Iterable, Sequence

from loop_ros.core.config import ConfigError

OUTLINE_SEGMENTS = 48
"""Segments of a drawn circle (:func:`robot_frame_outlines`)."""


class ConstraintError(ConfigError):
    """A constraint set that cannot be used: bad geometry, or one the task cannot evaluate."""


def _finite(name: str, *values: float) -> None:
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
               for v in values):
        raise ConstraintError(f'{name} must be finite numbers, got {list(values)}')


@dataclass(frozen=True)
class KeepOutCircle:
    """The robot must not be strictly inside this circle (m, world frame)."""

    x: float
    y: float
    radius: float

    def __post_init__(self) -> None:
        _finite('a keep-out circle (x, y, radius)', self.x, self.y, self.radius)
        if self.radius <= 0.0:
            raise ConstraintError(f'a keep-out circle needs a radius > 0, got {self.radius}')
        for name in ('x', 'y', 'radius'):
            object.__setattr__(self, name, float(getattr(self, name)))

    def contains(self, x: float, y: float) -> bool:
        """(x, y) is strictly inside."""
        return math.hypot(x - self.x, y - self.y) < self.radius


@dataclass(frozen=True)
class KeepOutPolygon:
    """The robot must not be inside this polygon (vertices in order, m, world frame).

    Inside follows the even-odd rule (a ray from the point crosses the edges an odd number of
    times), so a self-intersecting outline keeps out the regions it encloses an odd number of
    times.
    """

    vertices: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        try:
            vertices = tuple((float(x), float(y)) for x, y in self.vertices)
        except (TypeError, ValueError):
            raise ConstraintError(f'a keep-out polygon needs (x, y) vertices, got '
                                  f'{self.vertices!r}') from None
        if len(vertices) < 3:
            raise ConstraintError(f'a keep-out polygon needs at least 3 vertices, got '
                                  f'{len(vertices)}: {list(vertices)}')
        _finite('keep-out polygon vertices', *(c for v in vertices for c in v))
        area2 = sum(x0 * y1 - x1 * y0
                    for (x0, y0), (x1, y1) in zip(vertices, vertices[1:] + vertices[:1]))
        if area2 == 0.0:
            raise ConstraintError(f'a keep-out polygon must enclose an area, its vertices '
                                  f'{list(vertices)} are on one line')
        object.__setattr__(self, 'vertices', vertices)

    def contains(self, x: float, y: float) -> bool:
        """(x, y) is inside (even-odd rule); the batched twin computes the same crossings."""
        inside = False
        previous = self.vertices[-1]
        for current in self.vertices:
            (xi, yi), (xj, yj) = current, previous
            if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
                inside = not inside
            previous = current
        return inside


@dataclass(frozen=True)
class PlanarConstraints:
    """Where the robot must not be: beyond the boundary circle, or inside a keep-out zone."""

    boundary_radius: float = math.inf
    """Cost 1 beyond this distance from the origin (m); inf: no boundary."""
    circles: tuple[KeepOutCircle, ...] = ()
    polygons: tuple[KeepOutPolygon, ...] = ()

    def __post_init__(self) -> None:
        radius = self.boundary_radius
        if (isinstance(radius, bool) or not isinstance(radius, numbers.Real)
                or math.isnan(radius) or radius <= 0.0):
            raise ConstraintError(f'the boundary radius must be > 0 (inf: none), got {radius!r}')
        object.__setattr__(self, 'boundary_radius', float(radius))
        object.__setattr__(self, 'circles', tuple(self.circles))
        object.__setattr__(self, 'polygons', tuple(self.polygons))

    @property
    def has_zones(self) -> bool:
        """Any keep-out circle or polygon (these need the robot's position, not just its range)."""
        return bool(self.circles or self.polygons)

    def violated(self, x: float, y: float) -> bool:
        """The position (x, y) breaks a constraint."""
        return (math.hypot(x, y) > self.boundary_radius
                or any(c.contains(x, y) for c in self.circles)
                or any(p.contains(x, y) for p in self.polygons))

    def cost(self, x: float, y: float) -> float:
        """1.0 where (x, y) breaks a constraint, else 0.0 (``info['cost']`` of a simulator)."""
        return 1.0 if self.violated(x, y) else 0.0

    def describe(self) -> str:
        """One line for logs."""
        parts = [f'boundary {self.boundary_radius:g} m']
        parts += [f'circle ({c.x:g}, {c.y:g}) r {c.radius:g}' for c in self.circles]
        parts += [f'polygon [{polygon_text(p)}]' for p in self.polygons]
        return ', '.join(parts)


# --- parameter encoding -----------------------------------------------------------------------

def circles_from_flat(values: Sequence[float]) -> tuple[KeepOutCircle, ...]:
    """``[x0, y0, r0, x1, y1, r1, ...]`` -> circles; ConstraintError naming what is wrong."""
    values = list(values)
    if len(values) % 3:
        raise ConstraintError(f'keep-out circles are x, y, radius triples: {len(values)} '
                              f'numbers is not a multiple of 3 ({values})')
    return tuple(KeepOutCircle(*values[i:i + 3]) for i in range(0, len(values), 3))


def circles_to_flat(circles: Iterable[KeepOutCircle]) -> list[float]:
    """Inverse of :func:`circles_from_flat`."""
    return [v for c in circles for v in (c.x, c.y, c.radius)]


def polygon_from_text(text: str) -> KeepOutPolygon:
    """``'x1,y1 x2,y2 x3,y3'`` -> a polygon; ConstraintError naming what is wrong."""
    vertices = []
    for item in str(text).split():
        x, sep, y = item.partition(',')
        try:
            if not sep:
                raise ValueError
            vertices.append((float(x), float(y)))
        except ValueError:
            raise ConstraintError(f"keep-out polygon {text!r}: vertex {item!r} is not 'x,y' "
                                  "(write a polygon as 'x1,y1 x2,y2 x3,y3')") from None
    try:
        return KeepOutPolygon(tuple(vertices))
    except ConstraintError as exc:
        raise ConstraintError(f'keep-out polygon {text!r}: {exc}') from None


def polygon_text(polygon: KeepOutPolygon) -> str:
    """Inverse of :func:`polygon_from_text` (exact: ``repr`` of each coordinate)."""
    return ' '.join(f'{x!r},{y!r}' for x, y in polygon.vertices)


def from_parameters(boundary_radius: float, circles: Sequence[float], polygons: Sequence[str],
                    default: PlanarConstraints) -> PlanarConstraints:
    """The set the ``constraints.*`` parameters describe; ``boundary_radius`` 0: ``default``'s.

    Raises ConstraintError (a negative radius, a polygon with fewer than 3 vertices, a
    non-finite number, ...).
    """
    if boundary_radius < 0.0:
        raise ConstraintError(f'the boundary radius must be >= 0 (0: the task\'s own), got '
                              f'{boundary_radius}')
    radius = boundary_radius if boundary_radius > 0.0 else default.boundary_radius
    return PlanarConstraints(radius, circles_from_flat(circles),
                             tuple(polygon_from_text(p) for p in polygons))


# --- drawing --------------------------------------------------------------------------------

def robot_frame_outlines(constraints: PlanarConstraints, pose: Sequence[float],
                         segments: int = OUTLINE_SEGMENTS
                         ) -> list[tuple[str, list[tuple[float, float]]]]:
    """Closed outlines of the constraints in the robot's frame, for drawing.

    ``pose``: the robot's ``(x, y, yaw)`` in the constraints' world frame; each outline is
    ``(kind, points)`` with kind ``'boundary'``, ``'circle'`` or ``'polygon'`` and the points
    (first repeated last) expressed in the robot frame: p_robot = R(-yaw) (p_world - (x, y)).
    An infinite boundary is not drawn.
    """
    px, py, yaw = (float(v) for v in pose)
    cos_yaw, sin_yaw = math.cos(yaw), math.sin(yaw)

    def to_robot(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        out = [((x - px) * cos_yaw + (y - py) * sin_yaw,
                -(x - px) * sin_yaw + (y - py) * cos_yaw) for x, y in points]
        return out + out[:1]

    def circle(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
        return [(cx + r * math.cos(2 * math.pi * k / segments),
                 cy + r * math.sin(2 * math.pi * k / segments)) for k in range(segments)]

    shapes: list[tuple[str, list[tuple[float, float]]]] = []
    if math.isfinite(constraints.boundary_radius):
        shapes.append(('boundary', to_robot(circle(0.0, 0.0, constraints.boundary_radius))))
    shapes += [('circle', to_robot(circle(c.x, c.y, c.radius))) for c in constraints.circles]
    shapes += [('polygon', to_robot(list(p.vertices))) for p in constraints.polygons]
    return shapes
