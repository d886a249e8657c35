"""Constraints at run time: the planner and the sim bridge take new ones from parameters and the
``constraints`` topic, from their next tick (step) on, and refuse bad ones without a change.

The planner runs ARC in safe mode (``arc.cost_limit: 0``) on the RC car that observes its
position (``loop_ros/RCCarCircleXY-v0``) with a small untrained model, so the test controls the
outcome through the geometry: a keep-out zone of 50 m around the car holds every state the model
can predict (no candidate is feasible), no zone and a 1 km boundary hold none of them (every
candidate is feasible). Each ``PlanStats`` is recorded with the number of the tick that
published it, so "from the next tick" is checked exactly: every plan of a tick that started after
the change was accepted reflects it.
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from rclpy.exceptions import ParameterUninitializedException  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from loop_ros.msg import Constraints  # noqa: E402
from loop_ros.msg import KeepOutCircle  # noqa: E402
from loop_ros.msg import KeepOutPolygon  # noqa: E402
from loop_ros.msg import Observation  # noqa: E402
from loop_ros.msg import PlanStats  # noqa: E402
from loop_ros.msg import Transition  # noqa: E402
from loop_ros.nodes.planner_node import PlannerNode  # noqa: E402
from loop_ros.nodes.sim_bridge_node import SimBridgeNode  # noqa: E402
from loop_ros.ros import qos  # noqa: E402
from loop_ros.ros.executor import PooledExecutor  # noqa: E402
from loop_ros.sim.rc_car import observation_scalar  # noqa: E402

pytestmark = pytest.mark.ros

XY_ID = 'loop_ros/RCCarCircleXY-v0'
SIZES = {'sac.hidden_sizes': [16, 16], 'ensemble.num_members': 2, 'ensemble.num_elites': 1,
         'ensemble.hidden_size': 16, 'ensemble.num_layers': 2, 'train.device': 'cpu'}
PLANNER = {
    **SIZES, 'env_id': XY_ID, 'control_rate_hz': 20.0, 'autostart': False,
    'observation_timeout_s': 2.0, 'deadline_fraction': 1.0,
    'arc.horizon': 3, 'arc.num_samples': 12, 'arc.num_actor_trajs': 2, 'arc.num_particles': 1,
    'arc.num_iterations': 1, 'arc.rollout': 'mean', 'arc.cost_limit': 0.0,
    'arc.min_feasible': 1, 'constraints.boundary_radius': 1000.0,
}
CANDIDATES = PLANNER['arc.num_samples'] + PLANNER['arc.num_actor_trajs']
OBS = observation_scalar((0.0, -1.0, 0.0, 1.0, 0.0, 1.0), with_position=True)
"""On the circle at (0, -1), heading along it at 1 m/s."""
EVERYWHERE = [0.0, -1.0, 50.0]
"""A keep-out circle holding every state the small model predicts from :data:`OBS`."""
SQUARE = '-50.0,-50.0 50.0,-50.0 50.0,50.0 -50.0,50.0'


def _trained_checkpoint(path) -> None:
    """Fresh weights announced as trained, so the planner plans instead of exploring."""
    from loop_ros.core.agent import LoopLearner
    from loop_ros.core.checkpoint import save_checkpoint
    from loop_ros.core.config import LoopConfig, replace
    from loop_ros.core.tasks import get_task
    dotted = {k: tuple(v) if isinstance(v, list) else v for k, v in SIZES.items()}
    learner = LoopLearner(replace(LoopConfig(), **dotted), len(OBS), 2, get_task(XY_ID))
    learner.env_steps = 10_000
    state = learner.policy_state()
    state['version'] = 1
    save_checkpoint(path, state, kind='loop_ros.learner')


class Rig(NamedTuple):
    planner: PlannerNode
    spin: Callable[..., bool]
    plans: list[tuple[int, PlanStats]]
    """(number of the tick that published it, the PlanStats), as published."""
    wire: list[PlanStats]
    """The PlanStats a subscriber received."""
    constraints_pub: Any


@pytest.fixture
def rig(tmp_path, feed_observations):
    _trained_checkpoint(tmp_path / 'ckpt' / 'policy_000001.pt')
    rclpy.init()
    planner = PlannerNode(parameter_overrides=[Parameter(k, value=v) for k, v in {
        **PLANNER, 'checkpoint_dir': str(tmp_path / 'ckpt')}.items()])
    peer = rclpy.create_node('peer')
    wire: list[PlanStats] = []
    peer.create_subscription(PlanStats, 'planner/plan_stats', wire.append, qos.STATS)
    obs_pub = peer.create_publisher(Observation, 'observation', qos.OBSERVATION)
    constraints_pub = peer.create_publisher(Constraints, 'constraints', qos.CONSTRAINTS)
    executor = PooledExecutor(2)
    executor.add_node(planner)
    executor.add_node(peer)
    assert planner.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert planner.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert not planner._explore
    plans: list[tuple[int, PlanStats]] = []
    publish = planner.stats_pub.publish

    def record(msg: PlanStats) -> None:   # the tick counter is bumped when a tick starts
        plans.append((planner.ticks, msg))
        publish(msg)

    planner.stats_pub.publish = record

    def spin(condition, timeout_s: float = 30.0) -> bool:
        return feed_observations(executor, obs_pub, planner, condition, timeout_s, OBS)

    yield Rig(planner, spin, plans, wire, constraints_pub)
    executor.shutdown()
    planner.destroy_node()
    peer.destroy_node()
    rclpy.shutdown()


def plans_after(rig: Rig, tick: int) -> list[PlanStats]:
    """PlanStats of the ticks after ``tick`` that planned (not a deadline miss)."""
    return [msg for number, msg in rig.plans if number > tick and msg.num_feasible >= 0]


def next_plans(rig: Rig, count: int = 3) -> list[PlanStats]:
    """The plans of ``count`` ticks that start from now on."""
    tick = rig.planner.ticks
    assert rig.spin(lambda: len(plans_after(rig, tick)) >= count), 'the planner stopped planning'
    return plans_after(rig, tick)


def all_feasible(plans: list[PlanStats]) -> bool:
    return all(p.num_feasible == CANDIDATES and p.predicted_worst_cost == 0.0 for p in plans)


def none_feasible(plans: list[PlanStats]) -> bool:
    return all(p.num_feasible == 0 and p.predicted_worst_cost > 0.0 for p in plans)


def parameters(node) -> tuple[float, tuple[float, ...], tuple[str, ...]]:
    """The node's ``constraints.*`` values: boundary radius, circles, polygons."""
    def value(name: str) -> Any:
        try:
            return node.get_parameter(f'constraints.{name}').value
        except ParameterUninitializedException:   # an empty list from a params file
            return ()
    return value('boundary_radius'), tuple(value('circles')), tuple(value('polygons'))


