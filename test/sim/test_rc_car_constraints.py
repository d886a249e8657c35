"""RC-car constraints: the planner's batched cost is the simulator's cost, and can change at run time.

The boundary, keep-out circles and keep-out polygons are one ``PlanarConstraints`` set; the
simulator counts violations of it (``info['cost']``, from its true state) and the planner's task
evaluates the same rule on (predicted) observations (``ConstraintCost``). A zone added between
two plans is respected from the next plan on, with the true dynamics as a perfect model.
"""
from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import loop_ros.sim  # noqa: F401  (registers the envs and their tasks)
from loop_ros.core.arc import ArcPlanner
from loop_ros.core.config import ArcConfig
from loop_ros.core.constraint_cost import own_constraint_cost
from loop_ros.core.constraints import ConstraintError
from loop_ros.core.constraints import KeepOutCircle
from loop_ros.core.constraints import PlanarConstraints
from loop_ros.core.constraints import polygon_from_text
from loop_ros.core.node_config import ConstraintsConfig
from loop_ros.core.tasks import get_task
from loop_ros.sim.rc_car import observation_torch
from loop_ros.sim.rc_car import state_from_observation_torch
from loop_ros.sim.rc_car_dynamics import step_batch

XY_ID = 'loop_ros/RCCarCircleXY-v0'
ZONES = PlanarConstraints(
    1.3,
    circles=(KeepOutCircle(0.0, 1.0, 0.3), KeepOutCircle(-0.9, -0.6, 0.25)),
    polygons=(polygon_from_text('0.5,-1.2 1.2,-1.2 1.2,-0.5 0.9,-0.5 0.9,-0.9 0.5,-0.9'),  # an L
              polygon_from_text('-0.4,-0.3 0.3,-0.1 -0.2,0.4')))
"""A boundary, two circles, a concave polygon and a triangle, all within reach of the car."""


