"""ARC planner behaviour on analytic problems with known optima (no learned model)."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from loop_ros.core.arc import ArcPlanner
from loop_ros.core.config import ArcConfig
from loop_ros.core.tasks import Task

GOAL = 0.5


class PointModel:
    """Known dynamics s' = s + a (1-D), reward -(s' - goal)^2; member m adds ``bias[m] * a``."""

    def __init__(self, device: torch.device, num_members: int = 1,
                 member_bias: list[float] | None = None, learn_reward: bool = True,
                 noise: float = 0.0) -> None:
        self.device = device
        self.noise = noise  # std of a Gaussian added to s' unless deterministic
        self.num_members = num_members
        self.bias = torch.tensor(member_bias or [0.0] * num_members, device=device)
        self.learn_reward = learn_reward
        self.calls: list[torch.Size] = []
        self.deterministic_calls: list[bool] = []

    @property
    def elites(self) -> torch.Tensor:
        return torch.arange(self.num_members, device=self.device)

    def predict(self, obs, act, members=None, deterministic=False, generator=None):
        assert obs.device.type == self.device.type and act.device.type == self.device.type
        self.calls.append(obs.shape)
        bias = self.bias[members].view(-1, 1, 1)
        next_obs = obs + act + bias * act
        if not deterministic and self.noise > 0.0:
            next_obs = next_obs + self.noise * torch.randn(
                next_obs.shape, generator=generator, device=generator.device).to(self.device)
        self.deterministic_calls.append(deterministic)
        reward = -(next_obs[..., 0] - GOAL) ** 2 if self.learn_reward else None
        return next_obs, reward

    def predict_random_elite(self, obs, act, deterministic=False, generator=None):
        next_obs = obs + act
        return next_obs, -(next_obs[..., 0] - GOAL) ** 2


def planner(device, model=None, actor=None, critic=None, task=Task(), **cfg) -> ArcPlanner:
    base = dict(horizon=3, num_samples=200, num_actor_trajs=0, num_particles=1,
                num_iterations=6, temperature=200.0, value='none', scoring='paper', gamma=1.0)
    base.update(cfg)
    return ArcPlanner(ArcConfig(**base), 1, 1, model or PointModel(device), actor=actor,
                      critic=critic, task=task, device=device, seed=0)


def test_reaches_the_analytic_optimum(device):
    # sum_t -(s_t+1 - 0.5)^2 from s0 = 0 is maximised by a0 = 0.5 then zeros
    arc = planner(device)
    action, info = arc.plan(torch.zeros(1))
    assert action.device.type == device.type
    assert action.item() == pytest.approx(GOAL, abs=0.05)
    assert info.elite_return <= 0.0
    assert info.elite_return > -0.01


def test_terminal_value_alone_determines_the_optimum(device):
    # H = 1 and no reward signal: R = gamma * Q(s_1, pi(s_1)), with Q peaked at s = -0.3
    model = PointModel(device, learn_reward=False)
    task = Task(reward=lambda s, a, s2: torch.zeros_like(s2[..., 0]))
    critic = lambda s, a: -10.0 * (s[..., 0] + 0.3) ** 2  # noqa: E731
    actor = lambda s: torch.zeros_like(s)  # noqa: E731
    arc = planner(device, model, actor=actor, critic=critic, task=task, horizon=1, value='q',
                  gamma=0.9)
    action, _ = arc.plan(torch.zeros(1))
    assert action.item() == pytest.approx(-0.3, abs=0.05)


def test_reference_scoring_uses_q_of_the_last_action(device):
    # reference: R = sum_{t<H-1} r_t + Q(s_{H-1}, a_{H-1}); with H = 1 only Q(s_0, a_0) counts
    critic = lambda s, a: -((a[..., 0] - 0.7) ** 2)  # noqa: E731
    actor = lambda s: torch.zeros_like(s)  # noqa: E731
    arc = planner(device, actor=actor, critic=critic, horizon=1, value='q', scoring='reference')
    action, _ = arc.plan(torch.zeros(1))
    assert action.item() == pytest.approx(0.7, abs=0.05)


def test_reference_scoring_without_a_value_keeps_the_last_reward(device):
    # no Q(s_{H-1}, a_{H-1}) stands in for r_{H-1}: at H = 1, R = r_0 (it used to be 0 for
    # every candidate, so the plan was the mean of uniform weights, near 0 instead of 0.5)
    arc = planner(device, horizon=1, value='none', scoring='reference')
    action, info = arc.plan(torch.zeros(1))
    assert action.item() == pytest.approx(GOAL, abs=0.05)
    assert info.elite_return < 0.0


@pytest.mark.parametrize('iterations', [1])
def test_actor_prior_pulls_the_plan_towards_the_actor(device, iterations):
    # a flat objective: every candidate scores the same, so only the prior shapes the plan
    flat = Task(reward=lambda s, a, s2: torch.zeros_like(s2[..., 0]))
    model = PointModel(device, learn_reward=False)
    actor = lambda s: torch.full_like(s, 0.9)  # noqa: E731
    without = planner(device, model, task=flat, num_iterations=iterations, num_samples=20)
    with_actor = planner(device, model, actor=actor, task=flat, num_iterations=iterations,
                         num_samples=20, num_actor_trajs=20)
    a0, _ = without.plan(torch.zeros(1))
    a1, _ = with_actor.plan(torch.zeros(1))
    assert abs(a1.item() - 0.9) < abs(a0.item() - 0.9) - 0.2
    # and with a real objective, an actor at the optimum makes one iteration exact
    exact = planner(device, actor=lambda s: torch.full_like(s, GOAL) - s, num_actor_trajs=5,
                    num_iterations=1, num_samples=10)
    a2, _ = exact.plan(torch.zeros(1))
    assert a2.item() == pytest.approx(GOAL, abs=0.02)


def test_warm_start_shifts_the_previous_plan(device):
    arc = planner(device)
    arc.plan(torch.zeros(1))
    previous = arc._prev_plan.clone()
    shifted = arc._shifted_plan()
    assert torch.equal(shifted[:-1], previous[1:])
    assert torch.equal(shifted[-1], previous[-1])
    arc.reset()
    assert torch.count_nonzero(arc._prev_plan) == 0


def test_train_mode_samples_a_candidate_and_eval_mode_is_the_mean(device):
    arc = planner(device, temperature=1e-3, num_iterations=1)  # near-uniform weights
    actions = {round(arc.plan(torch.zeros(1), explore=True)[0].item(), 4) for _ in range(10)}
    assert len(actions) > 5  # samples differ
    arc.reset()
    mean_action, info = arc.plan(torch.zeros(1), explore=False)
    assert abs(mean_action.item()) < 0.3  # the mean of near-uniform weights stays central
    assert info.action_std > 0.1


def test_actions_stay_in_bounds_and_input_is_not_mutated(device):
    arc = planner(device)
    obs = torch.full((1,), -5.0, device=device)  # optimum a = 5.5 lies outside [-1, 1]
    before = obs.clone()
    action, _ = arc.plan(obs)
    assert torch.equal(obs, before)
    assert -1.0 <= action.item() <= 1.0
    assert action.item() > 0.95


def test_termination_masks_reward_after_a_terminal_state(device):
    # reward +1 per step; crossing s > 0.25 terminates: alive-only planning avoids it
    model = PointModel(device, learn_reward=False)
    task = Task(termination=lambda s: s[..., 0] > 0.25,
                reward=lambda s, a, s2: 1.0 + 0.5 * a[..., 0])  # pushes right, into termination
    arc = planner(device, model, task=task, horizon=3)
    action, _ = arc.plan(torch.zeros(1))
    # s stays <= 0.25 for three steps: actions are bounded by the remaining margin
    assert action.item() <= 0.26
    unmasked = planner(device, model, task=dataclasses.replace(task, termination=None), horizon=3)
    assert unmasked.plan(torch.zeros(1))[0].item() > 0.9


def test_pessimism_avoids_where_members_disagree(device):
    # member 1 predicts s' = 4a, member 0 s' = a: they disagree unless a = 0
    model = PointModel(device, num_members=2, member_bias=[0.0, 3.0])
    task = Task(reward=lambda s, a, s2: a[..., 0])
    model.learn_reward = False
    optimistic = planner(device, model, task=task, horizon=1)
    pessimistic = planner(device, model, task=task, horizon=1, pessimism=5.0)
    assert optimistic.plan(torch.zeros(1))[0].item() > 0.9
    # reward a is certain; with penalty on member std of returns (which is 0 for reward = a)
    # the plan is unchanged: pessimism only bites where members disagree on the return
    assert pessimistic.plan(torch.zeros(1))[0].item() > 0.9
    disagree = Task(reward=lambda s, a, s2: s2[..., 0])  # return depends on the member
    opt = planner(device, model, task=disagree, horizon=1)
    pes = planner(device, model, task=disagree, horizon=1, pessimism=2.0)
    assert opt.plan(torch.zeros(1))[0].item() > 0.9
    # returns a and 4a: mean 2.5a - 2 * std (2.12|a|) peaks at a = 0, where members agree
    assert pes.plan(torch.zeros(1))[0].item() == pytest.approx(0.0, abs=0.05)


def test_safe_planning_respects_the_worst_case_cost(device):
    # reward pulls s to 0.5, cost 1 for s' > 0.3: the safe plan stays below the boundary
    model = PointModel(device, learn_reward=True)
    task = Task(cost=lambda s, a, s2: (s2[..., 0] > 0.3).float())
    unsafe = planner(device, model, task=task)
    safe = planner(device, model, task=task, cost_limit=0.0, min_feasible=5)
    assert unsafe.plan(torch.zeros(1))[0].item() == pytest.approx(GOAL, abs=0.05)
    action, info = safe.plan(torch.zeros(1))
    assert 0.2 < action.item() <= 0.3
    assert info.predicted_worst_cost == pytest.approx(0.0)
    assert info.num_feasible >= 5


def test_cem_optimizer_reaches_the_optimum(device):
    arc = planner(device, optimizer='cem', num_cem_elites=20, temperature=1.0)
    action, _ = arc.plan(torch.zeros(1))
    assert action.item() == pytest.approx(GOAL, abs=0.05)


def test_rolls_out_only_the_scored_members(device):
    class ThreeMembersTwoElites(PointModel):
        @property
        def elites(self) -> torch.Tensor:
            return torch.tensor([0, 2], device=self.device)

    model = ThreeMembersTwoElites(device, num_members=3)
    arc = planner(device, model, num_particles=4, num_samples=10, num_iterations=2)
    arc.plan(torch.zeros(1))
    assert all(shape[0] == 2 for shape in model.calls)
    assert all(shape[1] == 10 * 4 for shape in model.calls)


def test_value_needs_actor_and_critic(device):
    with pytest.raises(ValueError, match='actor and a critic'):
        planner(device, value='q')
    with pytest.raises(ValueError, match='cost function'):
        planner(device, cost_limit=0.2)


def test_explore_mean_trains_with_the_evaluation_action(device):
    a = planner(device, temperature=1e-3, num_iterations=1, explore='mean')
    b = planner(device, temperature=1e-3, num_iterations=1, explore='mean')
    train_action, _ = a.plan(torch.zeros(1), explore=True)
    eval_action, _ = b.plan(torch.zeros(1), explore=False)
    assert torch.equal(train_action, eval_action)


def test_mean_rollouts_ignore_model_noise_and_roll_one_particle(device):
    # s' = s + a + N(0, 0.3^2): sampled scores are noisy, the model's mean is the point problem
    noisy = PointModel(device, noise=0.3)
    arc = planner(device, noisy, rollout='mean', num_particles=4, num_samples=50)
    action, info = arc.plan(torch.zeros(1))
    assert action.item() == pytest.approx(GOAL, abs=0.05)
    assert info.elite_return > -0.01
    assert all(noisy.deterministic_calls)
    assert all(shape[1] == 50 for shape in noisy.calls)  # particles would coincide: one each
    sampled_model = PointModel(device, noise=0.3)
    sampled = planner(device, sampled_model, num_particles=4, num_samples=50)
    sampled.plan(torch.zeros(1))
    assert not any(sampled_model.deterministic_calls)
    assert all(shape[1] == 50 * 4 for shape in sampled_model.calls)


def test_policy_prior_stays_near_the_offline_actor(device):
    # offline LOOP: candidates are the actor's actions plus N(0, sigma^2); one iteration cannot
    # leave that neighbourhood even though the optimum (0.5) is far from the actor's 0
    actor = lambda s: torch.zeros_like(s)  # noqa: E731
    arc = planner(device, actor=actor, prior='policy', policy_noise=0.05, num_iterations=1)
    action, _ = arc.plan(torch.zeros(1))
    assert 0.02 < action.item() <= 0.25   # towards the goal, within 5 sigma of the actor


def test_policy_prior_without_noise_executes_the_actor(device):
    actor = lambda s: torch.full_like(s, -0.2)  # noqa: E731
    arc = planner(device, actor=actor, prior='policy', policy_noise=0.0, num_iterations=1)
    action, _ = arc.plan(torch.zeros(1))
    assert action.item() == pytest.approx(-0.2, abs=1e-6)


@pytest.mark.parametrize('noise_clip', ['execution', 'candidates'])
def test_policy_prior_with_equal_weights_executes_the_actor_unless_candidates_are_clipped(
        device, noise_clip):
    # a flat objective gives every candidate the same weight; the actor's 0.95 sits near the
    # bound, so clipping each noisy candidate (the reference) averages to about 0.83, while
    # clipping only what is imagined and executed averages zero-mean noise around 0.95
    flat = Task(reward=lambda s, a, s2: torch.zeros_like(s2[..., 0]))
    actor = lambda s: torch.full_like(s, 0.95)  # noqa: E731
    arc = planner(device, PointModel(device, learn_reward=False), actor=actor, task=flat,
                  prior='policy', policy_noise=0.3, noise_clip=noise_clip, num_iterations=1,
                  num_samples=2000)
    action, _ = arc.plan(torch.zeros(1))
    if noise_clip == 'execution':
        assert action.item() == pytest.approx(0.95, abs=0.03)
    else:
        assert action.item() < 0.88


@pytest.mark.parametrize('num_samples', [10, 11])
def test_mirrored_policy_noise_with_equal_weights_executes_the_actor_exactly(device,
                                                                            num_samples):
    # with few candidates, iid noise leaves its sample mean in the executed action (about
    # sigma / sqrt(N) = 0.09 here); mirrored pairs cancel it to float precision, odd N too
    flat = Task(reward=lambda s, a, s2: torch.zeros_like(s2[..., 0]))
    actor = lambda s: torch.full_like(s, 0.2)  # noqa: E731
    deviations = {}
    for sampling in ('iid', 'mirrored'):
        arc = planner(device, PointModel(device, learn_reward=False), actor=actor, task=flat,
                      prior='policy', policy_noise=0.3, num_iterations=1,
                      num_samples=num_samples, policy_noise_sampling=sampling)
        deviations[sampling] = max(abs(arc.plan(torch.zeros(1))[0].item() - 0.2)
                                   for _ in range(20))
    assert deviations['mirrored'] < 1e-6
    assert deviations['iid'] > 0.05


def test_mirrored_policy_noise_steps_along_the_score_difference_on_every_plan(device):
    # the goal (0.5) lies above the actor's 0.2 and the score is concave, so in every pair
    # 0.2 + d beats 0.2 - d: the mirrored refit moves up on every plan; with 6 iid
    # candidates the noise's own mean sometimes outweighs that and the plan moves down
    actor = lambda s: torch.full_like(s, 0.2)  # noqa: E731
    moved_up = {}
    for sampling in ('iid', 'mirrored'):
        arc = planner(device, actor=actor, prior='policy', policy_noise=0.3, num_iterations=1,
                      num_samples=6, temperature=10.0, horizon=1,
                      policy_noise_sampling=sampling)
        actions = torch.tensor([arc.plan(torch.zeros(1))[0].item() for _ in range(200)])
        moved_up[sampling] = (actions > 0.2).float().mean().item()
    assert moved_up['mirrored'] == 1.0
    assert moved_up['iid'] < 0.99


def test_policy_prior_needs_an_actor(device):
    with pytest.raises(ValueError, match="prior='policy' needs an actor"):
        planner(device, prior='policy')


def test_policy_prior_later_iterations_refine_around_the_weighted_mean(device):
    # iterations after the first sample Gaussians around the refit, so they can walk further
    actor = lambda s: torch.zeros_like(s)  # noqa: E731
    one = planner(device, actor=actor, prior='policy', policy_noise=0.1, num_iterations=1)
    many = planner(device, actor=actor, prior='policy', policy_noise=0.1, num_iterations=6,
                   init_std=0.5)
    a_one, _ = one.plan(torch.zeros(1))
    a_many, _ = many.plan(torch.zeros(1))
    assert abs(a_many.item() - GOAL) < abs(a_one.item() - GOAL)


class BrokenModel(PointModel):
    """The point model, but predictions are NaN (or inf) where ``broken(obs, act)`` holds."""

    def __init__(self, device, broken, value=float('nan'), **kwargs) -> None:
        super().__init__(device, **kwargs)
        self.broken, self.value = broken, value

    def predict(self, obs, act, members=None, deterministic=False, generator=None):
        next_obs, reward = super().predict(obs, act, members, deterministic, generator)
        mask = self.broken(obs, act)
        next_obs = torch.where(mask.unsqueeze(-1), self.value, next_obs)
        return next_obs, torch.where(mask, self.value, reward)


@pytest.mark.parametrize('value', [float('nan'), float('inf')])
@pytest.mark.parametrize('safe', [False, True])
def test_non_finite_predictions_get_no_weight(device, value, safe):
    # candidates with a0 > 0.3 blow up the model; the optimum among the rest is the boundary
    model = BrokenModel(device, lambda s, a: a[..., 0] > 0.3, value)
    extra = {'cost_limit': 10.0} if safe else {}
    task = Task(cost=lambda s, a, s2: torch.zeros_like(s2[..., 0])) if safe else Task()
    arc = planner(device, model, task=task, **extra)
    for explore in (False, True):   # multinomial sampling must not see a NaN weight
        action, info = arc.plan(torch.zeros(1), explore=explore)
        assert torch.isfinite(action).all() and 0.2 < action.item() <= 0.3
        assert 0 < info.num_finite < arc.num_candidates and info.fallback == ''
        assert all(map(lambda v: v == v, (info.elite_return, info.mean_return,
                                          info.action_std, info.predicted_worst_cost)))


def test_a_model_that_only_predicts_nan_falls_back_to_the_actor_then_zero(device):
    model = BrokenModel(device, lambda s, a: torch.ones_like(a[..., 0], dtype=torch.bool))
    actor = lambda s: torch.full((s.shape[0], 1), -0.4, device=s.device)  # noqa: E731
    arc = planner(device, model, actor=actor, num_actor_trajs=2)
    action, info = arc.plan(torch.zeros(1), explore=True)
    assert info.num_finite == 0 and info.fallback == 'actor'
    assert action.item() == pytest.approx(-0.4)
    assert not arc._prev_plan.any()   # the garbage plan is not kept as the warm start
    nan_actor = lambda s: torch.full((s.shape[0], 1), float('nan'), device=s.device)  # noqa
    for actor in (None, nan_actor):
        action, info = planner(device, model, actor=actor).plan(torch.zeros(1))
        assert info.fallback == 'zero' and action.tolist() == [0.0]
