"""The planner's plan for RViz/Foxglove: ~/plan_markers content, and QoS RViz connects to."""
from __future__ import annotations

import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from nav_msgs.msg import Path  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy  # noqa: E402
from rclpy.qos import HistoryPolicy  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from rclpy.qos import ReliabilityPolicy  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402

from loop_ros.core.plan_view import PlanPoses  # noqa: E402
from loop_ros.msg import Observation  # noqa: E402
from loop_ros.ros import markers  # noqa: E402
from loop_ros.ros import qos  # noqa: E402

pytestmark = pytest.mark.ros

RVIZ_DEFAULT = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                          reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)
"""What RViz2 subscribes a Path or MarkerArray display with unless told otherwise."""


def view() -> PlanPoses:
    line = np.stack([np.linspace(0, 1, 4), np.zeros(4), np.zeros(4)], axis=-1)   # (H+1, 3)
    candidates = np.stack([line, line * 0.5, line * -1.0])                         # K = 3
    members = np.stack([line, line + [0.0, 0.2, 0.0], line - [0.0, 0.2, 0.0]])     # M = 3
    return PlanPoses(candidate_poses=candidates, candidate_scores=np.array([5.0, 1.0, -3.0]),
                     member_poses=members)


def test_plan_markers_draw_candidates_by_score_and_the_member_spread() -> None:
    header = Header(frame_id='robot0/base_link')
    out = markers.plan_markers(view(), header)
    first, rest = out.markers[0], out.markers[1:]
    assert first.action == Marker.DELETEALL          # no marker of an older plan lingers
    by_ns: dict[str, list[Marker]] = {}
    for m in rest:
        by_ns.setdefault(m.ns, []).append(m)
        assert m.header.frame_id == 'robot0/base_link' and m.action == Marker.ADD
    cands = by_ns['candidates']
    assert [m.type for m in cands] == [Marker.LINE_STRIP] * 3
    assert [m.id for m in cands] == [0, 1, 2] and all(len(m.points) == 4 for m in cands)
    assert cands[0].points[-1].x == pytest.approx(1.0)
    best, middle, worst = (m.color for m in cands)
    assert (best.r, best.g) == (0.0, 1.0)            # highest score: green
    assert (worst.r, worst.g) == (1.0, 0.0)          # lowest: red
    assert (middle.r, middle.g) == (1.0, 1.0)        # half way (1 in [-3, 5]): yellow
    assert len(by_ns['members']) == 3 and by_ns['members'][1].points[0].y == pytest.approx(0.2)
    spread = by_ns['spread']
    assert [m.type for m in spread] == [Marker.SPHERE] * 4
    std = np.sqrt(2 * 0.2 ** 2 / 3)                   # y of the members: +0.2, 0, -0.2
    assert spread[2].scale.x == pytest.approx(2 * std)
    assert spread[2].pose.position.x == pytest.approx(2 / 3)


def test_equal_scores_and_nan_scores_still_draw() -> None:
    v = view()
    flat = PlanPoses(v.candidate_poses, np.array([1.0, 1.0, np.nan]), v.member_poses[:1])
    out = markers.plan_markers(flat, Header(frame_id='f'))
    colours = [m.color for m in out.markers if m.ns == 'candidates']
    assert len(colours) == 3 and (colours[0].g, colours[2].r) == (1.0, 1.0)
    spread = [m for m in out.markers if m.ns == 'spread']
    assert all(m.scale.x == markers.MIN_SPHERE_M for m in spread)   # one member: no spread


def test_constraint_markers_put_the_zones_where_the_robot_sees_them() -> None:
    """The car at (0, -1) heading +x: the origin is 1 m to its left, (1, -1) 1 m ahead."""
    from loop_ros.core.constraint_cost import own_constraint_cost
    from loop_ros.core.constraints import KeepOutCircle, PlanarConstraints, polygon_from_text
    from loop_ros.core.tasks import get_task
    import loop_ros.sim  # noqa: F401  (registers the RC-car tasks)
    from loop_ros.sim.rc_car import observation_scalar

    def centre(marker: Marker) -> tuple[float, float]:
        points = np.array([(p.x, p.y) for p in marker.points[:-1]])
        return tuple(points.mean(axis=0))

    state = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0)
    zones = PlanarConstraints(1.2, circles=(KeepOutCircle(1.0, -1.0, 0.3),),
                              polygons=(polygon_from_text('-0.5,-2.0 0.5,-2.0 0.0,-1.5'),))
    _, cost = own_constraint_cost(get_task('loop_ros/RCCarCircleXY-v0'))
    cost.set(zones)
    header = Header(frame_id='base_link')
    boundary, circle, polygon = markers.constraint_markers(
        cost.outlines(np.array(observation_scalar(state, with_position=True))), header)
    assert all(m.ns == 'constraints' and m.type == Marker.LINE_STRIP and m.header.frame_id ==
               'base_link' and m.points[0] == m.points[-1] for m in (boundary, circle, polygon))
    assert centre(boundary) == pytest.approx((0.0, 1.0), abs=1e-6)
    assert np.hypot(boundary.points[0].x, boundary.points[0].y - 1.0) == pytest.approx(1.2)
    assert centre(circle) == pytest.approx((1.0, 0.0), abs=1e-6)
    np.testing.assert_allclose([(p.x, p.y) for p in polygon.points[:3]],
                               [(-0.5, -1.0), (0.5, -1.0), (0.0, -0.5)], atol=1e-6)
    assert (boundary.color.r, boundary.color.g) != (circle.color.r, circle.color.g)
    # the circle-relative observation places the boundary just as well
    _, ring = own_constraint_cost(get_task('loop_ros/RCCarCircle-v0'))
    (only,) = markers.constraint_markers(ring.outlines(np.array(observation_scalar(state))),
                                         header)
    assert centre(only) == pytest.approx((0.0, 1.0), abs=1e-6)


