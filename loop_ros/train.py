"""Standalone LOOP training on a gymnasium env, without ROS (``loop-ros train``).

The loop of the reference's ``train_loop_sac.py`` (spec sec. 7): act (random, then ARC in
sampling mode), store, retrain the model every 250 steps, SAC bursts, and evaluate ARC in eval
mode and the actor alone every ``eval_every`` steps. Writes ``metrics.csv`` (evaluations),
``episodes.csv`` (training episodes), ``learning_curve.png`` and ``final.pt`` into the output
directory, and with ``train.checkpoint_every`` also ``checkpoints/step_<N>.pt`` (evaluated
apart by ``loop-ros eval``).
"""
from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
import torch

from loop_ros.core.agent import LoopLearner, LoopPolicy, resolve_device, seed_everything
from loop_ros.core.checkpoint import load_checkpoint, save_checkpoint
from loop_ros.core.config import LoopConfig, to_dict
from loop_ros.core.tasks import Task, get_task
from loop_ros.envs import make_env

CHECKPOINT_KIND = 'loop_ros.learner'


def checkpoint_name(env_steps: int) -> str:
    """File name of the periodic checkpoint after ``env_steps`` (``train.checkpoint_every``)."""
    return f'step_{env_steps:08d}.pt'


def task_of(env_id: str, warn: bool = True) -> Task:
    """The registered task of ``env_id`` (loop_ros's own ids registered first)."""
    if env_id.startswith('loop_ros/'):
        import loop_ros.sim  # noqa: F401  (registers the loop_ros/ ids and their tasks)
    return get_task(env_id, warn=warn)


@dataclass
class EvalResult:
    planner_return: float = float('nan')
    planner_cost: float = float('nan')
    actor_return: float = float('nan')
    planner_returns: list[float] = field(default_factory=list)
    actor_returns: list[float] = field(default_factory=list)


def run_episode(env: gym.Env, act: Callable[[np.ndarray], np.ndarray], seed: int,
                on_reset: Callable[[], None] | None = None,
                record: list | None = None) -> tuple[float, float]:
    """One episode; returns (return, cost). ``record`` collects the env's base state per step."""
    obs, _ = env.reset(seed=seed)
    if on_reset is not None:
        on_reset()
    total, cost, done = 0.0, 0.0, False
    while not done:
        if record is not None and hasattr(env.unwrapped, 'state'):
            record.append(np.array(env.unwrapped.state, dtype=np.float64))
        obs, reward, terminated, truncated, info = env.step(act(obs))
        total += float(reward)
        cost += float(info.get('cost', 0.0))
        done = terminated or truncated
    if record is not None and hasattr(env.unwrapped, 'state'):
        record.append(np.array(env.unwrapped.state, dtype=np.float64))
    return total, cost


def evaluate(env: gym.Env, policy: LoopPolicy, planner_episodes: int, actor_episodes: int,
             seed: int) -> EvalResult:
    """ARC in eval mode (weighted mean) and the deterministic actor alone."""
    result = EvalResult()
    costs = []
    if policy.planner is not None:
        for i in range(planner_episodes):
            ret, cost = run_episode(env, lambda o: policy.act(o, explore=False)[0], seed + i,
                                    on_reset=policy.reset)
            result.planner_returns.append(ret)
            costs.append(cost)
    if policy.sac is not None:
        for i in range(actor_episodes):
            ret, _ = run_episode(env, lambda o: policy.act(o, explore=False,
                                                           use_planner=False)[0], seed + 50 + i)
            result.actor_returns.append(ret)
    if result.planner_returns:
        result.planner_return = float(np.mean(result.planner_returns))
        result.planner_cost = float(np.mean(costs))
    if result.actor_returns:
        result.actor_return = float(np.mean(result.actor_returns))
    return result


EVAL_COLUMNS = ['env_step', 'wall_s', 'eval_planner_return', 'eval_planner_cost',
                'eval_actor_return', 'train_return_recent', 'model_holdout_mse', 'sac_alpha',
                'plan_ms']
EPISODE_COLUMNS = ['env_step', 'episode', 'return', 'cost', 'length']


@dataclass
class TrainResult:
    out_dir: Path
    final_eval: EvalResult
    wall_s: float
    env_steps: int
    plan_ms_median: float