def set_ok(planner, **values) -> None:
    types = {'boundary_radius': Parameter.Type.DOUBLE, 'circles': Parameter.Type.DOUBLE_ARRAY,
             'polygons': Parameter.Type.STRING_ARRAY}
    result = planner.set_parameters_atomically([
        Parameter(f'constraints.{name}', types[name], value) for name, value in values.items()])
    assert result.successful, result.reason


def message(boundary_radius: float = 1000.0, circles=(), polygons=()) -> Constraints:
    msg = Constraints(boundary_radius=boundary_radius)
    msg.circles = [KeepOutCircle(x=x, y=y, radius=r) for x, y, r in circles]
    msg.polygons = [KeepOutPolygon(x=[v[0] for v in p], y=[v[1] for v in p]) for p in polygons]
    return msg


def test_a_keep_out_zone_set_as_a_parameter_counts_from_the_next_tick(rig) -> None:
    assert all_feasible(next_plans(rig, 2))
    set_ok(rig.planner, circles=EVERYWHERE)
    assert none_feasible(next_plans(rig))
    set_ok(rig.planner, circles=[], polygons=[SQUARE])        # a polygon instead
    assert none_feasible(next_plans(rig))
    set_ok(rig.planner, polygons=[])                          # no zone left
    assert all_feasible(next_plans(rig))
    set_ok(rig.planner, boundary_radius=0.01)                 # everything beyond the boundary
    assert none_feasible(next_plans(rig))
    # the subscriber sees what the planner published
    assert any(p.num_feasible == 0 for p in rig.wire)
    assert any(p.num_feasible == CANDIDATES for p in rig.wire)


