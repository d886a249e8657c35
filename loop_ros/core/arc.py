"""ARC: Actor Regularized Control, LOOP's H-step lookahead planner (sec. 4.2, eq. 6-10).

One control step, as the algorithm box reads (``ArcPlanner.plan``):

1. warm start: the previous plan shifted by one step (last action repeated), variance reset;
2. actor prior: ``num_actor_trajs`` rollouts of the deterministic actor through the model;
3. for each iteration: sample N truncated-normal sequences around the mean (bound-aware
   variance), append the actor rollouts, imagine every candidate through the scored ensemble
   members x particles, score it, and refit mean and variance to the weighted candidates;
   with a deadline (anytime planning), stop after the iteration when another would not fit;
4. act: eval mode executes the weighted mean's first action; train mode a candidate sampled by
   its weight (the reference's only exploration, spec sec. 3 step 4).

Scores (``ArcConfig.scoring``):

* ``'paper'`` (default, eq. 3/8): R = sum_{t<H} gamma^t r_t + gamma^H Q(s_H, pi(s_H));
* ``'reference'`` (the authors' code): R = sum_{t<H-1} r_t + Q(s_{H-1}, a_{H-1}) (undiscounted;
  with ``value='none'`` R = sum_{t<H} r_t, since no Q stands in for the last reward).

Rewards after a predicted termination and the value of a terminal state are masked. Offline
LOOP (sec. 4.3) starts from ``prior='policy'``: N noisy rollouts of the offline actor instead of
Gaussians around the previous plan (one iteration by default); its pessimism (eq. 9) is
mean - beta * std over ensemble members (not over particles of one member, the reference's bug
10 in docs/algorithm.md). Safe LOOP (eq. 10, ``cost_limit`` = d0 >= 0): a candidate is feasible
when the worst case over members and particles of its horizon cost
D = sum_{t<H} gamma^t c(s_t, a_t, s_{t+1}) (undiscounted with ``cost_discounted`` off) is <= d0;
with fewer than ``min_feasible`` feasible candidates the refit goes towards low cost, otherwise
only feasible candidates get weight (CEM: its elites are feasible ones only). The executed plan
is the weighted mean (or, in train mode with ``explore='sample'``, a feasible candidate drawn by
its weight) when its own re-imagined worst cost is <= d0; else the best-scoring feasible
candidate; with none feasible, the plan of least worst cost. "Low cost" ranks by the graded
cost sum_t w_t (c_t + v_t) when the task's cost also says by how much a state violates
(``cost.cost_and_violation``, metres for
:class:`~loop_ros.core.constraint_cost.ConstraintCost`): plans that all violate on every
step, which a 0/1 cost cannot tell apart, are then ranked by how far outside they go. Baselines
by config:
``optimizer='cem'`` (LOOP without ARC), ``value='none'`` (PETS-restricted). Every tensor stays
on ``device``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
import time
from typing import Callable, Protocol

import torch

from loop_ros.core.config import ArcConfig
from loop_ros.core.config import check_static_unchanged
from loop_ros.core.math import truncated_standard_normal
from loop_ros.core.tasks import NEVER_TERMINATES, Task

ACTION_LOW, ACTION_HIGH = -1.0, 1.0


class DynamicsModel(Protocol):
    """What the planner needs of a model (``ProbabilisticEnsemble`` implements it)."""

    @property
    def elites(self) -> torch.Tensor:
        """LongTensor (M,) of the members to roll out and score."""

    @property
    def num_members(self) -> int:
        """All members (used when ``elites_only`` is off)."""

    def predict(self, obs: torch.Tensor, act: torch.Tensor, members: torch.Tensor | None = None,
                deterministic: bool = False, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(M, B, O), (M, B, A) -> sampled next obs (M, B, O) and reward (M, B) or None."""

    def predict_random_elite(self, obs: torch.Tensor, act: torch.Tensor,
                             deterministic: bool = False,
                             generator: torch.Generator | None = None
                             ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, O), (B, A) -> next obs and reward, each row from a random elite (TS-1)."""


ActorFn = Callable[[torch.Tensor], torch.Tensor]
"""Deterministic actor: obs (..., O) -> action (..., A) in [-1, 1]."""
CriticFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""Q(s, a): obs (..., O), action (..., A) -> (...)."""


