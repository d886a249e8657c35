"""Learning benchmark: LOOP against SAC at the same step budget, measured in the same run.

Default: InvertedPendulum-v5, 5000 steps, seeds 0 1 2 (issue #2's target: LOOP's eval return
>= 900 for every seed, SAC lower). Each run is ``loop-ros train`` in a subprocess (so runs do
not share threads or state); the table gives final evaluation returns (ARC in eval mode for
LOOP, the actor for SAC) and wall times, then LOOP/SAC ratios.

Usage: ``python bench/learning.py [--env ID] [--steps N] [--seeds 0 1 2] [--algos loop sac]
[--jobs 6] [--threads 1] [--extra --device cuda]``. A run fails the whole benchmark loudly.
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def final_returns(out: Path) -> tuple[float, float]:
    rows = list(csv.DictReader((out / 'metrics.csv').open()))
    last = rows[-1]
    return float(last['eval_planner_return']), float(last['eval_actor_return'])


def train_run(env_id: str, algo: str, seed: int, steps: int, out: Path, threads: int,
              extra: list[str]) -> float:
    """``loop-ros train`` in a subprocess (runs share no threads or state); returns its wall
    time in seconds. A failed run raises with the tail of its output."""
    env = dict(os.environ, PYTHONPATH=str(REPO), MUJOCO_GL=os.environ.get('MUJOCO_GL', 'egl'))
    cmd = [sys.executable, '-m', 'loop_ros.cli', 'train', '--env', env_id, '--algo', algo,
           '--steps', str(steps), '--seed', str(seed), '--out', str(out),
           '--threads', str(threads), '--no-progress', *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f'{" ".join(cmd)} failed:\n{proc.stdout[-2000:]}'
                           f'{proc.stderr[-2000:]}')
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--env', default='InvertedPendulum-v5')
    parser.add_argument('--steps', type=int, default=5000)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--algos', nargs='+', default=['loop', 'sac'])
    parser.add_argument('--out', default='runs/bench_learning')
    parser.add_argument('--jobs', type=int, default=1,
                        help='runs at once (each a process; wall times are only comparable '
                        'between runs made with the same --jobs and --threads)')
    parser.add_argument('--threads', type=int, default=2, help='torch threads per run')
    parser.add_argument('--extra', nargs=argparse.REMAINDER, default=[],
                        help='further loop-ros train options, e.g. --extra --arc.horizon 5')
    args = parser.parse_args()
    runs = [(seed, algo) for seed in args.seeds for algo in args.algos]
    results: dict[str, list[tuple[int, float, float]]] = {a: [] for a in args.algos}

    def run(seed: int, algo: str) -> tuple[int, str, float, float, float]:
        out = Path(args.out) / f"{args.env.replace('/', '_')}-{algo}-{seed}"
        wall = train_run(args.env, algo, seed, args.steps, out, args.threads, args.extra)
        planner, actor = final_returns(out)
        return seed, algo, (actor if algo == 'sac' else planner), actor, wall

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for seed, algo, score, actor, wall in pool.map(lambda r: run(*r), runs):
            results[algo].append((seed, score, wall))
            print(f'{algo:10s} seed {seed}: eval return {score:8.1f} (actor alone {actor:8.1f})'
                  f'  wall {wall / 60:5.1f} min', flush=True)
    print(f'\n{args.env}, {args.steps} steps, seeds {args.seeds}')
    means = {}
    for algo, rows in results.items():
        scores = [r[1] for r in rows]
        means[algo] = statistics.mean(scores)
        print(f'{algo:10s} returns {[round(s, 1) for s in scores]} mean {means[algo]:.1f} '
              f'wall {statistics.mean(r[2] for r in rows) / 60:.1f} min/run')
    if 'loop' in means and 'sac' in means and means['sac'] != 0:
        print(f'ratio LOOP/SAC mean return: {means["loop"] / means["sac"]:.2f}x')
    return 0


if __name__ == '__main__':
    sys.exit(main())
