"""Anytime ARC: a deadline bounds the iterations of a plan (``ArcPlanner.plan(deadline=...)``).

A 1-D point model whose ``predict`` sleeps a known time makes one iteration cost a known time
(H = 1: one model call per iteration), so the stop rule is checked against the wall clock
without depending on how fast the machine computes.
"""
from __future__ import annotations

import math
import time

import pytest
import torch

from loop_ros.core.arc import ArcPlanner
from loop_ros.core.config import ArcConfig
from loop_ros.core.tasks import Task

GOAL = 0.5
STEP_S = 0.02
"""How long the slow model's ``predict`` sleeps: one iteration at H = 1."""


class SlowPointModel:
    """s' = s + a, reward -(s' - goal)^2 (one member); ``predict`` sleeps ``delay_s`` first."""

    num_members = 1

    def __init__(self, device: torch.device, delay_s: float = 0.0) -> None:
        self.device, self.delay_s = device, delay_s
        self.predict_calls = 0

    @property
    def elites(self) -> torch.Tensor:
        return torch.zeros(1, dtype=torch.long, device=self.device)

    def predict(self, obs, act, members=None, deterministic=False, generator=None):
        assert obs.device.type == self.device.type and act.device.type == self.device.type
        self.predict_calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        next_obs = obs + act
        return next_obs, -(next_obs[..., 0] - GOAL) ** 2

    def predict_random_elite(self, obs, act, deterministic=False, generator=None):
        next_obs = obs + act
        return next_obs, -(next_obs[..., 0] - GOAL) ** 2


def actor(s: torch.Tensor) -> torch.Tensor:
    return torch.full_like(s, 0.2)


SETTINGS = {
    'mixture': {},
    'mixture+actor': {'num_actor_trajs': 4},
    'policy prior': {'prior': 'policy', 'policy_noise': 0.1, 'num_actor_trajs': 4},
    'safe': {'cost_limit': 0.0, 'min_feasible': 5, 'num_actor_trajs': 4},
}
"""Planner variants: the default prior, with actor rollouts, offline LOOP's, safe LOOP."""


def planner(device, model, setting: str = 'mixture', **cfg) -> ArcPlanner:
    base = dict(horizon=1, num_samples=50, num_actor_trajs=0, num_particles=1,
                num_iterations=6, temperature=200.0, value='none', scoring='paper', gamma=1.0)
    base.update(SETTINGS[setting])
    base.update(cfg)
    task = (Task(cost=lambda s, a, s2: (s2[..., 0] > 0.3).float())
            if base.get('cost_limit', -1.0) >= 0.0 else Task())
    uses_actor = base['num_actor_trajs'] > 0 or base.get('prior') == 'policy'
    return ArcPlanner(ArcConfig(**base), 1, 1, model, actor=actor if uses_actor else None,
                      task=task, device=device, seed=0)


def test_a_deadline_that_fits_a_few_iterations_stops_before_the_rest(device):
    # 3.5 iterations of at least 20 ms: after three (>= 60 ms) less than one is left, so at
    # most three run, whatever the load; at full speed three do (a stalled first iteration on
    # a loaded machine may leave time for fewer, so the lower bound is the rule's own: one)
    model = SlowPointModel(device, STEP_S)
    arc = planner(device, model)
    start = time.perf_counter()
    action, info = arc.plan(torch.zeros(1), deadline=start + 3.5 * STEP_S)
    assert 1 <= info.iterations <= 3
    assert model.predict_calls == info.iterations   # H = 1: one model call per iteration
    assert action.device.type == device.type
    assert math.isfinite(action.item()) and -1.0 <= action.item() <= 1.0
    assert info.fallback == ''


@pytest.mark.parametrize('setting', list(SETTINGS))
def test_a_generous_deadline_runs_every_iteration_and_equals_the_plan_without_one(device,
                                                                                  setting):
    timed = planner(device, SlowPointModel(device), setting)
    untimed = planner(device, SlowPointModel(device), setting)
    for explore in (False, True, False):   # warm starts and the generator stay in step
        a_timed, i_timed = timed.plan(torch.zeros(1), explore,
                                      deadline=time.perf_counter() + 600.0)
        a_untimed, i_untimed = untimed.plan(torch.zeros(1), explore)
        assert i_timed.iterations == i_untimed.iterations == 6
        assert torch.equal(a_timed, a_untimed)
        assert i_timed == i_untimed
        assert torch.equal(timed._prev_plan, untimed._prev_plan)


@pytest.mark.parametrize('setting', list(SETTINGS))
def test_a_passed_deadline_still_runs_exactly_one_iteration(device, setting):
    model = SlowPointModel(device)
    arc = planner(device, model, setting)
    action, info = arc.plan(torch.zeros(1), explore=True, deadline=time.perf_counter() - 1.0)
    assert info.iterations == 1
    assert action.device.type == device.type
    assert math.isfinite(action.item()) and -1.0 <= action.item() <= 1.0
    assert info.fallback == '' and info.num_finite > 0
    safe_check = 1 if setting == 'safe' else 0   # the executed mean, re-imagined
    assert model.predict_calls == 1 + safe_check   # actor rollouts use predict_random_elite
    if setting == 'safe':
        assert action.item() <= 0.3 + 1e-6 and info.predicted_worst_cost == 0.0
    if setting in ('mixture', 'mixture+actor'):   # the same as a one-iteration plan
        one = planner(device, SlowPointModel(device), setting, num_iterations=1)
        assert torch.equal(action, one.plan(torch.zeros(1), explore=True)[0])


def test_more_iterations_within_the_deadline_plan_better(device):
    # the mixture prior refines around the refit: six iterations get closer to the optimum
    # than the one a passed deadline allows (few samples, so one iteration is coarse)
    one = planner(device, SlowPointModel(device), num_samples=10, temperature=50.0)
    six = planner(device, SlowPointModel(device), num_samples=10, temperature=50.0)
    errors = {1: 0.0, 6: 0.0}
    for _ in range(10):
        one.reset()
        six.reset()
        a_one, i_one = one.plan(torch.zeros(1), deadline=time.perf_counter() - 1.0)
        a_six, i_six = six.plan(torch.zeros(1), deadline=time.perf_counter() + 600.0)
        errors[i_one.iterations] += abs(a_one.item() - GOAL)
        errors[i_six.iterations] += abs(a_six.item() - GOAL)
    assert errors[6] < 0.5 * errors[1]


def test_the_device_is_synchronised_once_per_checked_iteration_only_with_a_deadline(
        device, monkeypatch):
    calls: list[torch.device] = []
    real = torch.cuda.synchronize
    monkeypatch.setattr(torch.cuda, 'synchronize', lambda d=None: (calls.append(d), real(d)))
    arc = planner(device, SlowPointModel(device))
    arc.plan(torch.zeros(1))
    assert calls == []
    arc.plan(torch.zeros(1), deadline=time.perf_counter() + 600.0)
    # after each iteration but the last (nothing is left to decide then); never on CPU
    assert len(calls) == (5 if device.type == 'cuda' else 0)
