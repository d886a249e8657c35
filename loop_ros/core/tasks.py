"""Task registry: what a planner must know about an environment beyond the learned model.

Each task gives batched torch functions evaluated on *model-predicted* observations:

* ``termination(next_obs) -> bool (...)``: episode ends in ``next_obs`` (spec sec. 6.1);
* ``reward(obs, action, next_obs) -> (...)``: optional analytic reward (the learned one is the
  default for LOOP, as in the paper);
* ``cost(obs, action, next_obs) -> (...)``: optional per-step constraint cost for safe LOOP.

A robot without a gymnasium env registers a task that also gives ``obs_dim``, ``act_dim`` and
``dt`` (``docs/integration.md``); the planner and learner nodes then need no env at all.

All take tensors with any leading batch shape, ``obs (..., obs_dim)``, ``action (..., act_dim)``,
and never leave the tensors' device. Environments registered by ``loop_ros.sim`` add their own
tasks on import. Unknown ids fall back to :data:`NEVER_TERMINATES` with a warning.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

TerminationFn = Callable[[torch.Tensor], torch.Tensor]
StepFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Task:
    """Planner-side knowledge of one environment id."""

    termination: TerminationFn | None = None
    reward: StepFn | None = None
    cost: StepFn | None = None
    start_steps: int = 1000
    """Uniform-random steps before the agent acts (the reference's per-env exploration)."""
    obs_dim: int | None = None
    """Observation size, for robots without a gymnasium env (else read from the env)."""
    act_dim: int | None = None
    """Action size (normalised to [-1, 1]), for robots without a gymnasium env."""
    dt: float | None = None
    """Control period in seconds, for robots without a gymnasium env."""
    body_twist_indices: tuple[int, int, int] | None = None
    """Indices of (v_x, v_y, yaw_rate) in the observation (body frame), when the robot is a
    planar base: lets the planner draw its imagined trajectory as a path."""
    hyperparameters: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    """Per-env values of config fields by dotted name (``{'arc.horizon': 10}``), the paper's
    per-env tuning: they replace the dataclass defaults and are themselves replaced by a config
    file, a ROS parameter override or a CLI option (``loop_ros.core.config.with_presets``)."""
    offline_hyperparameters: dict[str, Any] = field(default_factory=dict, hash=False,
                                                    compare=False)
    """Per-env values for offline LOOP (``loop-ros train-offline``), layered over
    ``loop_ros.core.agent.OFFLINE_PRESETS`` and ``hyperparameters``, under a config file and
    options; chosen on a tuning seed and tuning resets (docs/offline_results.md)."""
    reference_returns: tuple[float, float] | None = None
    """(random, expert) episode returns that normalise scores as D4RL does:
    ``100 * (R - random) / (expert - random)``; None when the env has no reference."""
    medium_return: float | None = None
    """Return at which ``loop-ros dataset`` stops training SAC and keeps its policy (the
    "medium" level of a D4RL-style dataset: about a third of the expert return)."""

    def normalized_score(self, episode_return: float) -> float:
        """D4RL-style normalised score (NaN without reference returns)."""
        if self.reference_returns is None:
            return float('nan')
        low, high = self.reference_returns
        return 100.0 * (episode_return - low) / (high - low)

    def terminated(self, next_obs: torch.Tensor) -> torch.Tensor:
        """Bool (...) mask; all False when the task never terminates."""
        if self.termination is None:
            return torch.zeros(next_obs.shape[:-1], dtype=torch.bool, device=next_obs.device)
        return self.termination(next_obs)


NEVER_TERMINATES = Task()
_REGISTRY: dict[str, Task] = {}


def register_task(env_id: str, task: Task) -> None:
    """Register (or replace) the planner functions of ``env_id``."""
    _REGISTRY[env_id] = task


def registered_tasks() -> list[str]:
    """Sorted ids with a registered task."""
    return sorted(_REGISTRY)


def get_task(env_id: str, warn: bool = True) -> Task:
    """The task of ``env_id``; an unknown id never terminates (and says so once)."""
    task = _REGISTRY.get(env_id)
    if task is None:
        if warn:
            warnings.warn(f'no task registered for {env_id!r}: the planner assumes it never '
                          'terminates and learns its reward', stacklevel=2)
        return NEVER_TERMINATES
    return task


def _finite(obs: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(obs).all(dim=-1)


def _inverted_pendulum(next_obs: torch.Tensor) -> torch.Tensor:
    # gymnasium InvertedPendulum-v5: terminated = not finite or |angle| > 0.2
    return ~_finite(next_obs) | (next_obs[..., 1].abs() > 0.2)


def _hopper(next_obs: torch.Tensor) -> torch.Tensor:
    # Hopper-v5 healthy: all(|obs[1:]| < 100), 0.7 < z, |angle| < 0.2 (z = obs[0], angle = obs[1])
    z, angle = next_obs[..., 0], next_obs[..., 1]
    healthy = ((next_obs[..., 1:].abs() < 100.0).all(dim=-1) & (z > 0.7) & (angle.abs() < 0.2)
               & _finite(next_obs))
    return ~healthy


def _walker2d(next_obs: torch.Tensor) -> torch.Tensor:
    # Walker2d-v5 healthy: 0.8 < z < 2.0 and -1 < angle < 1
    z, angle = next_obs[..., 0], next_obs[..., 1]
    healthy = (z > 0.8) & (z < 2.0) & (angle > -1.0) & (angle < 1.0) & _finite(next_obs)
    return ~healthy


def _ant(next_obs: torch.Tensor) -> torch.Tensor:
    # Ant-v5 (exclude_current_positions_from_observation): z = obs[0]; healthy 0.2 <= z <= 1.0
    z = next_obs[..., 0]
    return ~((z >= 0.2) & (z <= 1.0) & _finite(next_obs))


def _humanoid(next_obs: torch.Tensor) -> torch.Tensor:
    # Humanoid-v5: healthy while 1.0 < z < 2.0 (z = obs[0])
    z = next_obs[..., 0]
    return ~((z > 1.0) & (z < 2.0) & _finite(next_obs))


INVERTED_PENDULUM_PRESETS = {'arc.horizon': 10, 'arc.rollout': 'mean'}
"""The pole's +1-per-step reward makes every 3-step candidate score the same but for the critic's
value, which is too weak to rank candidates in the first thousands of steps (κ=1 weights come out
nearly uniform); a 10-step lookahead sees the pole fall and the cart reach its rail inside the
model. The simulator is deterministic and the learned σ is fit error, so ten sampled steps would
rank candidates by luck: the plan rolls out the members' means (one particle, a quarter of the
cost), which reaches 1000 for 3 seeds of 3 in 5000 steps on a CPU (docs/benchmarks.md)."""


D4RL_REFERENCE_RETURNS = {
    'Hopper': (-20.272305, 3234.3),
    'HalfCheetah': (-280.178953, 12135.0),
    'Walker2d': (1.629008, 4592.3),
}
"""D4RL's normalisation constants (random policy, expert SAC) of the MuJoCo locomotion tasks
(``d4rl/infos.py``, REF_MIN_SCORE / REF_MAX_SCORE): scores here are comparable in scale to the
paper's Table 1, although the v5 envs and our datasets differ from D4RL's v2 ones."""


OFFLINE_HOPPER_PRESETS = {'arc.policy_noise': 0.1}
"""Offline LOOP on Hopper: sigma = 0.1 instead of 0.3. The best of sigma in {0.1, 0.3} x kappa
in {0.1, 0.3, 1} on training seed 0 of both Hopper datasets, 5 episodes on tuning resets
1 600 000 000 ...: LOOP / CRR 1.110 averaged over the two (the default's 1.086);
``bench/offline_tune.py``, docs/offline_results.md."""
OFFLINE_HALFCHEETAH_PRESETS = {'arc.temperature': 0.1}
"""Offline LOOP on HalfCheetah: kappa = 0.1 instead of 0.3; the same grid and protocol as
Hopper's: LOOP / CRR 1.146 (the default's 0.911)."""
OFFLINE_WALKER2D_PRESETS = {'arc.temperature': 0.1}
"""Offline LOOP on Walker2d: kappa = 0.1 instead of 0.3; the same grid and protocol as
Hopper's: LOOP / CRR 1.174 (the default's 1.019)."""


def _medium(name: str) -> float:
    """A third of the expert return: the level a "medium" dataset policy is trained to."""
    low, high = D4RL_REFERENCE_RETURNS[name]
    return round(low + (high - low) / 3.0, 1)


def _register_builtin() -> None:
    for version in ('v4', 'v5'):
        register_task(f'InvertedPendulum-{version}', Task(
            _inverted_pendulum, start_steps=200, hyperparameters=INVERTED_PENDULUM_PRESETS))
        register_task(f'Hopper-{version}', Task(
            _hopper, start_steps=1000, reference_returns=D4RL_REFERENCE_RETURNS['Hopper'],
            medium_return=_medium('Hopper'), offline_hyperparameters=OFFLINE_HOPPER_PRESETS))
        register_task(f'Walker2d-{version}', Task(
            _walker2d, start_steps=1000, reference_returns=D4RL_REFERENCE_RETURNS['Walker2d'],
            medium_return=_medium('Walker2d'), offline_hyperparameters=OFFLINE_WALKER2D_PRESETS))
        register_task(f'Ant-{version}', Task(_ant, start_steps=1000))
        register_task(f'Humanoid-{version}', Task(_humanoid, start_steps=1000))
        register_task(f'HalfCheetah-{version}', Task(
            None, start_steps=1000, reference_returns=D4RL_REFERENCE_RETURNS['HalfCheetah'],
            medium_return=_medium('HalfCheetah'),
            offline_hyperparameters=OFFLINE_HALFCHEETAH_PRESETS))
        register_task(f'Swimmer-{version}', Task(None, start_steps=1000))
    register_task('Pendulum-v1', Task(None, start_steps=200))


_register_builtin()