def random_states(count: int, seed: int = 0) -> torch.Tensor:
    """(count, 6) states spread over [-1.6, 1.6]^2 with random headings and speeds."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-1.6, 1.6, (count, 2))
    rest = np.column_stack([rng.uniform(-math.pi, math.pi, count), rng.uniform(0, 2, count),
                            rng.uniform(-0.5, 0.5, count), rng.uniform(-2, 2, count)])
    return torch.tensor(np.column_stack([xy, rest]), dtype=torch.float64)


def test_batched_cost_is_the_simulator_cost_for_boundary_circles_and_polygons(device) -> None:
    states = random_states(4000)
    env = gym.make(XY_ID).unwrapped
    env.set_constraints(ZONES)
    expected = np.array([env.constraints.cost(x, y) for x, y in states[:, :2].tolist()])
    task, cost = own_constraint_cost(get_task(XY_ID))
    cost.set(ZONES)
    obs = observation_torch(states, with_position=True).float().to(device)   # the planner's
    out = task.cost(obs, None, obs.view(40, 100, -1)).view(-1)   # any leading shape
    assert out.device == obs.device and out.dtype == obs.dtype
    got = out.cpu().numpy()
    np.testing.assert_array_equal(got, expected)
    # every kind of constraint decides some of the states
    x, y = states[:, 0].numpy(), states[:, 1].numpy()
    beyond = np.hypot(x, y) > ZONES.boundary_radius
    kinds = {'boundary': beyond,
             **{f'circle {i}': np.array([c.contains(a, b) for a, b in zip(x, y)])
                for i, c in enumerate(ZONES.circles)},
             **{f'polygon {i}': np.array([p.contains(a, b) for a, b in zip(x, y)])
                for i, p in enumerate(ZONES.polygons)}}
    for name, inside in kinds.items():
        assert inside.sum() > 20 and (got[inside] == 1.0).all(), name
    assert (got == 0.0).sum() > 1000
    # the L's notch (0.5..0.9, -0.9..-0.5) is outside it
    assert not ZONES.polygons[0].contains(0.7, -0.7) and ZONES.polygons[0].contains(1.0, -1.0)


def test_violation_is_the_distance_to_the_nearest_allowed_point(device) -> None:
    """How far a state violates: beyond the boundary its distance to the circle, inside a zone
    its distance to the zone's edge (the largest of these); 0 exactly where the cost is 0.
    Checked against edges sampled every 0.5 mm."""
    states = random_states(1500, seed=1)
    task, cost = own_constraint_cost(get_task(XY_ID))
    cost.set(ZONES)
    obs = observation_torch(states, with_position=True).float().to(device)
    cost, depth = task.cost.cost_and_violation(obs, None, obs)
    np.testing.assert_array_equal(cost.cpu().numpy(), task.cost(obs, None, obs).cpu().numpy())
    depth = depth.cpu().double().numpy()
    violated = cost.cpu().numpy() == 1.0
    assert (depth[~violated] == 0.0).all() and (depth[violated] > 0.0).all()

    x, y = states[:, 0].numpy(), states[:, 1].numpy()
    expected = np.maximum(np.hypot(x, y) - ZONES.boundary_radius, 0.0)
    for c in ZONES.circles:
        expected = np.maximum(expected, c.radius - np.hypot(x - c.x, y - c.y))
    for polygon in ZONES.polygons:
        vertices = np.array(polygon.vertices)
        edges = [a + np.linspace(0.0, 1.0, int(np.hypot(*(b - a)) / 5e-4) + 2)[:, None] * (b - a)
                 for a, b in zip(vertices, np.roll(vertices, 1, axis=0))]
        points = np.concatenate(edges)                                    # (E, 2)
        to_edge = np.hypot(x[:, None] - points[:, 0], y[:, None] - points[:, 1]).min(axis=1)
        inside = np.array([polygon.contains(a, b) for a, b in zip(x, y)])
        expected = np.maximum(expected, np.where(inside, to_edge, 0.0))
    np.testing.assert_allclose(depth, expected, atol=1e-3)
    assert (expected[violated] > 0.05).sum() > 100   # deep violations, not only grazing ones


def test_the_simulator_reports_the_constraints_in_force_step_by_step() -> None:
    env = gym.make(XY_ID)
    env.unwrapped.set_constraints(ZONES)
    task, cost = own_constraint_cost(get_task(XY_ID))
    cost.set(ZONES)
    rng = np.random.default_rng(1)
    obs, _ = env.reset(seed=1)
    costs, predicted = [], []
    for _ in range(300):
        next_obs, _, terminated, truncated, info = env.step(rng.uniform(-1, 1, 2))
        costs.append(info['cost'])
        predicted.append(float(task.cost(None, None, torch.tensor(next_obs))))
        obs = next_obs if not (terminated or truncated) else env.reset()[0]
    assert 0 < sum(costs) < len(costs) and predicted == costs


def test_the_circle_relative_observation_takes_a_new_boundary_but_no_zone() -> None:
    env = gym.make('loop_ros/RCCarCircle-v0').unwrapped
    task, cost = own_constraint_cost(get_task('loop_ros/RCCarCircle-v0'))
    shrunk = PlanarConstraints(1.05)
    env.set_constraints(shrunk)
    cost.set(shrunk)
    states = random_states(2000, seed=2)
    expected = [shrunk.cost(x, y) for x, y in states[:, :2].tolist()]
    obs = observation_torch(states).float()
    np.testing.assert_array_equal(task.cost(obs, None, obs).numpy(), expected)
    with_zone = PlanarConstraints(1.2, circles=(KeepOutCircle(0.0, 1.0, 0.3),))
    for target in (env.set_constraints, cost.set):
        with pytest.raises(ConstraintError, match='RCCarCircleXY-v0'):
            target(with_zone)
    assert env.constraints == shrunk and cost.constraints == shrunk   # nothing changed
    # the registered task is never touched by a planner's copy
    assert get_task('loop_ros/RCCarCircle-v0').cost.constraints == PlanarConstraints(1.2)


@pytest.mark.parametrize('fields, reason', [
    ({'boundary_radius': -1.0}, r'\[0.0, 1000000.0\]'),
    ({'circles': (0.0, 1.0)}, 'multiple of 3'),
    ({'circles': (0.0, 1.0, -0.2)}, 'radius > 0'),
    ({'circles': (0.0, math.nan, 0.2)}, 'finite'),
    ({'polygons': ('0,0 1,0',)}, 'at least 3 vertices'),
    ({'polygons': ('0,0 1,1 2,2',)}, 'on one line'),
    ({'polygons': ('0,0 1,0 inf,1',)}, 'finite'),
    ({'polygons': ('0,0 1;0 1,1',)}, "not 'x,y'"),
])
def test_bad_constraint_parameters_are_refused_with_the_reason(fields, reason) -> None:
    with pytest.raises(ValueError, match=reason):
        ConstraintsConfig(**fields)


def test_parameters_describe_the_set_and_zero_means_the_task_boundary() -> None:
    cfg = ConstraintsConfig(circles=(0.0, 1.0, 0.3), polygons=('0,0 1,0 0,1',))
    resolved = cfg.resolve(PlanarConstraints(1.2))
    assert resolved.boundary_radius == 1.2
    assert resolved.circles == (KeepOutCircle(0.0, 1.0, 0.3),)
    assert resolved.polygons[0].vertices == ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0))
    assert ConstraintsConfig(boundary_radius=1.0).resolve(PlanarConstraints(1.2)) == \
        PlanarConstraints(1.0)
    with pytest.raises(ConstraintError, match='no planar constraints'):
        cfg.for_task(None, 'InvertedPendulum-v5')
    assert ConstraintsConfig().for_task(None, 'InvertedPendulum-v5') is None


# --- a perfect-model planner respects a zone from its next plan --------------------------------

class PerfectModel:
    """The true RC-car dynamics behind the planner's ``DynamicsModel`` protocol (one member).

    The XY observation is the car's full state (:func:`state_from_observation_torch`), so the
    next observation is exact; the planner takes the task's reward and cost.
    """

    num_members = 1
    elites = torch.tensor([0])

    def predict(self, obs, act, members=None, deterministic=False, generator=None):
        state = step_batch(state_from_observation_torch(obs.double()), act)
        return observation_torch(state, with_position=True).to(obs.dtype), None

    def predict_random_elite(self, obs, act, deterministic=False, generator=None):
        return self.predict(obs, act)


ZONE_ON_THE_CIRCLE = PlanarConstraints(1.2, circles=(KeepOutCircle(
    math.cos(math.radians(-20.0)), math.sin(math.radians(-20.0)), 0.2),))
"""A keep-out circle on the 1 m circle 70 degrees ahead of the start: about 1 m of driving to its
edge, which the faster candidates of an 8-step plan reach, far enough to steer round it."""


def drive(zone_from_step: int | None, steps: int = 10) -> tuple[list[float], list]:
    """Closed loop on the XY env, which counts :data:`ZONE_ON_THE_CIRCLE` from the start; the
    planner is told about it from ``zone_from_step`` on (None: never).

    Returns the env's cost per step and the plan infos.
    """
    zone = ZONE_ON_THE_CIRCLE
    env = gym.make(XY_ID).unwrapped
    env.set_constraints(zone)
    task, cost = own_constraint_cost(get_task(XY_ID))
    cfg = ArcConfig(horizon=8, num_samples=150, num_actor_trajs=0, num_particles=1,
                    num_iterations=4, value='none', rollout='mean', cost_limit=0.0,
                    min_feasible=5, init_std=0.6)
    planner = ArcPlanner(cfg, 11, 2, PerfectModel(), task=task, seed=0)
    # on the circle at (0, -1), heading along its CCW tangent (+x) at 1 m/s
    obs, _ = env.reset(options={'state': (0.0, -1.0, 0.0, 1.0, 0.0, 1.0)})
    costs, infos = [], []
    for step in range(steps):
        if step == zone_from_step:
            cost.set(zone)           # between two plans, as the planner node does
        action, info = planner.plan(torch.tensor(obs), explore=False)
        infos.append(info)
        obs, _, _, _, step_info = env.step(action.numpy())
        costs.append(step_info['cost'])
    return costs, infos


@pytest.fixture
def one_torch_thread():
    """The plans here are many small ops: one intra-op thread is faster than two on 2 cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_keep_out_zone_added_between_plans_is_respected_from_the_next_plan(
        one_torch_thread) -> None:
    blind_costs, _ = drive(zone_from_step=None)
    assert sum(blind_costs) > 0, 'the zone must lie on the path the planner takes without it'
    costs, infos = drive(zone_from_step=1)
    assert costs == [0.0] * len(costs)
    # from the plan that knew the zone: a feasible plan, predicted free of violations
    for info in infos[1:]:
        assert info.num_feasible > 0 and info.predicted_worst_cost == 0.0
