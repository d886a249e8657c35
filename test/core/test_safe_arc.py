"""Safe ARC (LOOP sec. 5.2, eq. 10) on the RC car, with its true dynamics as a perfect model.

The model predicts, for every member, exactly the next observation the simulator would produce
(``loop_ros.sim.rc_car_dynamics``), and the reward and the cost are the task's batched functions
(``RCCarTask``: cost 1 per step outside the 1.2 m boundary). So a plan's predicted cost is its
true cost, and each test can check the plan the planner executed (``ArcPlanner._prev_plan``, the
executed sequence it keeps as the warm start) by re-simulating it.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from loop_ros.core.arc import ArcPlanner
from loop_ros.core.config import ArcConfig
from loop_ros.core.tasks import Task
from loop_ros.sim.rc_car import (OBS_COS_THETA, OBS_DX, OBS_SIN_THETA, OBS_VX, OBS_VY,
                                 OBS_YAW_RATE, RCCarEnv, RCCarTask, observation_torch)
from loop_ros.sim.rc_car_dynamics import DEFAULT_PARAMS, RCCarDynamicsTorch, RCCarParams

COST_LIMIT = 0.2
"""d0: with a 0/1 cost per step, any d0 < gamma^(H-1) means "no predicted violation"."""
DRIFT = RCCarTask(name='drift')
"""Speed pays and the boundary costs: the unconstrained optimum leaves the 1.2 m circle."""
WET_TRACK = dataclasses.replace(DEFAULT_PARAMS, mu_s=0.8, mu_k=1.1)
"""A low-grip car: it slides wider than the default one for the same actions."""


class PerfectRCCar:
    """The RC car's true dynamics behind the planner's ``DynamicsModel`` protocol.

    The 9 observed features are rotation invariant and a Markov state of the car, so the state
    ``(x, y, yaw) = (r + dx, 0, pi/2 - theta)`` (polar angle 0) with the observed body velocities
    reproduces them exactly; the next observation is that state stepped by
    :class:`RCCarDynamicsTorch`. Member ``m`` drives a car with ``member_params[m]`` (all equal:
    a perfect ensemble). No reward is predicted: the planner takes the task's.

    Shapes:
        obs: (M, B, 9); act: (M, B, 2); returns next obs (M, B, 9) and None.
    """

    def __init__(self, device: torch.device,
                 member_params: tuple[RCCarParams, ...] = (DEFAULT_PARAMS, DEFAULT_PARAMS),
                 radius: float = 1.0) -> None:
        self.device, self.radius = device, radius
        self.cars = [RCCarDynamicsTorch(params) for params in member_params]
        self.identical = len(set(member_params)) == 1

    @property
    def num_members(self) -> int:
        return len(self.cars)

    @property
    def elites(self) -> torch.Tensor:
        return torch.arange(self.num_members, device=self.device)

    def state_of(self, obs: torch.Tensor) -> torch.Tensor:
        theta = torch.atan2(obs[..., OBS_SIN_THETA], obs[..., OBS_COS_THETA])
        x = self.radius + obs[..., OBS_DX]
        return torch.stack((x, torch.zeros_like(x), 0.5 * math.pi - theta, obs[..., OBS_VX],
                            obs[..., OBS_VY], obs[..., OBS_YAW_RATE]), dim=-1)

    def step(self, member: int, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """True next observation of member ``member``'s car, any leading shape."""
        return observation_torch(self.cars[member](self.state_of(obs), act), self.radius)

    def predict(self, obs, act, members=None, deterministic=False, generator=None):
        assert obs.device.type == self.device.type and act.device.type == self.device.type
        if self.identical:
            return self.step(0, obs, act), None
        return torch.stack([self.step(int(m), obs[i], act[i])
                            for i, m in enumerate(members.tolist())]), None

    def predict_random_elite(self, obs, act, deterministic=False, generator=None):
        return self.step(0, obs, act), None


def observation(device: torch.device, dx: float, theta: float, speed: float) -> torch.Tensor:
    """The observation of a car ``dx`` outside the 1 m circle, ``theta`` off its CCW tangent,
    driving straight at ``speed`` (m/s)."""
    state = torch.tensor([1.0 + dx, 0.0, 0.5 * math.pi - theta, speed, 0.0, 0.0], device=device)
    return observation_torch(state)


