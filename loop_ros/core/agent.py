"""LOOP agents: the learning side and the acting side, shared by the CLI and the ROS nodes.

* :class:`LoopLearner` owns the replay buffer, SAC and the ensemble and runs the training
  schedule of the reference (spec sec. 7): retrain the model every ``model_train_every`` steps
  (and at ``start_steps``, when planning starts, if no retrain has happened yet: the reference
  planned on an untrained model in between),
  and SAC bursts of ``sac_update_every * updates_per_step`` gradient steps once
  ``start_steps`` transitions are in. Work is handed out in bounded slices (``train(budget)``) so
  a ROS node stays responsive.
* :class:`LoopPolicy` acts: uniform random before ``start_steps``, then ARC (or the SAC actor
  for ``algo='sac'``). It holds its own actor/critic/ensemble so a planner process can load
  weights from the learner's checkpoints.

``algo`` presets turn one config into each baseline (``apply_algorithm``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from loop_ros.core.arc import ArcPlanner, PlanInfo
from loop_ros.core.config import LoopConfig, replace, to_dict
from loop_ros.core.ensemble import ProbabilisticEnsemble
from loop_ros.core.learned_cost import LearnedCost
from loop_ros.core.replay import ReplayBuffer
from loop_ros.core.sac import SacAgent
from loop_ros.core.tasks import Task

PETS_RESTRICTED: dict[str, Any] = {
    'arc.value': 'none', 'arc.num_actor_trajs': 0, 'arc.optimizer': 'cem', 'arc.explore': 'mean'}
"""PETS-restricted planning: CEM refit, no terminal value, no actor rollouts, and the refit mean
executed in training too (PETS explores through its model's sampled particles, not by drawing a
candidate)."""

ALGORITHMS: dict[str, dict[str, Any]] = {
    'loop': {},
    'sac': {},
    'pets': dict(PETS_RESTRICTED),
    'loop-cem': {'arc.optimizer': 'cem'},
    'loop-sarsa': {'sac.backup': 'sarsa'},
    'loop-offline': {'arc.prior': 'policy'},
    'safe-loop': {'arc.optimizer': 'arc', 'arc.value': 'q', 'arc.explore': 'mean'},
    'safe-pets': dict(PETS_RESTRICTED),
}
"""What each ``--algo`` changes in the config: one planner, different settings (forced).

``safe-loop`` and ``safe-pets`` are LOOP (ARC + critic) and PETS-restricted under the cost
constraint of eq. 10; both execute the weighted mean in training as well, as the authors'
safe ARC does, and turn the constraint on with d0 = :data:`SAFE_COST_LIMIT` unless
``arc.cost_limit`` is set (>= 0): d0 depends on the task's cost, so it is not forced."""

SAFE_ALGORITHMS = ('safe-loop', 'safe-pets')
"""Presets that plan under the cost constraint (``arc.cost_limit >= 0``)."""
SAFE_COST_LIMIT = 0.2
"""d0 of the authors' safe ARC (``safety_threshold``); with a 0/1 cost per step, any d0 below
gamma^(H-1) means "no predicted violation within the horizon"."""
PLANNER_ONLY_ALGORITHMS = ('pets', 'safe-pets')
"""Presets without SAC (no critic, no actor)."""

OFFLINE_PRESETS: dict[str, Any] = {
    'arc.horizon': 5, 'arc.num_samples': 100, 'arc.num_iterations': 1, 'arc.temperature': 0.3,
    'arc.pessimism': 1.0, 'arc.policy_noise': 0.3, 'arc.rollout': 'mean',
}
"""Offline LOOP's planner defaults (paper sec. 4.3; the reference's ``ARC_offline``: H = 5,
N = 100 policy rollouts, one iteration, kappa = 0.3, beta_pess = 1). Two departures:

* sigma = 0.3: the reference's 0.01 leaves every candidate within 1% of the base policy's
  action, so LOOP would execute the base policy; 0.3 was the best of a small grid on a tuning
  seed and tuning resets that the reported results do not use (docs/offline_results.md), and
  with ``arc.noise_clip='execution'`` (the ArcConfig default) that noise no longer drags
  saturated actions towards 0;
* ``rollout='mean'``: each member rolls out its predicted mean (one particle instead of 4).
  The pessimism reads the spread between members (epistemic), which particles of one member do
  not change, and the plan costs a quarter (about 15 ms instead of 40 ms on one CPU core).

They sit under the env's presets (``Task.hyperparameters``, then its offline ones,
``Task.offline_hyperparameters``: Hopper plans with sigma = 0.1, HalfCheetah with kappa = 0.1,
each chosen on a tuning seed), config files and options (``loop-ros train-offline``,
``eval-offline``), unlike ``ALGORITHMS``, which is forced."""