def test_a_keep_out_zone_sent_on_the_topic_counts_from_the_next_tick(rig) -> None:
    assert all_feasible(next_plans(rig, 2))
    rig.constraints_pub.publish(message(circles=[EVERYWHERE]))
    assert rig.spin(lambda: parameters(rig.planner)[1] == tuple(EVERYWHERE))
    assert none_feasible(next_plans(rig))
    square = [(-50.0, -50.0), (50.0, -50.0), (50.0, 50.0), (-50.0, 50.0)]
    rig.constraints_pub.publish(message(polygons=[square]))   # the whole set is replaced
    assert rig.spin(lambda: parameters(rig.planner)[1:] == ((), (SQUARE,)))
    assert none_feasible(next_plans(rig))
    rig.constraints_pub.publish(message())
    assert rig.spin(lambda: parameters(rig.planner)[2] == ())
    assert all_feasible(next_plans(rig))


@pytest.mark.parametrize('name, value, reason', [
    ('circles', [0.0, 1.0, -0.2], 'radius > 0'),
    ('circles', [0.0, 1.0], 'multiple of 3'),
    ('circles', [0.0, math.inf, 0.2], 'finite'),
    ('polygons', ['0,0 1,0'], 'at least 3 vertices'),
    ('polygons', ['0,0 1,0 nan,1'], 'finite'),
    ('boundary_radius', -1.0, 'constraints.boundary_radius'),
])
def test_a_bad_parameter_is_refused_with_the_reason_and_changes_nothing(rig, name, value,
                                                                         reason) -> None:
    set_ok(rig.planner, circles=EVERYWHERE)
    before = parameters(rig.planner)
    result = rig.planner.set_parameters([Parameter(f'constraints.{name}', value=value)])[0]
    assert not result.successful and reason in result.reason
    assert parameters(rig.planner) == before
    assert none_feasible(next_plans(rig))


def test_a_bad_message_is_refused_and_changes_nothing(rig) -> None:
    set_ok(rig.planner, circles=EVERYWHERE)
    before = parameters(rig.planner)
    rejected = rig.planner.extras.status.rejected_messages
    bad = [message(boundary_radius=-1.0),
           message(circles=[(0.0, 1.0, 0.0)]),
           message(circles=[(0.0, math.nan, 0.2)]),
           message(polygons=[[(0.0, 0.0), (1.0, 0.0)]])]
    odd = message()
    odd.polygons = [KeepOutPolygon(x=[0.0, 1.0, 0.0], y=[0.0, 0.0])]   # x and y lengths differ
    for msg in bad + [odd]:
        rig.constraints_pub.publish(msg)
        assert rig.spin(lambda: rig.planner.extras.status.rejected_messages > rejected)
        rejected = rig.planner.extras.status.rejected_messages
    assert parameters(rig.planner) == before
    assert none_feasible(next_plans(rig))


def test_keep_out_zones_need_a_task_that_observes_the_position(tmp_path) -> None:
    rclpy.init()
    try:
        planner = PlannerNode(parameter_overrides=[Parameter(k, value=v) for k, v in {
            **PLANNER, 'env_id': 'loop_ros/RCCarCircle-v0',
            'checkpoint_dir': str(tmp_path / 'none')}.items()])
        assert planner.trigger_configure() == TransitionCallbackReturn.SUCCESS
        result = planner.set_parameters([Parameter('constraints.circles', value=EVERYWHERE)])[0]
        assert not result.successful and 'RCCarCircleXY-v0' in result.reason
        set_ok(planner, boundary_radius=1.0)   # the boundary needs only the distance
        planner.destroy_node()
        # a task without planar constraints takes none: configure says so
        robot = PlannerNode(parameter_overrides=[Parameter(k, value=v) for k, v in {
            **SIZES, 'env_id': 'example/PointRobot-v0', 'autostart': False,
            'task_module': 'loop_ros.examples.point_robot', 'constraints.circles': EVERYWHERE,
            'checkpoint_dir': str(tmp_path / 'none')}.items()])
        assert robot.trigger_configure() == TransitionCallbackReturn.ERROR
        robot.destroy_node()
    finally:
        rclpy.shutdown()