def horizon_cost(model: PerfectRCCar, member: int, obs: torch.Tensor,
                 plans: torch.Tensor, gamma: float = 0.99, graded: bool = False) -> torch.Tensor:
    """True cost sum_t gamma^t c_t (eq. 10) of ``plans`` (..., H, A) from ``obs`` (O,) for
    one member, (...); with ``graded`` sum_t gamma^t (c_t + v_t), v_t the distance (m) of
    s_{t+1} beyond the boundary."""
    state, total = obs.expand(*plans.shape[:-2], obs.shape[-1]), 0.0
    for t in range(plans.shape[-2]):
        action = plans[..., t, :]
        next_state = model.step(member, state, action)
        step_cost = DRIFT.cost(state, action, next_state)
        if graded:
            beyond = 1.0 + next_state[..., OBS_DX] - DRIFT.boundary_radius
            step_cost = step_cost + beyond.clamp(min=0.0)
        total = total + gamma ** t * step_cost
        state = next_state
    return total


def worst_cost(model: PerfectRCCar, obs: torch.Tensor, plans: torch.Tensor,
               graded: bool = False) -> torch.Tensor:
    """Worst true cost over the members of ``plans`` (..., H, A), (...); with ``graded``
    sum_t gamma^t (c_t + v_t), v_t how far outside the boundary (m)."""
    return torch.stack([horizon_cost(model, m, obs, plans, graded=graded)
                        for m in range(model.num_members)]).amax(dim=0)


def planner(device: torch.device, model: PerfectRCCar | None = None, **cfg) -> ArcPlanner:
    """Safe PETS-style planning (no value, no actor) at safe LOOP's horizon H = 8."""
    base = dict(horizon=8, num_samples=48, num_actor_trajs=0, num_particles=1, num_iterations=3,
                temperature=5.0, value='none', num_cem_elites=10, cost_limit=COST_LIMIT,
                min_feasible=5)
    base.update(cfg)
    return ArcPlanner(ArcConfig(**base), 9, 2, model or PerfectRCCar(device),
                      task=DRIFT.planner_task(), device=device, seed=0)


def test_the_model_is_the_simulator():
    # the tests' premise: predicted observations are the env's, step after step
    env = RCCarEnv(task='drift')
    obs, _ = env.reset(seed=3)
    model = PerfectRCCar(torch.device('cpu'))
    predicted = torch.as_tensor(obs)
    for action in np.random.default_rng(0).uniform(-1, 1, (5, 2)).astype(np.float32):
        obs, *_ = env.step(action)
        predicted = model.step(0, predicted, torch.as_tensor(action))
        assert torch.allclose(predicted, torch.as_tensor(obs), atol=1e-4)


def test_the_drift_task_tempts_an_unconstrained_planner_out_of_bounds(device):
    # without the constraint the plan leaves the boundary: the safe tests below are not vacuous
    obs = observation(device, 0.05, 0.0, 2.0)
    arc = planner(device, cost_limit=-1.0)
    _, info = arc.plan(obs)
    assert worst_cost(arc.model, obs, arc._prev_plan) > 1.0
    assert info.predicted_worst_cost == 0.0 and info.num_feasible == arc.num_candidates


@pytest.mark.parametrize('explore', [False, True], ids=['eval', 'explore'])
@pytest.mark.parametrize('optimizer', ['arc', 'cem'])
def test_never_executes_an_infeasible_plan_when_a_feasible_one_exists(device, optimizer,
                                                                     explore):
    # closed loop near the boundary at drifting speed; explore samples a candidate by weight
    arc = planner(device, optimizer=optimizer, explore='sample')
    model = arc.model
    obs = observation(device, 0.05, 0.0, 2.0)
    executed = []
    for _ in range(4):
        action, info = arc.plan(obs, explore=explore)
        assert info.num_feasible > 0 and info.fallback == ''
        cost = worst_cost(model, obs, arc._prev_plan).item()
        assert cost <= COST_LIMIT
        assert info.predicted_worst_cost == pytest.approx(cost, abs=1e-6)
        assert torch.equal(action, arc._prev_plan[0].clamp(-1.0, 1.0))
        executed.append(info.executed)
        obs = model.step(0, obs, action)
        assert DRIFT.cost(obs, action, obs) == 0.0   # and the car stays inside
    assert set(executed) <= ({'sample'} if explore else {'mean', 'best_feasible'})
    if not explore:
        assert 'mean' in executed   # eval mode executes the weighted mean when it is feasible


