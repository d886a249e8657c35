"""D4RL-style datasets made by the project (``loop-ros dataset``), written as Transition bags.

D4RL's "medium" datasets come from a SAC policy stopped early at about a third of an expert's
return; "medium-replay" is SAC's replay buffer up to that point (Fu et al. 2020). Nothing can be
downloaded here, so :func:`make_dataset` does the same on any gymnasium env:

1. train SAC (``loop_ros.core.agent.LoopLearner`` with ``algo='sac'``) and evaluate its
   deterministic actor every ``eval_every`` steps on evaluation seeds no training uses;
2. stop when the mean evaluation return reaches the target (``DatasetConfig.target_return``, by
   default the task's ``medium_return``) or after ``max_steps``;
3. ``medium``: ``size`` transitions of the kept policy's rollouts (sampled actions by default);
   ``medium-replay``: every transition SAC collected, random warm-up steps included.

Bags carry in their metadata (``custom_data``) the env, kind, seed, target and reached return,
SAC steps and the dataset's episode returns, so an offline result can name its data.
"""
from __future__ import annotations

import datetime
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from loop_ros.core.agent import LoopLearner, LoopPolicy, resolve_device, seed_everything
from loop_ros.core.config import DatasetConfig, LoopConfig, replace
from loop_ros.envs import make_env

KINDS = ('medium', 'medium-replay')
EVAL_SEED_OFFSET = 1_000_000
"""Evaluation resets during dataset training use seeds ``seed + EVAL_SEED_OFFSET + i``."""


@dataclass
class EpisodeLog:
    """Transitions of whole episodes as numpy lists (what a dataset is made of)."""

    obs: list[np.ndarray] = field(default_factory=list)
    action: list[np.ndarray] = field(default_factory=list)
    reward: list[float] = field(default_factory=list)
    next_obs: list[np.ndarray] = field(default_factory=list)
    terminated: list[bool] = field(default_factory=list)
    truncated: list[bool] = field(default_factory=list)
    episode: list[int] = field(default_factory=list)
    step: list[int] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)

    def add(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray,
            terminated: bool, truncated: bool, episode: int, step: int) -> None:
        self.obs.append(np.asarray(obs, np.float32))
        self.action.append(np.asarray(action, np.float32))
        self.reward.append(float(reward))
        self.next_obs.append(np.asarray(next_obs, np.float32))
        self.terminated.append(bool(terminated))
        self.truncated.append(bool(truncated))
        self.episode.append(int(episode))
        self.step.append(int(step))

    def __len__(self) -> int:
        return len(self.reward)

    def arrays(self) -> dict[str, np.ndarray]:
        """Column arrays; the last episode, if unfinished, is marked truncated."""
        truncated = np.array(self.truncated, bool)
        terminated = np.array(self.terminated, bool)
        if len(truncated) and not (truncated[-1] or terminated[-1]):
            truncated[-1] = True
        n = len(self)
        return {'obs': np.stack(self.obs), 'action': np.stack(self.action),
                'reward': np.array(self.reward, np.float32), 'cost': np.zeros(n, np.float32),
                'next_obs': np.stack(self.next_obs), 'terminated': terminated,
                'truncated': truncated, 'episode': np.array(self.episode, np.int64),
                'step': np.array(self.step, np.int64)}


@dataclass
class Dataset:
    """The columns of a dataset and the metadata its bag carries."""

    columns: dict[str, np.ndarray]
    metadata: dict[str, Any]

    def __len__(self) -> int:
        return len(self.columns['reward'])


def _sac_config(cfg: LoopConfig, dcfg: DatasetConfig, seed: int) -> LoopConfig:
    return replace(cfg, **{'train.algo': 'sac', 'train.seed': seed,
                           'train.buffer_capacity': max(dcfg.max_steps, 1)})