def apply_algorithm(cfg: LoopConfig) -> LoopConfig:
    """The config with the ``train.algo`` preset applied (LOOP, SAC, PETS, LOOP-CEM/-SARSA,
    safe LOOP/PETS: d0 = :data:`SAFE_COST_LIMIT` when ``arc.cost_limit`` is negative)."""
    cfg = replace(cfg, **ALGORITHMS[cfg.train.algo])
    if cfg.train.algo in SAFE_ALGORITHMS and cfg.arc.cost_limit < 0.0:
        cfg = replace(cfg, **{'arc.cost_limit': SAFE_COST_LIMIT})
    return cfg


def check_algorithm_constraints(cfg: LoopConfig) -> None:
    """ValueError when ``cfg`` switches off what its ``train.algo`` stands for (a safe preset
    with a negative ``arc.cost_limit``, which would plan without the constraint)."""
    if cfg.train.algo in SAFE_ALGORITHMS and cfg.arc.cost_limit < 0.0:
        raise ValueError(f"arc.cost_limit must stay >= 0 under train.algo '{cfg.train.algo}' "
                         '(it is d0 of the safety constraint)')


def uses_planner(cfg: LoopConfig) -> bool:
    return cfg.train.algo != 'sac'


def uses_sac(cfg: LoopConfig) -> bool:
    return cfg.train.algo not in PLANNER_ONLY_ALGORITHMS


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when available, else CPU."""
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    device = torch.device(name)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'device {name!r} requested but CUDA is not available')
    return device


def seed_everything(seed: int) -> None:
    """Seed torch (all devices) and numpy's global generator."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def start_steps_of(cfg: LoopConfig, task: Task) -> int:
    return task.start_steps if cfg.train.start_steps < 0 else cfg.train.start_steps


def model_signature(obs_dim: int, act_dim: int, sac: SacAgent | None,
                    ensemble: ProbabilisticEnsemble | None,
                    cost_model: LearnedCost | None = None) -> str:
    """Digest of what weights must fit: sizes and every parameter's name and shape.

    ``sha256`` over ``obs_dim``, ``act_dim`` and the sorted ``(name, shape)`` of the actor,
    critic and ensemble state dicts; 16 hex digits. Two models accept each other's weights
    exactly when their signatures agree (a planner checks weights received over a topic
    against its own model before using them).
    """
    parts = [f'obs={obs_dim}', f'act={act_dim}']
    modules = [('actor', sac.actor if sac else None),
               ('critic', sac.critic if sac else None), ('ensemble', ensemble)]
    if cost_model is not None:   # signatures of models without one stay as they were
        modules.append(('cost_model', cost_model))
    for label, module in modules:
        if module is None:
            parts.append(f'{label}=none')
            continue
        parts += [f'{label}.{k}={tuple(v.shape)}' for k, v in sorted(module.state_dict().items())]
    return hashlib.sha256('\n'.join(parts).encode()).hexdigest()[:16]


def load_weights(state: dict[str, Any], obs_dim: int, act_dim: int, sac: SacAgent | None,
                 ensemble: ProbabilisticEnsemble | None, who: str,
                 cost_model: LearnedCost | None = None) -> None:
    """Actor, critic and ensemble weights of a ``policy_state`` dict into ``sac``/``ensemble``.

    Raises ValueError when the checkpoint's obs/act dims differ from this ``who``'s.
    """
    if state['obs_dim'] != obs_dim or state['act_dim'] != act_dim:
        raise ValueError(f"weights are for obs/act dims {state['obs_dim']}/{state['act_dim']}, "
                         f'this {who} has {obs_dim}/{act_dim}')
    if sac is not None and state.get('actor') is not None:
        sac.actor.load_state_dict(state['actor'])
        sac.critic.load_state_dict(state['critic'])
    if ensemble is not None and state.get('ensemble') is not None:
        ensemble.load_state_dict(state['ensemble'])
    if cost_model is not None and state.get('cost_model') is not None:
        cost_model.load_state_dict(state['cost_model'])