@pytest.mark.parametrize('optimizer', ['arc', 'cem'])
def test_picks_the_least_cost_plan_when_none_is_feasible(device, optimizer):
    # 22 cm outside the boundary: every plan costs at least the first step. "Least" on the
    # graded cost (each step outside counts 1 + its distance beyond the boundary), which the
    # RC car's cost provides; the 0/1 cost is what PlanInfo reports
    obs = observation(device, 0.22, 0.0, 1.0)
    arc = planner(device, optimizer=optimizer)
    _, info = arc.plan(obs)
    candidates, _ = arc._last
    least_candidate_cost = worst_cost(arc.model, obs, candidates).min().item()
    least_graded = worst_cost(arc.model, obs, candidates, graded=True).min().item()
    executed_cost = worst_cost(arc.model, obs, arc._prev_plan).item()
    assert info.num_feasible == 0 and least_candidate_cost > COST_LIMIT
    assert worst_cost(arc.model, obs, arc._prev_plan, graded=True) <= least_graded + 1e-5
    assert info.predicted_worst_cost == pytest.approx(executed_cost, abs=1e-6)
    assert info.executed in ('mean', 'least_cost')


@pytest.mark.parametrize('optimizer', ['arc', 'cem'])
def test_with_every_plan_violating_the_depth_of_the_violation_brings_the_car_back(device,
                                                                                 optimizer):
    # 2 m from the origin at 2 m/s, heading 0.5 rad outwards: every 8-step plan is outside on
    # every step, so the 0/1 cost ties them all. Ranked by how far outside they go (the
    # ConstraintCost's cost_and_violation), the least-cost plans turn back: inside within 12
    # steps. With a cost that cannot say how far (a plain function), the tie leaves the car to
    # drift away.
    start = observation(device, 0.8, 0.5, 2.0)
    for graded in (True, False):
        arc = planner(device, optimizer=optimizer)
        if not graded:
            cost = arc.task.cost
            arc.task = dataclasses.replace(arc.task, cost=lambda s, a, s2: cost(s, a, s2))
        obs, executed = start, []
        for _ in range(12):
            action, info = arc.plan(obs)
            executed.append(info.executed)
            obs = arc.model.step(0, obs, action)
        if graded:
            assert executed[0] == 'least_cost'
            assert float(obs[OBS_DX]) <= DRIFT.boundary_radius - DRIFT.radius
        else:
            assert float(obs[OBS_DX]) > 1.0


def test_too_few_feasible_candidates_refit_towards_safety_and_stay_feasible(device):
    # min_feasible above the candidate count: every iteration refits towards low cost, and
    # the executed plan is still a feasible one
    arc = planner(device, min_feasible=1000)
    obs = observation(device, 0.05, 0.0, 2.0)
    for _ in range(3):
        action, info = arc.plan(obs)
        assert 0 < info.num_feasible < 1000
        assert worst_cost(arc.model, obs, arc._prev_plan) <= COST_LIMIT
        obs = arc.model.step(0, obs, action)


def test_the_constraint_holds_for_the_worst_ensemble_member(device):
    # member 1 is a low-grip car: the plan a dry-car model finds safe leaves the boundary on
    # the wet track, and the ensemble of both must keep both cars inside
    obs = observation(device, 0.1, 0.0, 2.5)
    judge = PerfectRCCar(device, (DEFAULT_PARAMS, WET_TRACK))
    dry_only = planner(device, PerfectRCCar(device, (DEFAULT_PARAMS,)))
    both = planner(device, PerfectRCCar(device, (DEFAULT_PARAMS, WET_TRACK)))
    dry_only.plan(obs)
    assert horizon_cost(judge, 0, obs, dry_only._prev_plan) <= COST_LIMIT
    assert horizon_cost(judge, 1, obs, dry_only._prev_plan) > COST_LIMIT
    _, info = both.plan(obs)
    assert info.num_feasible > 0
    assert worst_cost(judge, obs, both._prev_plan) <= COST_LIMIT
    assert info.predicted_worst_cost == pytest.approx(
        worst_cost(judge, obs, both._prev_plan).item(), abs=1e-6)


