"""Offline training from Transition bags (``loop-ros train-offline``).

From one or more bags (a robot's converted recording, the graph's own recording, or a dataset
of ``loop-ros dataset``):

1. split off ``holdout_ratio`` of the transitions, never trained on;
2. fit the probabilistic ensemble on the rest (its own early-stopping split inside), and report
   its one-step error on the held-out transitions next to the error of predicting "no change"
   (s' = s), the floor any useful model must beat;
3. train the offline base policy and critic (CRR) for ``updates`` steps, then, with
   ``value_updates``, the critic alone by fitted Q evaluation of the final deterministic actor;
4. write ``final.pt``: a ``loop_ros.learner`` checkpoint in the layout of
   :meth:`loop_ros.core.agent.LoopLearner.policy_state` with ``train.algo = 'loop-offline'``, so
   the planner node, ``loop-ros eval-offline`` and ``loop-ros train --init`` load it; and
   ``metrics.json``.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from loop_ros.core.agent import resolve_device, seed_everything
from loop_ros.core.checkpoint import save_checkpoint
from loop_ros.core.config import LoopConfig, OfflineConfig, replace, to_dict
from loop_ros.core.crr import CrrAgent
from loop_ros.core.ensemble import ProbabilisticEnsemble

CHECKPOINT_KIND = 'loop_ros.learner'
ENV_ID_KEY = 'loop_ros.dataset.env_id'


class OfflineBatch:
    """A minibatch with the fields the update rules read (obs, action, reward, ...)."""

    def __init__(self, **tensors: torch.Tensor) -> None:
        self.__dict__.update(tensors)


@dataclass
class OfflineResult:
    out_dir: Path
    checkpoint: Path
    metrics: dict[str, Any]


def offline_config(cfg: LoopConfig) -> LoopConfig:
    """``cfg`` marked as offline LOOP (``train.algo = 'loop-offline'``)."""
    return replace(cfg, **{'train.algo': 'loop-offline', 'train.start_steps': 0})


def env_id_of_bags(paths: Sequence[str | Path]) -> str | None:
    """The env id a dataset bag names in its metadata (the first one that does), else None."""
    from loop_ros.io import read_metadata
    for path in paths:
        value = read_metadata(path).get(ENV_ID_KEY)
        if value:
            return str(json.loads(value))
    return None


def one_step_errors(ensemble: ProbabilisticEnsemble, obs: torch.Tensor, action: torch.Tensor,
                    reward: torch.Tensor, next_obs: torch.Tensor, chunk: int = 8192
                    ) -> dict[str, float]:
    """Held-out one-step MSE of the elites' mean prediction, and of predicting "no change".

    Both are mean squared errors of s' over observation dimensions (in the data's units);
    ``model/reward_mse`` is the reward's when the model learns it.
    """
    members = ensemble.elites
    sq_obs, sq_still, sq_rew = 0.0, 0.0, 0.0
    for start in range(0, obs.shape[0], chunk):
        o, a = obs[start:start + chunk], action[start:start + chunk]
        m = members.numel()
        pred, rew = ensemble.predict(o.expand(m, *o.shape), a.expand(m, *a.shape), members,
                                     deterministic=True)
        target = next_obs[start:start + chunk]
        sq_obs += float((pred.mean(dim=0) - target).square().sum())
        sq_still += float((o - target).square().sum())
        if rew is not None:
            sq_rew += float((rew.mean(dim=0) - reward[start:start + chunk]).square().sum())
    n, dims = obs.shape
    out = {'model/heldout_obs_mse': sq_obs / (n * dims),
           'model/no_change_obs_mse': sq_still / (n * dims)}
    if ensemble.cfg.learn_reward:
        out['model/heldout_reward_mse'] = sq_rew / n
    return out


def train_offline(bags: Sequence[str | Path], cfg: LoopConfig, ocfg: OfflineConfig,
                  out_dir: str | Path, env_id: str | None = None, progress: bool = True,
                  log: Callable[[str], None] = print) -> OfflineResult:
    """Ensemble + CRR from ``bags``; writes ``final.pt`` and ``metrics.json`` to ``out_dir``.

    Raises:
        loop_ros.io.BagError: a bag is missing, corrupt or holds no usable transitions.
        ValueError: the bags hold fewer than 2 transitions.
    """
    from loop_ros.io import read_transitions
    from loop_ros.train import task_of
    start = time.perf_counter()
    out = Path(out_dir)
    bags = [Path(b) for b in bags]
    env_id = env_id or env_id_of_bags(bags)
    data = read_transitions(bags)
    n = len(data)
    if n < 2:
        raise ValueError(f'{n} transition(s) in {", ".join(map(str, bags))}: too few to train')
    obs_dim, act_dim = data.obs.shape[1], data.action.shape[1]
    task = task_of(env_id, warn=False) if env_id else None
    cfg = offline_config(cfg)
    seed_everything(ocfg.seed)
    device = resolve_device(cfg.train.device)
    generator = torch.Generator(device=device)
    generator.manual_seed(ocfg.seed)
    out.mkdir(parents=True, exist_ok=True)

    t = {k: torch.as_tensor(np.asarray(getattr(data, k)), dtype=torch.float32, device=device)
         for k in ('obs', 'action', 'reward', 'next_obs', 'terminated')}
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(ocfg.seed)).to(device)
    num_holdout = max(1, int(round(n * ocfg.holdout_ratio)))
    held, train_rows = perm[:num_holdout], perm[num_holdout:]
    log(f'{n} transitions (obs {obs_dim}, act {act_dim}) from {len(bags)} bag(s); '
        f'{len(train_rows)} train, {num_holdout} held out; env {env_id or "unknown"}')

    ensemble = ProbabilisticEnsemble(obs_dim, act_dim, cfg.ensemble, device)
    model_start = time.perf_counter()
    fit = ensemble.fit(t['obs'][train_rows], t['action'][train_rows],
                       t['reward'][train_rows] if cfg.ensemble.learn_reward else None,
                       t['next_obs'][train_rows], generator=generator,
                       max_epochs=ocfg.model_epochs)
    errors = one_step_errors(ensemble, t['obs'][held], t['action'][held], t['reward'][held],
                             t['next_obs'][held])
    log(f"ensemble: {int(fit['model/epochs'])} epochs in {time.perf_counter() - model_start:.0f}"
        f" s; held-out one-step MSE {errors['model/heldout_obs_mse']:.4g} vs "
        f"{errors['model/no_change_obs_mse']:.4g} for 'no change'")

    agent = CrrAgent(obs_dim, act_dim, cfg.sac.hidden_sizes, ocfg, gamma=cfg.sac.gamma,
                     tau=cfg.sac.tau, device=device)
    crr_start = time.perf_counter()
    num_train = len(train_rows)

    def minibatch() -> OfflineBatch:
        idx = train_rows[torch.randint(num_train, (ocfg.batch_size,), device=device,
                                       generator=generator)]
        return OfflineBatch(**{k: v[idx] for k, v in t.items()})

    metrics = _minibatch_steps('crr', ocfg.updates, agent.update, minibatch, progress, log)
    for key in ('loss/critic', 'loss/actor'):
        if not math.isfinite(metrics.get(key, 0.0)):
            raise RuntimeError(f'CRR diverged: {key} = {metrics[key]}')
    value_start = time.perf_counter()
    value_loss = math.nan
    if ocfg.value_updates:
        value_loss = _minibatch_steps('value', ocfg.value_updates, agent.evaluation_update,
                                      minibatch, progress, log)['loss/critic']
        if not math.isfinite(value_loss):
            raise RuntimeError(f'value evaluation diverged: critic loss = {value_loss}')

    state = {
        'config': to_dict(cfg), 'obs_dim': obs_dim, 'act_dim': act_dim, 'env_steps': n,
        'start_steps': 0,
        'actor': {k: v.detach().cpu() for k, v in agent.actor.state_dict().items()},
        'critic': {k: v.detach().cpu() for k, v in agent.critic.state_dict().items()},
        'ensemble': {k: v.detach().cpu() for k, v in ensemble.state_dict().items()},
        'holdout_mse': float(fit['model/holdout_mse']),
        'env_id': env_id or '', 'offline': to_dict(ocfg),
        'bags': [str(b.resolve()) for b in bags],
    }
    checkpoint = save_checkpoint(out / 'final.pt', state, kind=CHECKPOINT_KIND)
    result = {
        'env_id': env_id, 'bags': state['bags'], 'transitions': n, 'held_out': num_holdout,
        'obs_dim': obs_dim, 'act_dim': act_dim, 'offline': to_dict(ocfg),
        'config': to_dict(cfg), 'device': str(device),
        'ensemble': {**{k.split('/', 1)[1]: v for k, v in fit.items()},
                     **{k.split('/', 1)[1]: v for k, v in errors.items()}},
        'crr': {**{k.replace('/', '_'): v for k, v in metrics.items()},
                'updates': ocfg.updates, 'wall_s': round(value_start - crr_start, 1)},
        'value': {'updates': ocfg.value_updates, 'loss_critic': value_loss,
                  'wall_s': round(time.perf_counter() - value_start, 1)},
        'task_known': task is not None, 'wall_s': round(time.perf_counter() - start, 1),
    }
    (out / 'metrics.json').write_text(json.dumps(result, indent=2))
    log(f'wrote {checkpoint} and {out / "metrics.json"} in {result["wall_s"]:.0f} s')
    return OfflineResult(out, checkpoint, result)


def _minibatch_steps(name: str, count: int, update: Callable[[OfflineBatch], dict[str, float]],
                     minibatch: Callable[[], OfflineBatch], progress: bool,
                     log: Callable[[str], None]) -> dict[str, float]:
    """``count`` steps ``update(minibatch())`` with a progress bar (or ``log`` ten times);
    returns the last step's metrics."""
    def losses(metrics: dict[str, float], digits: int) -> str:
        return ', '.join(f'{k[5:]} loss {v:.{digits}g}' for k, v in metrics.items()
                         if k.startswith('loss/'))

    metrics: dict[str, float] = {}
    bar = tqdm(total=count, desc=name, unit='update', dynamic_ncols=True) if progress else None
    try:
        for step in range(count):
            metrics = update(minibatch())
            if bar is not None:
                bar.update(1)
                if step % 200 == 0:
                    bar.set_postfix_str(losses(metrics, 3))
            elif (step + 1) % max(1, count // 10) == 0:
                log(f'{name}: {step + 1}/{count} updates, {losses(metrics, 4)}')
    finally:
        if bar is not None:
            bar.close()
    return metrics