def test_visualization_qos_is_what_rviz_subscribes_with() -> None:
    profile = qos.VISUALIZATION
    assert profile.reliability == ReliabilityPolicy.RELIABLE
    assert profile.durability == DurabilityPolicy.VOLATILE
    assert profile.history == HistoryPolicy.KEEP_LAST and 1 <= profile.depth <= 10


TINY = {'env_id': 'loop_ros/RCCarCircle-v0', 'control_rate_hz': 2.0, 'autostart': False,
        'observation_timeout_s': 60.0, 'sac.hidden_sizes': [16, 16],
        'ensemble.num_members': 3, 'ensemble.num_elites': 2, 'ensemble.hidden_size': 16,
        'ensemble.num_layers': 2, 'arc.num_samples': 8, 'arc.num_particles': 1,
        'arc.num_iterations': 1, 'arc.num_actor_trajs': 1, 'train.device': 'cpu'}


def test_planner_publishes_path_and_markers_rviz_receives(tmp_path) -> None:
    """publish_path / publish_markers switched on at run time; an RViz-default reader gets both."""
    from loop_ros.nodes.planner_node import PlannerNode
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    planner = PlannerNode(context=ctx, parameter_overrides=[
        Parameter(k, value=v) for k, v in {**TINY, 'checkpoint_dir': str(tmp_path)}.items()])
    rviz = Node('rviz', context=ctx)
    paths: list[Path] = []
    arrays: list[MarkerArray] = []
    rviz.create_subscription(Path, '/planner/plan', paths.append, RVIZ_DEFAULT)
    rviz.create_subscription(MarkerArray, '/planner/plan_markers', arrays.append, RVIZ_DEFAULT)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(rviz)
    try:
        assert planner.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert planner.trigger_activate() == TransitionCallbackReturn.SUCCESS
        for topic in ('/planner/plan', '/planner/plan_markers'):
            (info,) = planner.get_publishers_info_by_topic(topic)
            assert info.qos_profile.reliability == ReliabilityPolicy.RELIABLE, topic
            assert info.qos_profile.durability == DurabilityPolicy.VOLATILE, topic
        planner._explore = False           # plan with ARC (no learner here)

        def tick() -> None:
            msg = Observation(data=[0.05] * planner.obs_dim, episode=0, step=1)
            msg.header.stamp = planner.get_clock().now().to_msg()
            msg.header.frame_id = 'base_link'
            planner._on_observation(msg)
            planner._on_tick()

        def spin(seconds: float, done=lambda: False) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end and not done():
                executor.spin_once(timeout_sec=0.05)

        spin(1.0)                            # discovery
        tick()
        spin(1.0)
        assert not paths and not arrays      # both off by default
        results = planner.set_parameters([Parameter('publish_path', value=True),
                                          Parameter('publish_markers', value=True)])
        assert all(r.successful for r in results), [r.reason for r in results]
        for _ in range(3):
            tick()
        spin(10.0, lambda: len(paths) >= 3 and len(arrays) >= 3)
        assert len(paths) >= 3 and len(arrays) >= 3
        assert paths[-1].header.frame_id == 'base_link'
        horizon = planner.policy.planner.cfg.horizon
        assert len(paths[-1].poses) == horizon + 1
        drawn = arrays[-1].markers
        assert drawn[0].action == Marker.DELETEALL
        assert {m.ns for m in drawn[1:]} == {'candidates', 'members', 'spread', 'constraints'}
        assert len([m for m in drawn if m.ns == 'constraints']) == 1      # the boundary
        assert len([m for m in drawn if m.ns == 'members']) == 2          # the elites
        assert all(len(m.points) == horizon + 1 for m in drawn if m.ns == 'candidates')
        assert all(m.header.frame_id == 'base_link' for m in drawn)
    finally:
        executor.shutdown()
        planner.close()
        planner.destroy_node()
        rviz.destroy_node()
        rclpy.shutdown(context=ctx)