def test_the_constraint_holds_for_the_worst_particle(device):
    # 1-D s' = s + a, reward pulls to 0.5, cost 1 beyond 0.3; the second particle of every
    # candidate (adjacent rows) lands 0.15 further: the plan must keep that one inside too
    class SecondParticleFurther:
        num_members = 1

        @property
        def elites(self):
            return torch.zeros(1, dtype=torch.long, device=device)

        def predict(self, obs, act, members=None, deterministic=False, generator=None):
            offset = 0.15 * (torch.arange(obs.shape[1], device=device) % 2).view(1, -1, 1)
            return obs + act + offset, None

    task = Task(reward=lambda s, a, s2: -(s2[..., 0] - 0.5) ** 2,
                cost=lambda s, a, s2: (s2[..., 0] > 0.3).float())
    cfg = ArcConfig(horizon=1, num_samples=200, num_actor_trajs=0, num_particles=2,
                    num_iterations=6, temperature=200.0, value='none', cost_limit=0.0,
                    min_feasible=5)
    arc = ArcPlanner(cfg, 1, 1, SecondParticleFurther(), task=task, device=device, seed=0)
    action, info = arc.plan(torch.zeros(1, device=device))
    assert 0.1 < action.item() <= 0.15   # 0.3 - 0.15: the worse particle's boundary
    assert info.predicted_worst_cost == 0.0


def test_cem_elites_are_feasible_candidates_only(device):
    # 1-D s' = s + a, one iteration of 100 samples with std 0.5: about 16 land inside the
    # feasible band |a| <= 0.1, fewer than the 20 elites. CEM refits to those feasible ones
    # only, so its mean and spread stay in the band and the mean is executed. (Taking the top
    # 20 of scores with the infeasible ones at -inf made elites of ~4 arbitrary infeasible
    # candidates: a wide refit whose mean left the band.)
    class Line:
        num_members = 1

        @property
        def elites(self):
            return torch.zeros(1, dtype=torch.long, device=device)

        def predict(self, obs, act, members=None, deterministic=False, generator=None):
            return obs + act, None

    task = Task(reward=lambda s, a, s2: -(s2[..., 0] - 0.5) ** 2,
                cost=lambda s, a, s2: (s2[..., 0].abs() > 0.1).float())
    cfg = ArcConfig(horizon=1, num_samples=100, num_actor_trajs=0, num_particles=1,
                    num_iterations=1, value='none', optimizer='cem', num_cem_elites=20,
                    var_momentum=0.0, cost_limit=0.0, min_feasible=3)
    arc = ArcPlanner(cfg, 1, 1, Line(), task=task, device=device, seed=0)
    action, info = arc.plan(torch.zeros(1, device=device))
    assert 3 <= info.num_feasible < 20
    assert info.executed == 'mean'
    assert abs(action.item()) <= 0.1 and info.action_std <= 0.1


def test_safe_presets_turn_the_constraint_on_and_keep_a_given_d0():
    from loop_ros.core.agent import SAFE_COST_LIMIT, apply_algorithm
    from loop_ros.core.config import LoopConfig, replace
    for algo in ('safe-loop', 'safe-pets'):
        cfg = replace(LoopConfig(), **{'train.algo': algo, 'arc.explore': 'sample'})
        applied = apply_algorithm(cfg)
        assert applied.arc.cost_limit == SAFE_COST_LIMIT and applied.arc.explore == 'mean'
        given = apply_algorithm(replace(cfg, **{'arc.cost_limit': 1.5}))
        assert given.arc.cost_limit == 1.5
    pets = apply_algorithm(replace(LoopConfig(), **{'train.algo': 'safe-pets'})).arc
    assert (pets.optimizer, pets.value, pets.num_actor_trajs) == ('cem', 'none', 0)


def test_safe_presets_refuse_switching_the_constraint_off_at_run_time():
    from loop_ros.core.agent import LoopPolicy
    from loop_ros.core.config import LoopConfig, replace
    from loop_ros.core.live_config import check_policy_changes
    cfg = replace(LoopConfig(), **{
        'train.algo': 'safe-pets', 'train.device': 'cpu', 'ensemble.num_members': 2,
        'ensemble.num_elites': 1, 'ensemble.hidden_size': 8, 'ensemble.num_layers': 1})
    policy = LoopPolicy(cfg, 9, 2, DRIFT.planner_task())
    assert check_policy_changes(policy, {'arc.cost_limit': 0.5}).arc.cost_limit == 0.5
    with pytest.raises(ValueError, match="cost_limit must stay >= 0 under train.algo 'safe-pets'"):
        check_policy_changes(policy, {'arc.cost_limit': -1.0})
