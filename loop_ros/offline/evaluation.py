"""The base offline policy against offline LOOP on it (``loop-ros eval-offline``), and a
trained agent's checkpoints on fresh resets (``loop-ros eval``).

For each checkpoint of ``loop-ros train-offline`` (one per training seed), both controllers run
the same ``episodes`` on the same reset seeds, drawn from :data:`EVAL_SEED_BASE` upwards, a
range no dataset or training run uses:

* the base policy: the offline actor's deterministic action tanh(mu(s));
* LOOP: ARC with the policy prior and pessimistic scoring around that actor
  (``train.algo = 'loop-offline'``; the checkpoint's ``arc.*`` unless overridden).

Rows come out in the shape of the paper's Table 1: dataset, env, base, LOOP-base, improvement
in percent of the base's score (D4RL-normalised when the task has reference returns, else the
raw return).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from loop_ros.core.agent import LoopPolicy, resolve_device, seed_everything
from loop_ros.core.checkpoint import load_checkpoint
from loop_ros.core.config import LoopConfig, from_dict, replace, to_dict
from loop_ros.envs import make_env

EVAL_SEED_BASE = 1_500_000_000
"""First evaluation reset seed. Datasets reset from their seed + 0..3e6 and training uses no
env, so evaluation episodes start from states no training run saw."""
CHECKPOINT_KIND = 'loop_ros.learner'


@dataclass
class ControllerResult:
    """Returns of one controller over the evaluation episodes of one checkpoint."""

    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    step_ms: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns)) if self.returns else math.nan


@dataclass
class CheckpointEval:
    checkpoint: str
    env_id: str
    dataset: str
    base: ControllerResult
    loop: ControllerResult
    config: dict[str, Any]
    reset_seeds: list[int]
    env_steps: int = -1
    """Environment steps the checkpoint's learner had taken (-1: not recorded)."""


def load_policy(checkpoint: str | Path, overrides: dict[str, Any] | None = None,
                env_id: str | None = None, device: str = 'auto', seed: int = 0,
                algo: str | None = None) -> tuple[LoopPolicy, str, dict[str, Any]]:
    """A :class:`LoopPolicy` with a checkpoint's weights and planner settings.

    The checkpoint is a ``final.pt`` (or ``checkpoints/step_<N>.pt``) of ``loop-ros train`` or
    ``loop-ros train-offline``. ``algo`` replaces its ``train.algo`` (None keeps it);
    ``overrides`` (dotted names, e.g. ``{'arc.policy_noise': 0.2}``) replace its other settings.
    Returns the policy, the env id and the checkpoint payload.
    """
    from loop_ros.train import task_of
    payload = load_checkpoint(checkpoint, kind=CHECKPOINT_KIND)
    env_id = env_id or payload.get('env_id') or ''
    if not env_id:
        raise ValueError(f'checkpoint {checkpoint} names no env: give --env')
    cfg = from_dict(LoopConfig, payload['config'], where=f'{checkpoint} config')
    cfg = replace(cfg, **{**({'train.algo': algo} if algo else {}), **(overrides or {})})
    policy = LoopPolicy(cfg, payload['obs_dim'], payload['act_dim'], task_of(env_id, warn=False),
                        resolve_device(device), seed=seed)
    policy.load_policy_state(payload)
    return policy, env_id, payload


def load_offline_policy(checkpoint: str | Path, overrides: dict[str, Any] | None = None,
                        env_id: str | None = None, device: str = 'auto', seed: int = 0
                        ) -> tuple[LoopPolicy, str, dict[str, Any]]:
    """:func:`load_policy` planning as offline LOOP (``train.algo = 'loop-offline'``)."""
    return load_policy(checkpoint, overrides, env_id, device, seed, algo='loop-offline')


