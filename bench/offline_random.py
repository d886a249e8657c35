"""Offline LOOP from random driving on the RC car: how much data and training the round trip needs.

The ROS round trip (``test/ros/test_offline_roundtrip.py``) records the RC-car graph driven by
uniformly random actions, trains offline from that bag and deploys the planner on it. This
script makes the same kind of dataset without ROS (``--episodes`` episodes of uniform random
actions in [-1, 1]^2, resets ``seed * 1000 + i``), trains ``train_offline`` with the test's
sizes (``SMALL``: ensemble 5 x 64 x 3, networks 64 x 64) for each ``--updates`` budget, and
evaluates the CRR policy and offline LOOP on it (``evaluate_checkpoint``: 10 episodes on reset
seeds from ``EVAL_SEED_BASE``, which no dataset uses), next to random driving on the same
resets.

Usage: ``python bench/offline_random.py [--episodes 6 15] [--updates 2000 5000] [--seeds 0 1 2 3
4 5] [--out runs/bench_offline_random]``; prints one row per run and the table per setting,
writes ``table.json``. Runs whose checkpoint exists are evaluated again, not retrained.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the source tree

from loop_ros.core.agent import OFFLINE_PRESETS  # noqa: E402
from loop_ros.core.config import LoopConfig, OfflineConfig, replace  # noqa: E402
from loop_ros.envs import make_env  # noqa: E402
from loop_ros.io.bags import TransitionData, write_transitions  # noqa: E402
from loop_ros.offline.evaluation import EVAL_SEED_BASE  # noqa: E402
from loop_ros.offline.evaluation import evaluate_checkpoint, run_controller  # noqa: E402
from loop_ros.offline.training import train_offline  # noqa: E402

ENV = 'loop_ros/RCCarCircle-v0'
SMALL = {'sac.hidden_sizes': (64, 64), 'ensemble.num_members': 5, 'ensemble.num_elites': 3,
         'ensemble.hidden_size': 64, 'ensemble.num_layers': 3, 'train.device': 'cpu'}
"""The round-trip test's sizes (its ``SMALL``)."""
EVAL_EPISODES = 10


def random_driving(episodes: int, seed: int) -> TransitionData:
    """``episodes`` RC-car episodes of uniform random actions, as the planner without a learner
    drives."""
    env = make_env(ENV)
    rng = np.random.default_rng(seed)
    names = ('obs', 'action', 'reward', 'cost', 'next_obs', 'terminated', 'truncated',
             'episode', 'step')
    rows: dict[str, list] = {k: [] for k in names}
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed * 1000 + episode)
        for step in range(10_000):
            action = rng.uniform(-1.0, 1.0, 2).astype(np.float32)
            next_obs, reward, terminated, truncated, info = env.step(action)
            for name, value in zip(names, (obs, action, reward, info['cost'], next_obs,
                                           terminated, truncated, episode, step)):
                rows[name].append(value)
            obs = next_obs
            if terminated or truncated:
                break
    env.close()
    n = len(rows['obs'])
    return TransitionData(**{k: np.asarray(v) for k, v in rows.items()},
                          stream=np.zeros(n, np.int64), stamp_ns=np.arange(n) * 100_000_000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--episodes', type=int, nargs='+', default=[6, 15])
    parser.add_argument('--updates', type=int, nargs='+', default=[2000, 5000])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2, 3, 4, 5])
    parser.add_argument('--out', default='runs/bench_offline_random')
    args = parser.parse_args()
    import torch
    torch.set_num_threads(1)
    out = Path(args.out)
    seeds = [EVAL_SEED_BASE + i for i in range(EVAL_EPISODES)]
    env = make_env(ENV)
    rng = np.random.default_rng(0)
    random_returns = run_controller(
        env, lambda o: rng.uniform(-1.0, 1.0, 2).astype(np.float32), seeds).returns
    env.close()
    print(f'random driving on the evaluation resets: mean {np.mean(random_returns):.1f}, '
          f'median {np.median(random_returns):.1f}', flush=True)
    cfg = replace(LoopConfig(), **OFFLINE_PRESETS, **SMALL)
    results: dict[str, list[dict]] = {}
    for episodes in args.episodes:
        for seed in args.seeds:
            bag = out / f'random_{episodes}ep_seed{seed}'
            if not bag.exists():
                write_transitions(bag, random_driving(episodes, seed),
                                  metadata={'env_id': ENV})
            for updates in args.updates:
                run_dir = out / f'{bag.name}_crr{updates}'
                checkpoint = run_dir / 'final.pt'
                if not checkpoint.exists():
                    train_offline([bag], cfg, OfflineConfig(updates=updates, batch_size=128,
                                                            model_epochs=40, seed=seed),
                                  run_dir, env_id=ENV, progress=False, log=lambda s: None)
                ev = evaluate_checkpoint(checkpoint, episodes=EVAL_EPISODES, env_id=ENV,
                                         device='cpu', log=lambda s: None)
                row = {'seed': seed, 'base': ev.base.mean, 'loop': ev.loop.mean,
                       'loop_median': float(np.median(ev.loop.returns)),
                       'loop_returns': ev.loop.returns}
                results.setdefault(f'{episodes} episodes, {updates} CRR updates', []).append(row)
                print(f'{episodes:3d} episodes, {updates} updates, seed {seed}: CRR '
                      f'{row["base"]:8.1f}, LOOP {row["loop"]:8.1f} (median '
                      f'{row["loop_median"]:8.1f})', flush=True)
    print(f'\nrandom driving: mean {np.mean(random_returns):.1f}, median '
          f'{np.median(random_returns):.1f} ({EVAL_EPISODES} episodes)')
    threshold = np.median(random_returns) + 0.25 * abs(np.median(random_returns))
    for setting, rows in results.items():
        beats = sum(r['loop_median'] > threshold for r in rows)
        print(f'{setting}: CRR {statistics.mean(r["base"] for r in rows):.1f}, LOOP '
              f'{statistics.mean(r["loop"] for r in rows):.1f} (worst seed '
              f'{min(r["loop"] for r in rows):.1f}); LOOP median 25% better than random '
              f'driving\'s on {beats} of {len(rows)} seeds')
    (out / 'table.json').write_text(json.dumps(
        {'args': vars(args), 'random_returns': random_returns, 'results': results}, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