def train_to_target(env_id: str, cfg: LoopConfig, dcfg: DatasetConfig, seed: int,
                    log: Callable[[str], None] = print) -> tuple[LoopPolicy, EpisodeLog,
                                                                   dict[str, Any]]:
    """Train SAC until its actor's mean evaluation return reaches the target.

    Returns the policy (sharing the learner's networks), every transition collected, and a
    summary (target, reached return, steps, evaluation history).
    """
    from loop_ros.train import run_episode, task_of
    task = task_of(env_id, warn=False)
    target = dcfg.target_return if dcfg.target_return != 0.0 else task.medium_return
    if target is None:
        raise ValueError(f'{env_id} has no medium_return in the task registry: give '
                         '--dataset.target_return')
    cfg = _sac_config(cfg, dcfg, seed)
    seed_everything(seed)
    device = resolve_device(cfg.train.device)
    env = make_env(env_id, seed=seed)
    eval_env = make_env(env_id, seed=seed + EVAL_SEED_OFFSET)
    obs_dim, act_dim = int(env.observation_space.shape[0]), int(env.action_space.shape[0])
    learner = LoopLearner(cfg, obs_dim, act_dim, task, device)
    policy = LoopPolicy(cfg, obs_dim, act_dim, task, device, sac=learner.sac, seed=seed)
    log_ = EpisodeLog()
    history: list[dict[str, float]] = []
    obs, _ = env.reset(seed=seed)
    episode, ep_step, ep_return = 0, 0, 0.0
    reached = float('-inf')
    start = time.perf_counter()
    steps = 0
    try:
        for steps in range(1, dcfg.max_steps + 1):
            action, _ = policy.act(obs, explore=True, env_steps=steps - 1, use_planner=False)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            learner.add(obs, action, float(reward), 0.0, next_obs, terminated, truncated)
            log_.add(obs, action, float(reward), next_obs, terminated, truncated, episode,
                     ep_step)
            ep_return += float(reward)
            ep_step += 1
            obs = next_obs
            if terminated or truncated:
                log_.returns.append(ep_return)
                obs, _ = env.reset()
                episode, ep_step, ep_return = episode + 1, 0, 0.0
            if learner.has_work:
                learner.train()
            if steps % dcfg.eval_every == 0 and steps >= learner.start_steps:
                seeds = [seed + EVAL_SEED_OFFSET + steps + i for i in range(dcfg.eval_episodes)]
                returns = [run_episode(eval_env, policy.actor_action, s)[0] for s in seeds]
                reached = float(np.mean(returns))
                history.append({'env_step': steps, 'eval_return': reached,
                                'wall_s': round(time.perf_counter() - start, 1)})
                log(f'{env_id} seed {seed}: {steps} SAC steps, actor eval return {reached:.1f} '
                    f'(target {target:.1f}), {time.perf_counter() - start:.0f} s')
                if reached >= target:
                    break
    finally:
        env.close()
        eval_env.close()
    summary = {'dt': float(getattr(env.unwrapped, 'dt', 0.05)), 'target_return': float(target), 'reached_return': reached,
               'target_reached': bool(reached >= target), 'sac_steps': steps,
               'eval_history': history, 'sac_wall_s': round(time.perf_counter() - start, 1)}
    return policy, log_, summary


def rollouts(env_id: str, policy: LoopPolicy, size: int, seed: int, stochastic: bool
             ) -> EpisodeLog:
    """``size`` transitions of ``policy`` (SAC actor, sampled or mean), whole episodes after."""
    env = make_env(env_id, seed=seed)
    out = EpisodeLog()
    episode = 0
    try:
        while len(out) < size:
            obs, _ = env.reset(seed=seed + episode)
            ep_return, step, done = 0.0, 0, False
            while not done and len(out) < size:
                action, _ = policy.act(obs, explore=stochastic, use_planner=False)
                next_obs, reward, terminated, truncated, _ = env.step(action)
                out.add(obs, action, float(reward), next_obs, terminated, truncated, episode,
                        step)
                ep_return += float(reward)
                step += 1
                obs = next_obs
                done = terminated or truncated
            if done:
                out.returns.append(ep_return)
            episode += 1
    finally:
        env.close()
    return out


def make_dataset(env_id: str, kinds: tuple[str, ...], cfg: LoopConfig, dcfg: DatasetConfig,
                 seed: int, log: Callable[[str], None] = print) -> dict[str, Dataset]:
    """Train SAC to the target once, then build each kind in ``kinds`` (see module doc)."""
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError(f'unknown dataset kind(s) {unknown}; choose from {list(KINDS)}')
    policy, replay, summary = train_to_target(env_id, cfg, dcfg, seed, log)
    if not summary['target_reached']:
        log(f'warning: {env_id} seed {seed}: SAC reached {summary["reached_return"]:.1f} in '
            f'{summary["sac_steps"]} steps, below the target {summary["target_return"]:.1f}; '
            'the dataset says so in its metadata')
    out: dict[str, Dataset] = {}
    for kind in kinds:
        if kind == 'medium':
            data = rollouts(env_id, policy, dcfg.size, seed + 2 * EVAL_SEED_OFFSET,
                            dcfg.stochastic)
        else:
            data = replay
        returns = data.returns
        meta = {
            'loop_ros.dataset.env_id': env_id, 'loop_ros.dataset.kind': kind,
            'loop_ros.dataset.seed': seed, 'loop_ros.dataset.transitions': len(data),
            'loop_ros.dataset.episodes': len(returns),
            'loop_ros.dataset.return_mean': float(np.mean(returns)) if returns else None,
            'loop_ros.dataset.return_min': float(np.min(returns)) if returns else None,
            'loop_ros.dataset.return_max': float(np.max(returns)) if returns else None,
            'loop_ros.dataset.created': datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec='seconds'),
            **{f'loop_ros.dataset.{k}': v for k, v in summary.items()},
        }
        out[kind] = Dataset(data.arrays(), meta)
    return out


def write_dataset(dataset: Dataset, path: str | Path, storage: str = 'mcap',
                  overwrite: bool = False) -> Path:
    """Write ``dataset`` as a Transition bag (metadata values JSON-encoded).

    Stamps are simulated time: transition i is stamped i * dt (episodes back to back).
    """
    from loop_ros.io import TransitionData, write_transitions
    cols = dataset.columns
    n = len(dataset)
    data = TransitionData(
        obs=cols['obs'], action=cols['action'], reward=cols['reward'], cost=cols['cost'],
        next_obs=cols['next_obs'], terminated=cols['terminated'], truncated=cols['truncated'],
        episode=cols['episode'], step=cols['step'], stream=np.zeros(n, np.int64),
        stamp_ns=np.arange(n, dtype=np.int64) * int(dataset.metadata['loop_ros.dataset.dt'] * 1e9))
    metadata = {k: json.dumps(v) for k, v in dataset.metadata.items()}
    return write_transitions(path, data, storage=storage, metadata=metadata,
                             overwrite=overwrite)