def run_controller(env: Any, act: Callable[[np.ndarray], np.ndarray], seeds: Sequence[int],
                   on_reset: Callable[[], None] | None = None) -> ControllerResult:
    """One episode per reset seed; returns, lengths and per-step decision times."""
    from loop_ros.train import run_episode
    result = ControllerResult()

    def timed(obs: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        action = act(obs)
        result.step_ms.append((time.perf_counter() - t0) * 1e3)
        return action

    for seed in seeds:
        steps_before = len(result.step_ms)
        result.returns.append(run_episode(env, timed, int(seed), on_reset)[0])
        result.lengths.append(len(result.step_ms) - steps_before)
    return result


def evaluate_checkpoint(checkpoint: str | Path, episodes: int = 10,
                        overrides: dict[str, Any] | None = None, env_id: str | None = None,
                        device: str = 'auto', seed: int = 0,
                        eval_seed_base: int = EVAL_SEED_BASE,
                        log: Callable[[str], None] = print,
                        algo: str | None = 'loop-offline') -> CheckpointEval:
    """Base policy (the actor alone) and LOOP on ``episodes`` shared evaluation resets.

    Reset seeds are ``eval_seed_base + i``; tune settings on another base than the one results
    are reported on. ``algo``: how LOOP plans (:func:`load_policy`; None: the checkpoint's own
    ``train.algo``, for ``loop-ros train`` checkpoints). A checkpoint without a planner
    (``sac``) gets no LOOP episodes, one without an actor (``pets``) no base episodes.
    """
    seed_everything(seed)
    policy, env_id, payload = load_policy(checkpoint, overrides, env_id, device, seed, algo)
    env = make_env(env_id)
    seeds = [eval_seed_base + i for i in range(episodes)]
    try:
        base, loop = ControllerResult(), ControllerResult()
        if policy.sac is not None:
            base = run_controller(env, lambda o: policy.act(o, explore=False,
                                                            use_planner=False)[0], seeds)
        if policy.planner is not None:
            loop = run_controller(env, lambda o: policy.act(o, explore=False)[0], seeds,
                                  on_reset=policy.reset)
    finally:
        env.close()
    dataset = dataset_name(payload.get('bags', []))
    plan_ms = f'{np.median(loop.step_ms):.1f}' if loop.step_ms else '-'
    log(f'{checkpoint}: base {base.mean:.1f}, LOOP {loop.mean:.1f} over {episodes} episodes '
        f'(plan {plan_ms} ms/step)')
    return CheckpointEval(str(checkpoint), env_id, dataset, base, loop,
                          to_dict(policy.cfg.arc), seeds, int(payload.get('env_steps', -1)))


def dataset_name(bags: Sequence[str]) -> str:
    """The dataset kind a bag's metadata names (``medium``...), else the bag names."""
    from loop_ros.io import BagError, read_metadata
    kinds = []
    for bag in bags:
        try:
            kind = read_metadata(bag).get('loop_ros.dataset.kind')
        except BagError:
            kind = None
        kinds.append(json.loads(kind) if kind else Path(bag).name)
    return '+'.join(dict.fromkeys(kinds)) or 'unknown'


def improvement(base: float, loop: float) -> float:
    """(LOOP - base) / |base| in percent, as the paper's Table 1 reports it."""
    if not (math.isfinite(base) and math.isfinite(loop)) or base == 0.0:
        return math.nan
    return 100.0 * (loop - base) / abs(base)


def table_rows(evals: Sequence[CheckpointEval]) -> list[dict[str, Any]]:
    """One row per (dataset, env): means over checkpoints (seeds) of the per-seed means."""
    from loop_ros.train import task_of
    groups: dict[tuple[str, str], list[CheckpointEval]] = {}
    for ev in evals:
        groups.setdefault((ev.dataset, ev.env_id), []).append(ev)
    rows = []
    for (dataset, env_id), group in groups.items():
        task = task_of(env_id, warn=False)
        base = [ev.base.mean for ev in group]
        loop = [ev.loop.mean for ev in group]
        norm = task.reference_returns is not None
        score = task.normalized_score if norm else (lambda r: r)
        base_s, loop_s = [score(r) for r in base], [score(r) for r in loop]
        rows.append({
            'dataset': dataset, 'env': env_id, 'seeds': len(group),
            'episodes': sum(len(ev.base.returns) for ev in group),
            'score': 'd4rl-normalised' if norm else 'return',
            'base': float(np.mean(base_s)), 'base_std': float(np.std(base_s)),
            'loop': float(np.mean(loop_s)), 'loop_std': float(np.std(loop_s)),
            'improvement_pct': improvement(float(np.mean(base_s)), float(np.mean(loop_s))),
            'base_return': float(np.mean(base)), 'loop_return': float(np.mean(loop)),
            'plan_ms_median': float(np.median(np.concatenate([ev.loop.step_ms
                                                              for ev in group])))
            if any(ev.loop.step_ms for ev in group) else None,
        })
    return rows


def markdown_table(rows: Sequence[dict[str, Any]], base_name: str = 'CRR') -> str:
    """Rows as the paper's Table 1 (mean ± std over seeds)."""
    lines = [f'| dataset | env | seeds x episodes | {base_name} | LOOP-{base_name} | +% |',
             '|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['env']} | {r['seeds']} x "
                     f"{r['episodes'] // max(r['seeds'], 1)} | {r['base']:.1f} ± {r['base_std']:.1f}"
                     f" | {r['loop']:.1f} ± {r['loop_std']:.1f} | {r['improvement_pct']:+.1f} |")
    finite = [r['improvement_pct'] for r in rows if math.isfinite(r['improvement_pct'])]
    if len(rows) > 1 and finite:
        lines.append(f'| average | | | | | {np.mean(finite):+.1f} |')
    return '\n'.join(lines)


def checkpoint_table(evals: Sequence[CheckpointEval]) -> str:
    """One row per checkpoint (``loop-ros eval``): the actor alone and the planner, raw returns
    as mean ± std (min–max) over the shared evaluation resets."""

    def cell(result: ControllerResult) -> str:
        if not result.returns:
            return '-'
        r = np.asarray(result.returns)
        return f'{r.mean():.1f} ± {r.std():.1f} ({r.min():.1f}–{r.max():.1f})'

    lines = ['| checkpoint | env steps | episodes | actor alone | planner (ARC, eval mode) |',
             '|---|---|---|---|---|']
    for ev in evals:
        steps = str(ev.env_steps) if ev.env_steps >= 0 else '?'
        lines.append(f'| {ev.checkpoint} | {steps} | {len(ev.reset_seeds)} | {cell(ev.base)} | '
                     f'{cell(ev.loop)} |')
    return '\n'.join(lines)


def write_report(evals: Sequence[CheckpointEval], out: str | Path,
                 per_checkpoint: bool = False) -> tuple[Path, str]:
    """``eval.json`` (every episode) and ``table.md`` into ``out``; returns (dir, table).

    The table is the paper's Table 1 (:func:`markdown_table`), or with ``per_checkpoint`` one
    row per checkpoint (:func:`checkpoint_table`).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = table_rows(evals)
    table = checkpoint_table(evals) if per_checkpoint else markdown_table(rows)
    record = {'rows': rows, 'checkpoints': [
        {'checkpoint': ev.checkpoint, 'env_id': ev.env_id, 'dataset': ev.dataset,
         'env_steps': ev.env_steps,
         'base_returns': ev.base.returns, 'loop_returns': ev.loop.returns,
         'base_lengths': ev.base.lengths, 'loop_lengths': ev.loop.lengths,
         'plan_ms_median': float(np.median(ev.loop.step_ms)) if ev.loop.step_ms else None,
         'arc': ev.config, 'reset_seeds': ev.reset_seeds}
        for ev in evals]}
    (out / 'eval.json').write_text(json.dumps(record, indent=2))
    (out / 'table.md').write_text(table + '\n')
    return out, table
