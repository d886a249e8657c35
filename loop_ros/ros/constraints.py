"""``constraints`` topic: ``loop_ros/Constraints`` messages onto the ``constraints.*`` parameters.

The planner and the sim bridge keep their constraint set as parameters (one source of truth:
``ConstraintsConfig``). A message on ``constraints`` is turned into one atomic parameter set
on the receiving node (:func:`subscribe_constraints`), so it passes the same checks as
``ros2 param set`` and is applied the same way: by the planner at its next tick, by the sim
bridge before its next step. A message that fails them is logged with the reason and changes
nothing.

:func:`publish_constraints` is ``loop-ros constraints`` (no ``ros2 topic pub`` in a pip venv).
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Sequence

from rclpy.node import Node
from rclpy.parameter import Parameter

from loop_ros import graph
from loop_ros.core.constraints import circles_from_flat
from loop_ros.core.constraints import circles_to_flat
from loop_ros.core.constraints import ConstraintError
from loop_ros.core.constraints import KeepOutPolygon
from loop_ros.core.constraints import polygon_from_text
from loop_ros.core.constraints import polygon_text
from loop_ros.msg import Constraints
from loop_ros.msg import KeepOutCircle
from loop_ros.msg import KeepOutPolygon as KeepOutPolygonMsg
from loop_ros.ros import qos

PREFIX = 'constraints'


def _boundary_radius(value: float) -> float:
    radius = float(value)
    if not math.isfinite(radius) or radius < 0.0:
        raise ConstraintError(f"boundary_radius must be finite and >= 0 (0: the task's own), "
                              f'got {radius}')
    return radius


def parameters_from_msg(msg: Constraints) -> list[Parameter]:
    """The ``constraints.*`` parameters of a message; ConstraintError naming what is wrong."""
    radius = _boundary_radius(msg.boundary_radius)
    circles = circles_from_flat([v for c in msg.circles for v in (c.x, c.y, c.radius)])
    polygons = []
    for index, p in enumerate(msg.polygons):
        if len(p.x) != len(p.y):
            raise ConstraintError(f'polygon {index}: {len(p.x)} x but {len(p.y)} y coordinates')
        try:
            polygons.append(KeepOutPolygon(tuple(zip(p.x, p.y))))
        except ConstraintError as exc:
            raise ConstraintError(f'polygon {index}: {exc}') from None
    return [
        Parameter(f'{PREFIX}.boundary_radius', Parameter.Type.DOUBLE, radius),
        Parameter(f'{PREFIX}.circles', Parameter.Type.DOUBLE_ARRAY, circles_to_flat(circles)),
        Parameter(f'{PREFIX}.polygons', Parameter.Type.STRING_ARRAY,
                  [polygon_text(p) for p in polygons]),
    ]


def constraints_msg(boundary_radius: float = 0.0, circles: Sequence[float] = (),
                    polygons: Sequence[str] = ()) -> Constraints:
    """A message from the parameter encoding (flat circle triples, ``'x,y x,y x,y'`` polygons).

    Raises ConstraintError for a bad radius, circle list or polygon.
    """
    msg = Constraints(boundary_radius=_boundary_radius(boundary_radius))
    msg.circles = [KeepOutCircle(x=c.x, y=c.y, radius=c.radius)
                   for c in circles_from_flat(circles)]
    for text in polygons:
        vertices = polygon_from_text(text).vertices
        msg.polygons.append(KeepOutPolygonMsg(x=[v[0] for v in vertices],
                                              y=[v[1] for v in vertices]))
    return msg


def subscribe_constraints(node: Node, callback_group: Any = None,
                          on_rejected: Callable[[], None] | None = None) -> Any:
    """Subscribe ``node`` to ``constraints``: each message becomes one atomic parameter set.

    A message that cannot be converted, or whose parameters the node refuses (its validation
    callbacks: geometry, and what its task can evaluate), is logged as an error with the reason
    and reported to ``on_rejected``; its parameters stay as they were. Returns the subscription.
    """

    def reject(reason: str) -> None:
        node.get_logger().error(f'rejected a constraints message: {reason}')
        if on_rejected is not None:
            on_rejected()

    def on_message(msg: Constraints) -> None:
        try:
            parameters = parameters_from_msg(msg)
        except ConstraintError as exc:
            reject(str(exc))
            return
        result = node.set_parameters_atomically(parameters)
        if not result.successful:
            reject(result.reason)

    return node.create_subscription(Constraints, graph.CONSTRAINTS_TOPIC, on_message,
                                    qos.CONSTRAINTS, callback_group=callback_group)


def publish_constraints(msg: Constraints, namespace: str = '', wait_s: float = 5.0) -> int:
    """Publish one constraints message to ``<namespace>/constraints`` (``loop-ros constraints``).

    Waits up to ``wait_s`` for subscribers (planner, sim bridge), publishes, waits until they
    acknowledged it. Returns 0, or 1 when nobody subscribed within ``wait_s`` (nothing sent).
    """
    import rclpy
    from rclpy.duration import Duration
    topic = graph.join_namespace(namespace or '/', graph.CONSTRAINTS_TOPIC)
    with rclpy.init():
        node = rclpy.create_node('constraints_publisher')
        try:
            publisher = node.create_publisher(Constraints, topic, qos.CONSTRAINTS)
            end = time.monotonic() + wait_s
            while publisher.get_subscription_count() == 0 and time.monotonic() < end:
                time.sleep(0.05)
            count = publisher.get_subscription_count()
            if count == 0:
                node.get_logger().error(f'no subscriber of {topic} within {wait_s:g} s: '
                                        'nothing sent')
                return 1
            publisher.publish(msg)
            publisher.wait_for_all_acked(Duration(seconds=wait_s))
            node.get_logger().info(f'sent to {count} subscriber(s) of {topic}')
            return 0
        finally:
            node.destroy_node()