def train(env_id: str, cfg: LoopConfig, out_dir: str | Path, progress: bool = True,
          log: Callable[[str], None] = print,
          replay_bags: Sequence[str | Path] = (),
          init: str | Path | None = None) -> TrainResult:
    """Train ``cfg.train.algo`` on ``env_id`` for ``cfg.train.total_steps`` steps.

    ``init``: a policy checkpoint (e.g. ``loop-ros train-offline``'s ``final.pt``) whose actor,
    critic and ensemble the learner starts from (offline-to-online fine-tuning).

    ``replay_bags``: Transition bags that fill the replay buffer first
    (:mod:`loop_ros.io.replay`): they count toward ``start_steps``, and the model is retrained
    (and the SAC updates they make due are done) before the first step. ``total_steps`` counts
    live steps only. A bad bag raises :class:`loop_ros.io.bags.BagError`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tcfg = cfg.train
    seed_everything(tcfg.seed)
    device = resolve_device(tcfg.device)
    env = make_env(env_id, seed=tcfg.seed)
    eval_env = make_env(env_id, seed=tcfg.seed + 100)
    obs_dim = int(env.observation_space.shape[0])
    act_dim = int(env.action_space.shape[0])
    task = task_of(env_id)
    learner = LoopLearner(cfg, obs_dim, act_dim, task, device)
    if init is not None:
        learner.load_policy_weights(load_checkpoint(init, kind=CHECKPOINT_KIND))
        log(f'starting from the weights of {init}')
    policy = LoopPolicy(cfg, obs_dim, act_dim, task, device, sac=learner.sac,
                        ensemble=learner.ensemble, cost_model=learner.cost_model,
                        seed=tcfg.seed)
    replayed = 0
    if replay_bags:
        from loop_ros.io.replay import load_replay_bags, seed_learner
        seed = load_replay_bags(list(replay_bags), obs_dim, act_dim, task)
        seed_learner(learner, seed.data)
        replayed = len(seed.data)
        learner.train()   # the model (and the due SAC updates) before the first plan
        log(f'replayed {replayed} transitions from {len(seed.bags)} bag(s) '
            f'({seed.rewards_from_task} with rewards from the task); model retrained: holdout '
            f"MSE {learner.last_model_metrics.get('model/holdout_mse', float('nan')):.4g}")
    (out / 'config.json').write_text(json.dumps(
        {'env_id': env_id, 'config': to_dict(learner.cfg), 'device': str(device),
         'replay_bags': [str(p) for p in replay_bags], 'replayed_transitions': replayed},
        indent=2))

    eval_file = (out / 'metrics.csv').open('w', newline='')
    episode_file = (out / 'episodes.csv').open('w', newline='')
    eval_writer = csv.DictWriter(eval_file, EVAL_COLUMNS)
    episode_writer = csv.DictWriter(episode_file, EPISODE_COLUMNS)
    eval_writer.writeheader()
    episode_writer.writeheader()

    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=tcfg.total_steps, desc=f'{tcfg.algo} {env_id}', unit='step',
                   dynamic_ncols=True)
    start = time.perf_counter()
    obs, _ = env.reset(seed=tcfg.seed)
    policy.reset()
    episode, ep_return, ep_cost, ep_len = 0, 0.0, 0.0, 0
    recent_returns: list[float] = []
    plan_times: list[float] = []
    last_eval = EvalResult()
    sac_metrics: dict[str, float] = {}
    try:
        for step in range(tcfg.total_steps):
            t0 = time.perf_counter()
            action, info = policy.act(obs, explore=True, env_steps=learner.env_steps)
            if info.plan is not None:
                plan_times.append((time.perf_counter() - t0) * 1e3)
            next_obs, reward, terminated, truncated, env_info = env.step(action)
            cost = float(env_info.get('cost', 0.0))
            learner.add(obs, action, float(reward), cost, next_obs, terminated, truncated)
            ep_return += float(reward)
            ep_cost += cost
            ep_len += 1
            obs = next_obs
            if terminated or truncated:
                episode_writer.writerow({'env_step': step + 1, 'episode': episode,
                                         'return': ep_return, 'cost': ep_cost, 'length': ep_len})
                episode_file.flush()  # long runs can be followed with `tail -f episodes.csv`
                recent_returns = (recent_returns + [ep_return])[-10:]
                episode += 1
                ep_return, ep_cost, ep_len = 0.0, 0.0, 0
                obs, _ = env.reset()
                policy.reset()
            if learner.has_work:
                sac_metrics.update(learner.train())
            if tcfg.checkpoint_every and (step + 1) % tcfg.checkpoint_every == 0:
                save_checkpoint(out / 'checkpoints' / checkpoint_name(step + 1),
                                {**learner.policy_state(), 'env_id': env_id},
                                kind=CHECKPOINT_KIND)
            last = step + 1 == tcfg.total_steps
            if (tcfg.eval_every and (step + 1) % tcfg.eval_every == 0) or last:
                saved_plan = policy.planner._prev_plan.clone() if policy.planner else None
                last_eval = evaluate(eval_env, policy, tcfg.eval_episodes,
                                     tcfg.actor_eval_episodes, seed=tcfg.seed + 100 + step)
                if saved_plan is not None:
                    policy.planner._prev_plan = saved_plan  # type: ignore[union-attr]
                row = {
                    'env_step': step + 1, 'wall_s': round(time.perf_counter() - start, 2),
                    'eval_planner_return': last_eval.planner_return,
                    'eval_planner_cost': last_eval.planner_cost,
                    'eval_actor_return': last_eval.actor_return,
                    'train_return_recent': float(np.mean(recent_returns)) if recent_returns
                    else float('nan'),
                    'model_holdout_mse': learner.last_model_metrics.get('model/holdout_mse',
                                                                        float('nan')),
                    'sac_alpha': sac_metrics.get('sac/alpha', float('nan')),
                    'plan_ms': float(np.median(plan_times[-200:])) if plan_times
                    else float('nan'),
                }
                eval_writer.writerow(row)
                eval_file.flush()
                if bar is None:
                    log(_format_row(row))
            if bar is not None:
                bar.update(1)
                if (step + 1) % 20 == 0 or last:
                    bar.set_postfix_str(_postfix(recent_returns, last_eval, plan_times))
    finally:
        if bar is not None:
            bar.close()
        eval_file.close()
        episode_file.close()
        env.close()
        eval_env.close()
    wall = time.perf_counter() - start
    save_checkpoint(out / 'final.pt', {**learner.policy_state(), 'env_id': env_id},
                    kind=CHECKPOINT_KIND)
    plot_learning_curve(out)
    if env_id.startswith('loop_ros/RCCar'):
        render_rc_car_episode(env_id, policy, out, seed=tcfg.seed + 1000)
    return TrainResult(out, last_eval, wall, tcfg.total_steps,
                       float(np.median(plan_times)) if plan_times else float('nan'))


def _postfix(recent: list[float], last_eval: EvalResult, plan_times: list[float]) -> str:
    parts = []
    if recent:
        parts.append(f'train {np.mean(recent):.1f}')
    if not np.isnan(last_eval.planner_return):
        parts.append(f'eval {last_eval.planner_return:.1f}')
    if not np.isnan(last_eval.actor_return):
        parts.append(f'actor {last_eval.actor_return:.1f}')
    if plan_times:
        parts.append(f'plan {np.median(plan_times[-50:]):.0f} ms')
    return ' | '.join(parts)


def _format_row(row: dict[str, Any]) -> str:
    return ' '.join(f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}' for k, v in row.items())


def plot_learning_curve(out_dir: Path) -> Path | None:
    """learning_curve.png from metrics.csv and episodes.csv (matplotlib, Agg)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader((out_dir / 'metrics.csv').open()))
    episodes = list(csv.DictReader((out_dir / 'episodes.csv').open()))
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    if episodes:
        ax.plot([int(e['env_step']) for e in episodes], [float(e['return']) for e in episodes],
                '.', color='0.7', markersize=3, label='training episodes')
    for key, label in (('eval_planner_return', 'eval: ARC (planner)'),
                       ('eval_actor_return', 'eval: actor alone')):
        pts = [(int(r['env_step']), float(r[key])) for r in rows if r[key] not in ('', 'nan')]
        if pts:
            ax.plot(*zip(*pts), 'o-', label=label)
    ax.set_xlabel('environment steps')
    ax.set_ylabel('return')
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = out_dir / 'learning_curve.png'
    fig.savefig(path)
    plt.close(fig)
    return path


def render_rc_car_episode(env_id: str, policy: LoopPolicy, out_dir: Path, seed: int
                          ) -> tuple[float, float]:
    """One eval-mode episode drawn top-down: ``episode.gif`` and ``episode.png``."""
    from loop_ros.sim.render import render_episode
    env = make_env(env_id)
    states: list[np.ndarray] = []
    act = (lambda o: policy.act(o, explore=False)[0]) if policy.planner is not None or \
        policy.sac is not None else (lambda o: policy.random_action())
    ret, cost = run_episode(env, act, seed, on_reset=policy.reset, record=states)
    dt = float(getattr(env.unwrapped, 'dt', 0.1))
    title = f'{policy.cfg.train.algo}: return {ret:.1f}, cost {cost:.0f}'
    for suffix in ('gif', 'png'):
        render_episode(np.stack(states), out_dir / f'episode.{suffix}', title=title, dt=dt)
    env.close()
    return ret, cost


def torch_threads(num: int) -> None:
    """Intra-op threads for this process (the machine has 2 cores)."""
    torch.set_num_threads(num)