def test_the_sim_bridge_counts_the_constraints_it_is_sent(context) -> None:
    bridge = SimBridgeNode(context=context, parameter_overrides=[
        Parameter('env_id', value=XY_ID), Parameter('real_time_factor', value=0.0),
        Parameter('wait_for_subscriber_s', value=0.0),
        Parameter('constraints.boundary_radius', value=1000.0)])
    peer = rclpy.create_node('peer', context=context)
    costs: list[tuple[int, float]] = []   # (number of the step, its cost), as published
    publish = bridge.transition_pub.publish

    def record(msg: Transition) -> None:
        costs.append((bridge.steps, msg.cost))
        publish(msg)

    bridge.transition_pub.publish = record
    pub = peer.create_publisher(Constraints, 'constraints', qos.CONSTRAINTS)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(bridge)
    executor.add_node(peer)

    def spin_until(condition, timeout_s: float = 20.0) -> bool:
        import time
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and not condition():
            executor.spin_once(timeout_sec=0.01)
        return condition()

    try:
        assert spin_until(lambda: len(costs) >= 20) and not any(c for _, c in costs)
        pub.publish(message(circles=[EVERYWHERE]))
        assert spin_until(lambda: parameters(bridge)[1] == tuple(EVERYWHERE))
        changed_at = bridge.steps   # callbacks run in this thread: no step is in flight
        assert spin_until(lambda: len(costs) >= changed_at + 20)
        after = [c for step, c in costs if step > changed_at]
        assert after and all(c == 1.0 for c in after)   # from the next step on
        result = bridge.set_parameters([Parameter('constraints.circles', value=[0.0, 0.0])])[0]
        assert not result.successful and 'multiple of 3' in result.reason
        assert parameters(bridge)[1] == tuple(EVERYWHERE)
    finally:
        executor.shutdown()
        bridge.destroy_node()
        peer.destroy_node()


def test_the_sim_bridge_refuses_zones_its_observation_cannot_show(context) -> None:
    bridge = SimBridgeNode(context=context, parameter_overrides=[
        Parameter('env_id', value='loop_ros/RCCarCircle-v0'),
        Parameter('wait_for_subscriber_s', value=0.0)])
    try:
        result = bridge.set_parameters([Parameter('constraints.circles', value=EVERYWHERE)])[0]
        assert not result.successful and 'RCCarCircleXY-v0' in result.reason
        assert bridge.set_parameters([Parameter('constraints.boundary_radius',
                                                value=1.0)])[0].successful
        assert bridge.env.unwrapped.constraints.boundary_radius == 1.0
        assert np.isfinite(bridge.env.unwrapped.constraints.boundary_radius)
    finally:
        bridge.destroy_node()


def test_loop_ros_constraints_sends_a_set_to_a_running_graph(context) -> None:
    import subprocess
    import sys
    import time
    bridge = SimBridgeNode(context=context, parameter_overrides=[
        Parameter('env_id', value=XY_ID), Parameter('wait_for_subscriber_s', value=60.0)])
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(bridge)
    command = [sys.executable, '-m', 'loop_ros.cli', 'constraints', '--boundary-radius', '1.1',
               '--circle', '0', '1', '0.25', '--polygon', '0.8,-0.2 1.3,-0.2 1.05,0.3',
               '--wait', '20']
    tool = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        end = time.monotonic() + 30.0
        while time.monotonic() < end and tool.poll() is None:
            executor.spin_once(timeout_sec=0.05)
        output = tool.communicate(timeout=10)[0]
        assert tool.returncode == 0, output
        executor.spin_once(timeout_sec=0.1)
        assert parameters(bridge) == (1.1, (0.0, 1.0, 0.25), ('0.8,-0.2 1.3,-0.2 1.05,0.3',))
        constraints = bridge.env.unwrapped.constraints
        assert constraints.boundary_radius == 1.1 and constraints.violated(1.05, 0.0)
        # a malformed polygon is refused before anything is sent
        bad = subprocess.run(command[:4] + ['--polygon', '0,0 1,0'], capture_output=True,
                             text=True, timeout=60)
        assert bad.returncode == 2 and 'at least 3 vertices' in bad.stderr
    finally:
        if tool.poll() is None:
            tool.kill()
        executor.shutdown()
        bridge.destroy_node()