EXECUTED = ('mean', 'sample', 'best_feasible', 'least_cost')
"""Values of :attr:`PlanInfo.executed`, indexed by the code :meth:`ArcPlanner.plan` computes."""


@dataclass(frozen=True)
class PlanInfo:
    """Diagnostics of one plan (published as ``loop_ros/PlanStats`` by the planner node)."""

    iterations: int
    """Iterations run: ``num_iterations``, or fewer when a deadline stopped the plan early."""
    elite_return: float
    mean_return: float
    action_std: float
    predicted_worst_cost: float
    """Safe plans: the worst case over scored members and particles of the executed plan's
    horizon cost (the mean's from its own fresh rollout, a candidate's from the last iteration);
    0.0 when the plan is not safe (no cost is imagined)."""
    num_feasible: int
    """Safe plans: candidates of the last iteration whose worst-case horizon cost is <= d0;
    without a constraint every candidate counts (``ArcPlanner.num_candidates``)."""
    num_finite: int = -1
    """Candidates of the last iteration with a finite score; 0 also when the plan itself is not
    finite (-1: not counted)."""
    fallback: str = ''
    """'' (the plan), or why it was not used: 'actor' / 'zero' when no candidate's imagined
    return was finite (a model predicting NaN or inf): the actor's action, else normalised 0."""
    executed: str = 'mean'
    """Which plan was executed (one of :data:`EXECUTED`): 'mean' (the weighted mean), 'sample'
    (a candidate drawn by its weight, train mode with ``explore='sample'``); safe plans only:
    'best_feasible' (the mean's worst cost exceeded d0: the best-scoring feasible candidate)
    and 'least_cost' (no plan was feasible: the candidate of least worst cost, which beat the
    mean)."""


@dataclass(frozen=True)
class Rollout:
    """Imagined outcome of every candidate for every scored member and particle.

    Shapes (M members, C candidates, P particles):
        returns: (M, C, P) score of each imagined trajectory
        costs: (M, C, P) horizon cost D, or None when the task has no cost
        graded_costs: (M, C, P) sum_t w_t (c_t + v_t), v_t >= 0 how far s_{t+1} violates the
            constraint (0 inside); ``costs`` itself when the task's cost says only c_t
    """

    returns: torch.Tensor
    costs: torch.Tensor | None
    graded_costs: torch.Tensor | None


@dataclass(frozen=True)
class PlanView:
    """The last plan as :meth:`ArcPlanner.visualise` imagines it (tensors on the planner device).

    Shapes (K shown candidates, M scored members, H horizon, O obs):
        candidate_states: (K, H+1, O) mean over members of each candidate's imagined states,
            best first, then the worst
        candidate_scores: (K,) their scores in the last iteration
        member_states: (M, H+1, O) the executed plan imagined by each member
    """

    candidate_states: torch.Tensor
    candidate_scores: torch.Tensor
    member_states: torch.Tensor