def make_cost_model(cfg: LoopConfig, obs_dim: int, device: torch.device
                    ) -> LearnedCost | None:
    """The learned cost head when ``ensemble.learn_cost`` is on (hidden layers as wide as the
    ensemble's, two of them)."""
    if not cfg.ensemble.learn_cost or not uses_planner(cfg):
        return None
    width = cfg.ensemble.hidden_size
    return LearnedCost(obs_dim, (width, width), device)


class LoopLearner:
    """Replay buffer + SAC + probabilistic ensemble, trained on the reference schedule."""

    def __init__(self, cfg: LoopConfig, obs_dim: int, act_dim: int, task: Task,
                 device: torch.device | str = 'cpu') -> None:
        self.cfg = apply_algorithm(cfg)
        self.obs_dim, self.act_dim, self.task = obs_dim, act_dim, task
        self.device = torch.device(device)
        self.start_steps = start_steps_of(self.cfg, task)
        self.buffer = ReplayBuffer(obs_dim, act_dim, self.cfg.train.buffer_capacity, self.device)
        self.sac = SacAgent(obs_dim, act_dim, self.cfg.sac, self.device) if uses_sac(self.cfg) \
            else None
        self.ensemble = ProbabilisticEnsemble(obs_dim, act_dim, self.cfg.ensemble, self.device) \
            if uses_planner(self.cfg) else None
        self.cost_model = make_cost_model(self.cfg, obs_dim, self.device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(self.cfg.train.seed)
        self.env_steps = 0
        self.pending_sac_updates = 0
        self.model_due = False
        self.model_version = 0
        self.last_model_metrics: dict[str, float] = {}

    @property
    def model_signature(self) -> str:
        """:func:`model_signature` of this learner's networks."""
        return model_signature(self.obs_dim, self.act_dim, self.sac, self.ensemble,
                               self.cost_model)

    def add(self, obs: np.ndarray, action: np.ndarray, reward: float, cost: float,
            next_obs: np.ndarray, terminated: bool, truncated: bool, stream: int = 0) -> None:
        """Store one transition and advance the schedule (spec sec. 7 steps 2-4)."""
        self.buffer.add(obs, action, reward, cost, next_obs, terminated, truncated, stream=stream)
        self.env_steps += 1
        train = self.cfg.train
        if self.ensemble is not None and (
                self.env_steps % train.model_train_every == 0
                or (self.env_steps == self.start_steps and self.model_version == 0)):
            self.model_due = True   # also when planning starts before the first retrain
        if (self.sac is not None and self.env_steps >= self.start_steps
                and self.env_steps % train.sac_update_every == 0):
            self.pending_sac_updates += int(round(train.sac_update_every * train.updates_per_step))

    @property
    def has_work(self) -> bool:
        return self.model_due or self.pending_sac_updates > 0

    def train(self, max_sac_updates: int | None = None,
              max_model_epochs: int | None = None) -> dict[str, float]:
        """Do the due work: a model retrain, then up to ``max_sac_updates`` SAC steps."""
        metrics: dict[str, float] = {}
        if self.model_due and len(self.buffer) > 1:
            metrics.update(self.train_model(max_model_epochs))
        budget = self.pending_sac_updates if max_sac_updates is None else min(
            max_sac_updates, self.pending_sac_updates)
        for _ in range(budget):
            metrics.update(self.sac.update(  # type: ignore[union-attr]
                self.buffer.sample(self.cfg.sac.batch_size, generator=self.generator)))
        self.pending_sac_updates -= budget
        return metrics

    def train_model(self, max_epochs: int | None = None) -> dict[str, float]:
        """Retrain the ensemble (warm start) on the whole buffer."""
        data = self.buffer.all()
        metrics = self.ensemble.fit(data.obs, data.action, data.reward,  # type: ignore[union-attr]
                                    data.next_obs, generator=self.generator,
                                    max_epochs=max_epochs)
        if self.cost_model is not None:
            metrics.update(self.cost_model.fit(data.next_obs, data.cost,
                                               generator=self.generator))
        self.model_due = False
        self.model_version += 1
        self.last_model_metrics = metrics
        return metrics

    def policy_state(self) -> dict[str, Any]:
        """Everything a :class:`LoopPolicy` needs (weights only, CPU tensors)."""
        cpu = lambda sd: {k: v.detach().cpu() for k, v in sd.items()}  # noqa: E731
        return {
            'config': to_dict(self.cfg), 'obs_dim': self.obs_dim, 'act_dim': self.act_dim,
            'env_steps': self.env_steps, 'start_steps': self.start_steps,
            'actor': cpu(self.sac.actor.state_dict()) if self.sac else None,
            'critic': cpu(self.sac.critic.state_dict()) if self.sac else None,
            'ensemble': cpu(self.ensemble.state_dict()) if self.ensemble else None,
            'cost_model': cpu(self.cost_model.state_dict()) if self.cost_model else None,
            'holdout_mse': float(self.last_model_metrics.get('model/holdout_mse', math.nan)),
        }

    def load_policy_weights(self, state: dict[str, Any]) -> None:
        """Start from the weights of a policy checkpoint (``policy_state`` layout, e.g. the
        ``final.pt`` of ``loop-ros train-offline``): actor, critic (and its target), ensemble.

        Optimisers, buffer and counters stay fresh: this seeds online learning, it does not
        resume it (``load_state_dict`` does).
        """
        load_weights(state, self.obs_dim, self.act_dim, self.sac, self.ensemble, 'learner',
                     self.cost_model)
        if self.sac is not None and state.get('critic') is not None:
            self.sac.critic_target.load_state_dict(state['critic'])

    def state_dict(self) -> dict[str, Any]:
        """Full learner state for resuming: policy weights, optimisers, buffer, counters."""
        state = self.policy_state()
        state.update({
            'sac_full': self.sac.state_dict() if self.sac else None,
            'sac_optim': self.sac.optim_state_dict() if self.sac else None,
            'buffer': self.buffer.state_dict(),
            'pending_sac_updates': self.pending_sac_updates,
            'model_version': self.model_version,
        })
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state['obs_dim'] != self.obs_dim or state['act_dim'] != self.act_dim:
            raise ValueError(f"checkpoint is for obs/act dims {state['obs_dim']}/"
                             f"{state['act_dim']}, this learner has {self.obs_dim}/{self.act_dim}")
        if self.sac is not None and state.get('sac_full') is not None:
            self.sac.load_state_dict(state['sac_full'])
            self.sac.load_optim_state_dict(state['sac_optim'])
        if self.ensemble is not None and state.get('ensemble') is not None:
            self.ensemble.load_state_dict(state['ensemble'])
        if self.cost_model is not None and state.get('cost_model') is not None:
            self.cost_model.load_state_dict(state['cost_model'])
        self.buffer.load_state_dict(state['buffer'])
        self.env_steps = int(state['env_steps'])
        self.pending_sac_updates = int(state['pending_sac_updates'])
        self.model_version = int(state['model_version'])


@dataclass(frozen=True)
class ActInfo:
    """How an action was chosen."""

    random: bool
    plan: PlanInfo | None = None


class LoopPolicy:
    """Acting side: random exploration, then ARC over the ensemble with the SAC actor/critic."""

    def __init__(self, cfg: LoopConfig, obs_dim: int, act_dim: int, task: Task,
                 device: torch.device | str = 'cpu', sac: SacAgent | None = None,
                 ensemble: ProbabilisticEnsemble | None = None,
                 cost_model: LearnedCost | None = None, seed: int = 0) -> None:
        self.cfg = apply_algorithm(cfg)
        self.obs_dim, self.act_dim, self.task = obs_dim, act_dim, task
        self.device = torch.device(device)
        self.start_steps = start_steps_of(self.cfg, task)
        if uses_sac(self.cfg):
            self.sac = sac or SacAgent(obs_dim, act_dim, self.cfg.sac, self.device)
        else:
            self.sac = None
        self.ensemble = None
        self.planner: ArcPlanner | None = None
        self.cost_model = cost_model or make_cost_model(self.cfg, obs_dim, self.device)
        if self.cost_model is not None:   # the learned cost replaces the task's (if any)
            task = dataclasses.replace(task, cost=self.cost_model)
        if uses_planner(self.cfg):
            self.ensemble = ensemble or ProbabilisticEnsemble(obs_dim, act_dim, self.cfg.ensemble,
                                                              self.device)
            self.planner = ArcPlanner(
                self.cfg.arc, obs_dim, act_dim, self.ensemble,
                actor=self.sac.actor.mean_action if self.sac else None,
                critic=self.sac.critic.min_q if self.sac else None,
                task=task, device=self.device, seed=seed)
        self.rng = np.random.default_rng(seed)
        self.version = 0

    @property
    def model_signature(self) -> str:
        """:func:`model_signature` of this policy's networks."""
        return model_signature(self.obs_dim, self.act_dim, self.sac, self.ensemble,
                               self.cost_model)

    def reset(self) -> None:
        """Episode start: drop the planner's warm start."""
        if self.planner is not None:
            self.planner.reset()

    def random_action(self) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, self.act_dim).astype(np.float32)

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool = True, env_steps: int | None = None,
            use_planner: bool = True, deadline: float | None = None
            ) -> tuple[np.ndarray, ActInfo]:
        """Action in [-1, 1]^A for ``obs``: random while ``env_steps < start_steps``.

        ``deadline``: a :func:`time.perf_counter` time that bounds the planner's iterations
        (anytime ARC, :meth:`ArcPlanner.plan`); None runs them all.
        """
        if explore and env_steps is not None and env_steps < self.start_steps:
            return self.random_action(), ActInfo(random=True)
        obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.device)
        if self.planner is not None and use_planner:
            action, info = self.planner.plan(obs_t, explore=explore, deadline=deadline)
            return action.cpu().numpy(), ActInfo(random=False, plan=info)
        if self.sac is None:
            raise RuntimeError('this policy has neither a planner nor an actor')
        action = self.sac.act(obs_t.unsqueeze(0), deterministic=not explore)[0]
        return action.cpu().numpy(), ActInfo(random=False)

    @torch.no_grad()
    def actor_action(self, obs: np.ndarray) -> np.ndarray:
        """The actor's deterministic action (the planner's fallback on a missed deadline)."""
        if self.sac is None:
            return np.zeros(self.act_dim, dtype=np.float32)
        obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.device)
        return self.sac.actor.mean_action(obs_t).cpu().numpy()

    def imagined_poses(self, obs: np.ndarray, dt: float) -> np.ndarray | None:
        """(H+1, 3) planar poses (x, y, yaw) in the robot frame along the executed plan.

        Integrates the imagined body twist (``Task.body_twist_indices``); None when the task
        has no planar base or there is no planner.
        """
        if self.planner is None or self.task.body_twist_indices is None:
            return None
        ix, iy, ir = self.task.body_twist_indices
        states = self.planner.imagine_plan(torch.as_tensor(obs)).cpu().numpy()
        poses = np.zeros((len(states), 3))
        for t in range(1, len(states)):
            x, y, yaw = poses[t - 1]
            vx, vy, rate = states[t - 1, ix], states[t - 1, iy], states[t - 1, ir]
            poses[t] = (x + (vx * np.cos(yaw) - vy * np.sin(yaw)) * dt,
                        y + (vx * np.sin(yaw) + vy * np.cos(yaw)) * dt, yaw + rate * dt)
        return poses

    def load_policy_state(self, state: dict[str, Any], version: int | None = None) -> None:
        """Swap in weights from :meth:`LoopLearner.policy_state` (between control ticks)."""
        load_weights(state, self.obs_dim, self.act_dim, self.sac, self.ensemble, 'policy',
                     self.cost_model)
        self.start_steps = int(state.get('start_steps', self.start_steps))
        self.version = version if version is not None else self.version + 1