class ArcPlanner:
    """Iterative importance sampling over action sequences with an actor prior (LOOP sec. 4.2).

    Shapes:
        obs: (O,); plan mean/var: (H, A); candidates: (C, H, A) with C = N + K actor rollouts.
    """

    def __init__(self, cfg: ArcConfig, obs_dim: int, act_dim: int, model: DynamicsModel,
                 actor: ActorFn | None = None, critic: CriticFn | None = None,
                 task: Task = NEVER_TERMINATES, device: torch.device | str = 'cpu',
                 seed: int = 0) -> None:
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.model, self.actor, self.critic, self.task = model, actor, critic, task
        self._check(cfg)
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self._prev_plan = torch.zeros(cfg.horizon, act_dim, device=self.device)
        self._executed_codes = torch.arange(len(EXECUTED), device=self.device)
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None  # candidates, scores
        self._derive(cfg)

    def _check(self, cfg: ArcConfig) -> None:
        """ValueError when ``cfg`` needs parts this planner lacks (actor, critic, cost)."""
        if cfg.value == 'q' and (self.actor is None or self.critic is None):
            raise ValueError("ArcConfig.value='q' needs both an actor and a critic")
        if cfg.prior == 'policy' and self.actor is None:
            raise ValueError("ArcConfig.prior='policy' needs an actor")
        if cfg.cost_limit >= 0.0 and self.task.cost is None:
            raise ValueError('safe planning (cost_limit >= 0) needs a task with a cost function '
                             '(or a learned one: ensemble.learn_cost)')

    def _derive(self, cfg: ArcConfig) -> None:
        """Set ``cfg`` and the values computed from it (counts, score weights)."""
        self.cfg = cfg
        self.num_actor_trajs = cfg.num_actor_trajs if self.actor is not None else 0
        self.num_candidates = cfg.num_samples + self.num_actor_trajs
        h = torch.arange(cfg.horizon, device=self.device, dtype=torch.float32)
        if cfg.scoring == 'paper':
            self._reward_weights = cfg.gamma ** h                        # gamma^t, t < H
            self._value_weight = cfg.gamma ** cfg.horizon
        elif cfg.value == 'q':
            self._reward_weights = (h < cfg.horizon - 1).float()         # t < H-1, undiscounted
            self._value_weight = 1.0
        else:   # no Q(s_{H-1}, a_{H-1}) to stand in for the last reward: keep every reward
            self._reward_weights = torch.ones_like(h)
            self._value_weight = 0.0
        # horizon cost D = sum_{t<H} w_t c_t: w_t = gamma^t (eq. 10) or 1 (the authors' code)
        self._cost_weights = cfg.gamma ** h if cfg.cost_discounted else torch.ones_like(h)

    def check_reconfigure(self, cfg: ArcConfig) -> None:
        """ValueError naming the reason when :meth:`reconfigure` would refuse ``cfg``.

        Static fields (``ArcConfig`` metadata, e.g. ``horizon``: the warm-start plan's shape)
        must stay; the rest only change how candidates are sampled, scored and refit.
        """
        check_static_unchanged(self.cfg, cfg, 'arc', 'the planner (it sets persistent shapes)')
        self._check(cfg)

    def reconfigure(self, cfg: ArcConfig) -> None:
        """Plan with ``cfg`` from the next :meth:`plan` on (call between plans, never during one).

        The warm start and the generator are kept. Raises ValueError (see
        :meth:`check_reconfigure`); the planner is unchanged then.
        """
        self.check_reconfigure(cfg)
        self._derive(cfg)

    @property
    def safe(self) -> bool:
        return self.cfg.cost_limit >= 0.0

    def reset(self) -> None:
        """Forget the warm start (call at episode start): the plan mean restarts at zero."""
        self._prev_plan.zero_()

    @torch.no_grad()
    def plan(self, obs: torch.Tensor, explore: bool = False, deadline: float | None = None
             ) -> tuple[torch.Tensor, PlanInfo]:
        """Plan from ``obs`` and return the action to execute now, (A,), on ``device``.

        ``explore`` (train mode) samples a candidate when ``explore='sample'``; a safe plan is
        checked against the constraint before it is executed (:meth:`_safe_plan`).

        ``deadline`` (anytime planning): an absolute :func:`time.perf_counter` time by which
        the iterations should be done. After each iteration the plan stops, keeping the refit
        so far, when the time left is less than one iteration (the mean duration of this
        plan's iterations so far); at least one iteration always runs, and what follows the
        last one (the safe check, the host copy of :class:`PlanInfo`) runs after it.
        ``PlanInfo.iterations`` says how many ran. On CUDA each check first waits for the
        device (``torch.cuda.synchronize``), so the clock measures finished work; that costs
        the host/device overlap across the iteration boundary, once per iteration and only
        with a deadline. None (default): all ``num_iterations``, no clock read, no sync.
        """
        cfg = self.cfg
        obs = torch.as_tensor(obs, dtype=torch.float32, device=self.device).reshape(self.obs_dim)
        mean = self._shifted_plan()
        var = torch.full_like(mean, cfg.init_std ** 2)
        gaussian_iterations = cfg.num_iterations - (1 if cfg.prior == 'policy' else 0)
        actor_plans = (self._actor_rollouts(obs, self.num_actor_trajs) if gaussian_iterations
                       else None)
        loop_start = time.perf_counter() if deadline is not None else 0.0
        iterations = 0
        for iteration in range(cfg.num_iterations):
            if iteration == 0 and cfg.prior == 'policy':
                candidates = self._policy_prior(obs)
            else:
                candidates = self._sample_candidates(mean, var, actor_plans)
            rollout = self._imagine(obs, candidates)
            scores, worst_costs, worst_graded = self._score(rollout)
            weights = self._weights(scores, worst_costs, worst_graded)
            mean, new_var = self._refit(candidates, weights)
            var = cfg.var_momentum * var + (1.0 - cfg.var_momentum) * new_var
            iterations = iteration + 1
            if (deadline is not None and iterations < cfg.num_iterations
                    and self._out_of_time(deadline, loop_start, iterations)):
                break
        sample = explore and cfg.explore == 'sample'
        plan_worst_cost: torch.Tensor | None = None
        if worst_costs is not None:
            plan, plan_worst_cost, executed = self._safe_plan(
                obs, candidates, scores, worst_costs, worst_graded, mean, sample)
        elif sample:
            choice = torch.multinomial(weights, 1, generator=self.generator)
            plan = candidates.index_select(0, choice)[0]
            executed = self._executed_codes[EXECUTED.index('sample')]
        else:
            plan = mean
            executed = self._executed_codes[EXECUTED.index('mean')]
        self._prev_plan = plan.clamp(ACTION_LOW, ACTION_HIGH)   # a copy
        self._last = (candidates, scores)   # references only, for visualise()
        info = self._info(scores, weights, var, worst_costs, plan[0], plan_worst_cost, executed,
                          iterations)
        if info.num_finite == 0:   # no finite candidate, or a non-finite plan
            return self._fallback(obs, info)
        return plan[0].clamp(ACTION_LOW, ACTION_HIGH), info

    def _out_of_time(self, deadline: float, loop_start: float, iterations: int) -> bool:
        """Whether another iteration would end after ``deadline`` (perf_counter seconds).

        One iteration is estimated as the mean of the ``iterations`` done since ``loop_start``.
        On CUDA the device is synchronised first: the clock then counts finished work, not
        kernels merely queued.
        """
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        return deadline - now < (now - loop_start) / iterations

    def _fallback(self, obs: torch.Tensor, info: PlanInfo) -> tuple[torch.Tensor, PlanInfo]:
        """No finite candidate (or a non-finite plan): the actor's action if it is finite,
        else normalised 0; the warm start is dropped. Never a NaN action."""
        self.reset()
        if self.actor is not None:
            action = self.actor(obs.unsqueeze(0))[0]
            if bool(torch.isfinite(action).all()):
                return (action.clamp(ACTION_LOW, ACTION_HIGH),
                        dataclasses.replace(info, fallback='actor'))
        return (torch.zeros(self.act_dim, device=self.device),
                dataclasses.replace(info, fallback='zero'))

    @torch.no_grad()
    def imagine_plan(self, obs: torch.Tensor) -> torch.Tensor:
        """Mean imagined states (H+1, O) along the last executed plan (for visualisation)."""
        members = self._members()
        state = torch.as_tensor(obs, dtype=torch.float32, device=self.device).reshape(
            1, 1, self.obs_dim).expand(members.numel(), 1, self.obs_dim)
        states = [state.mean(dim=0)[0]]
        for action in self._prev_plan:
            state, _ = self.model.predict(state, action.expand(members.numel(), 1, self.act_dim),
                                          members, deterministic=True)
            states.append(state.mean(dim=0)[0])
        return torch.stack(states)

    @torch.no_grad()
    def visualise(self, obs: torch.Tensor, num_best: int = 3, num_worst: int = 3
                  ) -> PlanView | None:
        """What the last :meth:`plan` looked at, imagined through the scored members.

        The ``num_best`` highest- and ``num_worst`` lowest-scored candidates of the last
        iteration (fewer when there are fewer candidates), rolled out with each member's mean
        prediction and averaged over members, and the executed plan rolled out by every member
        on its own (the ensemble's spread). None before the first plan. Every tensor stays on
        ``device``.
        """
        if self._last is None:
            return None
        candidates, scores = self._last
        order = scores.nan_to_num(nan=float('-inf')).argsort(descending=True)
        count = order.numel()
        best = min(max(num_best, 0), count)
        worst = min(max(num_worst, 0), count - best)
        picked = torch.cat([order[:best], order[count - worst:]])
        plans = torch.cat([candidates[picked].clamp(ACTION_LOW, ACTION_HIGH),
                           self._prev_plan.unsqueeze(0)])                   # (K+1, H, A)
        members = self._members()
        num_members, rows = members.numel(), plans.shape[0]
        state = torch.as_tensor(obs, dtype=torch.float32, device=self.device).reshape(
            1, 1, self.obs_dim).expand(num_members, rows, self.obs_dim)
        states = [state]
        for t in range(plans.shape[1]):
            action = plans[:, t].unsqueeze(0).expand(num_members, rows, self.act_dim)
            state, _ = self.model.predict(state, action, members, deterministic=True)
            states.append(state)
        rollout = torch.stack(states, dim=2)                                   # (M, K+1, H+1, O)
        return PlanView(candidate_states=rollout[:, :-1].mean(dim=0),
                        candidate_scores=scores[picked], member_states=rollout[:, -1])

    # --- the steps of plan() -----------------------------------------------------------------

    def _shifted_plan(self) -> torch.Tensor:
        """Warm start: previous plan shifted left by one step, its last action repeated."""
        return torch.cat([self._prev_plan[1:], self._prev_plan[-1:]], dim=0)

    def _actor_rollouts(self, obs: torch.Tensor, count: int) -> torch.Tensor | None:
        """``count`` sequences of the deterministic actor rolled through random elites, (K, H, A).

        Each row steps a randomly drawn elite (TS-1), so the rows differ where the members do.
        """
        if count == 0:
            return None
        state = obs.expand(count, self.obs_dim)
        actions = []
        for _ in range(self.cfg.horizon):
            action = self.actor(state)  # type: ignore[misc]
            actions.append(action)
            state, _ = self.model.predict_random_elite(state, action, self.cfg.rollout == 'mean',
                                                       generator=self.generator)
        return torch.stack(actions, dim=1)

    def _policy_prior(self, obs: torch.Tensor) -> torch.Tensor:
        """Offline LOOP's first candidates (beta = 1 prior), (N, H, A).

        N actor rollouts through random elites, then a_t <- a_t + sigma * eps, eps ~ N(0, 1) iid
        per action. ``noise_clip='candidates'`` clips each to [-1, 1] as the reference's
        ``ARC_offline`` does; then E[clip(a + sigma eps)] < a for a near a bound, so even equal
        weights execute an action pulled towards 0. ``'execution'`` (default) keeps them
        unclipped: :meth:`_imagine` and the executed action clip, and the refit averages
        zero-mean noise, so the plan moves off the actor only as far as the scores say.

        ``policy_noise_sampling='mirrored'`` draws the noise in antithetic pairs (a + sigma eps,
        a - sigma eps) on a shared rollout: the sample mean of the noise is then exactly 0, not
        O(sigma / sqrt(N)), and the refit's first action is pi(s) + sum_k (w_k+ - w_k-) sigma
        eps_k, a central difference of the scores.
        """
        count = self.cfg.num_samples
        if self.cfg.policy_noise_sampling == 'mirrored':
            pairs = count // 2
            plans = self._actor_rollouts(obs, count - pairs)   # pairs + (1 if N is odd)
            noise = torch.randn((pairs, *plans.shape[1:]), device=self.device,
                                generator=self.generator)
            paired, offset = plans[:pairs], self.cfg.policy_noise * noise
            candidates = torch.cat([paired + offset, paired - offset, plans[pairs:]])
        else:
            plans = self._actor_rollouts(obs, count)
            noise = torch.randn(plans.shape, device=self.device, generator=self.generator)
            candidates = plans + self.cfg.policy_noise * noise
        if self.cfg.noise_clip == 'candidates':
            candidates.clamp_(ACTION_LOW, ACTION_HIGH)
        return candidates

    def _sample_candidates(self, mean: torch.Tensor, var: torch.Tensor,
                           actor_plans: torch.Tensor | None) -> torch.Tensor:
        """N sequences mean + sqrt(v) z, z ~ N(0,1) truncated at +-T, v bound-aware; (C, H, A)."""
        bound = self.cfg.truncation
        mean = mean.clamp(ACTION_LOW, ACTION_HIGH)   # a refit of unclipped policy-prior candidates
        to_low, to_high = (mean - ACTION_LOW) / bound, (ACTION_HIGH - mean) / bound
        v = torch.minimum(var, torch.minimum(to_low.square(), to_high.square()))
        z = truncated_standard_normal((self.cfg.num_samples, *mean.shape), bound, self.device,
                                      self.generator)
        samples = (mean + v.sqrt() * z).clamp_(ACTION_LOW, ACTION_HIGH)
        if actor_plans is None:
            return samples
        return torch.cat([samples, actor_plans], dim=0)

    def _members(self) -> torch.Tensor:
        if self.cfg.elites_only:
            return self.model.elites
        return torch.arange(self.model.num_members, device=self.device)

    def _imagine(self, obs: torch.Tensor, candidates: torch.Tensor) -> Rollout:
        """Roll every candidate through members x particles for H steps; accumulate the returns
        and, when safe, the horizon costs D = sum_{t<H} w_t c(s_t, a_t, s_{t+1}) (w_t = gamma^t
        with ``cost_discounted``, else 1; transitions out of a terminal state cost nothing)."""
        cfg = self.cfg
        members = self._members()
        deterministic = cfg.rollout == 'mean'
        num_part = 1 if deterministic else cfg.num_particles
        num_members, num_cand = members.numel(), candidates.shape[0]
        rows = num_cand * num_part
        # (C, H, A) -> (H, C*P, A): particles of a candidate are adjacent rows
        actions = candidates.clamp(ACTION_LOW, ACTION_HIGH).repeat_interleave(
            num_part, dim=0).transpose(0, 1)
        state = obs.expand(num_members, rows, self.obs_dim)
        returns = torch.zeros(num_members, rows, device=self.device)
        costs = torch.zeros_like(returns) if self.safe else None
        # a cost that also says how far a state violates (ConstraintCost) gives both at once
        graded_cost = getattr(self.task.cost, 'cost_and_violation', None) if self.safe else None
        excess = torch.zeros_like(returns) if graded_cost is not None else None
        alive = torch.ones_like(returns) if self.task.termination is not None else None
        for t in range(cfg.horizon):
            action = actions[t].expand(num_members, rows, self.act_dim)
            next_state, reward = self.model.predict(state, action, members, deterministic,
                                                    generator=self.generator)
            if reward is None:
                reward = self.task.reward(state, action, next_state)  # type: ignore[misc]
            if alive is not None:
                reward = reward * alive
            returns += self._reward_weights[t] * reward
            if costs is not None:
                if excess is None:
                    step_cost = self.task.cost(state, action, next_state)  # type: ignore[misc]
                else:
                    step_cost, step_excess = graded_cost(  # type: ignore[misc]
                        state, action, next_state)
                    if alive is not None:
                        step_excess = step_excess * alive
                    excess += self._cost_weights[t] * step_excess
                if alive is not None:
                    step_cost = step_cost * alive
                costs += self._cost_weights[t] * step_cost
            if cfg.value == 'q' and cfg.scoring == 'reference' and t == cfg.horizon - 1:
                terminal_value = self.critic(state, action)  # type: ignore[misc]
            if alive is not None:
                alive = alive * (~self.task.terminated(next_state)).float()
            state = next_state
        if cfg.value == 'q':
            if cfg.scoring == 'paper':
                terminal_value = self.critic(state, self.actor(state))  # type: ignore[misc]
            if alive is not None:
                terminal_value = terminal_value * alive
            returns += self._value_weight * terminal_value
        shape = (num_members, num_cand, num_part)
        if costs is None:
            return Rollout(returns.view(shape), None, None)
        graded = costs if excess is None else costs + excess
        return Rollout(returns.view(shape), costs.view(shape), graded.view(shape))

    def _score(self, rollout: Rollout
               ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Candidate scores (C,): mean over members and particles, minus beta * member std;
        when safe, also the worst case over members and particles of the horizon cost and of
        the graded cost, (C,) each (None otherwise).

        A candidate whose imagined return is not finite anywhere (a model predicting NaN or inf)
        scores -inf and its worst costs are +inf: it gets zero weight and is never feasible.
        """
        per_member = rollout.returns.mean(dim=2)                            # (M, C)
        scores = per_member.mean(dim=0)
        if self.cfg.pessimism > 0.0 and per_member.shape[0] > 1:
            scores = scores - self.cfg.pessimism * per_member.std(dim=0)
        scores = torch.where(torch.isfinite(scores), scores, float('-inf'))
        if rollout.costs is None:
            return scores, None, None
        worst, worst_graded = (
            torch.where(torch.isfinite(w) & torch.isfinite(scores), w, float('inf'))
            for w in (rollout.costs.amax(dim=(0, 2)), rollout.graded_costs.amax(dim=(0, 2))))
        return scores, worst, worst_graded

    def _weights(self, scores: torch.Tensor, worst_costs: torch.Tensor | None,
                 worst_graded: torch.Tensor | None) -> torch.Tensor:
        """Normalised candidate weights (C,) of the refit.

        Without a constraint: :meth:`_elite_weights` of the finite scores. Safe LOOP: with at
        least ``min_feasible`` candidates whose worst cost is <= d0, the same over those
        feasible ones only; with fewer, towards low cost: :meth:`_elite_weights` of -worst
        graded cost over every finite candidate. With no finite score at all the weights are
        uniform (finite, so the refit and the sampling stay defined; :meth:`plan` then falls
        back instead of using the plan).
        """
        cfg = self.cfg
        if worst_costs is None:
            weights = self._elite_weights(scores, torch.isfinite(scores))
        else:
            feasible = worst_costs <= cfg.cost_limit
            towards_reward = self._elite_weights(scores, feasible)
            assert worst_graded is not None   # _score gives both or neither
            towards_safety = self._elite_weights(-worst_graded, torch.isfinite(worst_graded))
            # chosen on the device: no host synchronisation inside the iteration loop
            weights = torch.where(feasible.sum() < cfg.min_feasible, towards_safety,
                                  towards_reward)
        return torch.where(torch.isfinite(weights), weights, 1.0 / weights.numel())

    def _elite_weights(self, key: torch.Tensor, eligible: torch.Tensor) -> torch.Tensor:
        """Weights (C,) over the ``eligible`` candidates ranked by ``key``; 0 elsewhere.

        ARC: softmax(kappa * key) over the eligible ones (eq. 8). CEM: 1/k on each of the k
        eligible candidates of highest key, k = min(num_cem_elites, number eligible): an
        ineligible candidate is never an elite, even when fewer than ``num_cem_elites`` are
        eligible. NaN when none is eligible (:meth:`_weights` makes that uniform).
        """
        masked = key.masked_fill(~eligible, float('-inf'))
        if self.cfg.optimizer == 'cem':
            k = min(self.cfg.num_cem_elites, key.numel())
            top = masked.topk(k).indices
            elites = torch.zeros_like(key).index_fill_(0, top, 1.0) * eligible
            return elites / elites.sum()
        return torch.softmax(self.cfg.temperature * masked, dim=0)

    def _safe_plan(self, obs: torch.Tensor, candidates: torch.Tensor, scores: torch.Tensor,
                   worst_costs: torch.Tensor, worst_graded: torch.Tensor, mean: torch.Tensor,
                   sample: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The plan safe LOOP executes, (H, A), its worst-case cost and its :data:`EXECUTED` code.

        The preferred plan is the weighted mean, whose worst cost is re-imagined here (it was
        never a candidate), or with ``sample`` a candidate drawn by its reward weight among the
        feasible ones (the mean when none is feasible). It is executed when its worst cost is
        <= d0. Otherwise, when some candidate is feasible, the feasible candidate of highest
        score is; when none is, the plan of least worst graded cost (the worst cost where the
        task's cost says only c_t) among the preferred one and the candidates. So a plan
        predicted to violate d0 is never executed while a feasible one is known. Everything
        stays on the device (no host synchronisation).
        """
        cost_limit = self.cfg.cost_limit
        feasible = worst_costs <= cost_limit
        any_feasible = feasible.any()
        code = self._executed_codes   # indices into EXECUTED
        _, mean_worst_cost, mean_worst_graded = self._score(self._imagine(obs, mean.unsqueeze(0)))
        preferred, preferred_cost, preferred_code = mean, mean_worst_cost[0], code[0]
        preferred_graded = mean_worst_graded[0]
        if sample:
            draw = self._elite_weights(scores, feasible)
            draw = torch.where(any_feasible, draw, 1.0 / draw.numel())   # defined when none is
            choice = torch.multinomial(draw, 1, generator=self.generator)
            preferred = torch.where(any_feasible, candidates.index_select(0, choice)[0], mean)
            preferred_cost = torch.where(any_feasible, worst_costs.index_select(0, choice)[0],
                                         preferred_cost)
            preferred_graded = torch.where(any_feasible,
                                           worst_graded.index_select(0, choice)[0],
                                           preferred_graded)
            preferred_code = torch.where(any_feasible, code[1], code[0])
        best_feasible = scores.masked_fill(~feasible, float('-inf')).argmax()
        least_cost = worst_graded.argmin()
        alternative = torch.where(any_feasible, best_feasible, least_cost).view(1)
        alternative_cost = worst_costs.index_select(0, alternative)[0]
        alternative_graded = worst_graded.index_select(0, alternative)[0]
        keep = ((preferred_cost <= cost_limit)
                | (~any_feasible & (preferred_graded <= alternative_graded)))
        plan = torch.where(keep, preferred, candidates.index_select(0, alternative)[0])
        plan_cost = torch.where(keep, preferred_cost, alternative_cost)
        executed = torch.where(keep, preferred_code, torch.where(any_feasible, code[2], code[3]))
        return plan, plan_cost, executed

    @staticmethod
    def _refit(candidates: torch.Tensor, weights: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Weighted mean and variance of the candidates, (H, A) each."""
        w = weights.view(-1, 1, 1)
        mean = (w * candidates).sum(dim=0)
        var = (w * (candidates - mean).square()).sum(dim=0)
        return mean, var

    def _info(self, scores: torch.Tensor, weights: torch.Tensor, var: torch.Tensor,
              worst_costs: torch.Tensor | None, action: torch.Tensor,
              plan_worst_cost: torch.Tensor | None, executed: torch.Tensor,
              iterations: int) -> PlanInfo:
        """One host transfer of the few scalars the node publishes (and the fallback needs)."""
        finite = torch.isfinite(scores)
        zero = scores.new_zeros(())
        values = torch.stack([
            scores.max(), (weights * scores.nan_to_num(neginf=0.0)).sum(),
            var.sqrt().mean(),
            finite.sum().float(),
            plan_worst_cost if plan_worst_cost is not None else zero,
            ((worst_costs <= self.cfg.cost_limit).sum().float() if worst_costs is not None
             else scores.new_tensor(float(scores.numel()))),
            torch.isfinite(action).all().float(),
            executed.float(),
        ]).tolist()
        return PlanInfo(iterations=iterations, elite_return=values[0],
                        mean_return=values[1], action_std=values[2],
                        predicted_worst_cost=values[4], num_feasible=int(values[5]),
                        num_finite=int(values[3]) if values[6] else 0,
                        executed=EXECUTED[int(values[7])])
