"""Learning benchmark (the paper's Fig. 3): LOOP, PETS-restricted, our SAC and SB3's SAC at one
step budget and one evaluation protocol.

Each run is ``loop-ros train`` in a subprocess (runs share no threads or state); ``sb3`` runs
``bench/sb3_sac.py`` in the peers venv (``--peers-python``), stable-baselines3's SAC under our SAC
settings. Every arm is evaluated the same way: every ``--eval-every`` steps and at the end,
``--eval-episodes`` episodes on reset seeds ``seed + 100 + step (+ 50 for the actor) + i`` that
no training run resets with; LOOP both as the planner (ARC in eval mode) and as its actor alone.
Finished runs (a ``metrics.csv`` that reached ``--steps``) are reused, so an interrupted run
resumes. Writes ``table.md`` / ``table.json`` (mean ± std over seeds at every evaluation) and
``curves.png`` into ``--out``, and prints the ratio of LOOP's planner to our SAC at the budget.

Usage: ``python bench/learning.py [--env ID] [--steps N] [--seeds 0 1 2]
[--algos loop pets sac sb3] [--eval-every N] [--eval-episodes K] [--jobs 6] [--threads 1]
[--extra --arc.rollout mean]``. ``--extra`` goes to every ``loop-ros train`` run. A failed run
fails the whole benchmark loudly.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


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


# arm -> (run algo, metrics column): LOOP and PETS as planners, the SAC arms as actors
ARMS = {'loop': ('loop', 'eval_planner_return'), 'loop actor': ('loop', 'eval_actor_return'),
        'pets': ('pets', 'eval_planner_return'), 'sac': ('sac', 'eval_actor_return'),
        'sb3': ('sb3', 'eval_actor_return')}


def sb3_run(python: str, env_id: str, seed: int, steps: int, out: Path, threads: int,
            eval_every: int, eval_episodes: int) -> float:
    """``bench/sb3_sac.py`` in the peers venv; returns its wall time in seconds."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS=str(threads))
    cmd = [python, str(REPO / 'bench' / 'sb3_sac.py'), '--env', env_id, '--steps', str(steps),
           '--seed', str(seed), '--out', str(out), '--threads', str(threads),
           '--eval-every', str(eval_every), '--eval-episodes', str(eval_episodes)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f'{" ".join(cmd)} failed:\n{proc.stdout[-2000:]}'
                           f'{proc.stderr[-2000:]}')
    return time.perf_counter() - t0


def read_curve(out: Path, column: str) -> dict[int, float]:
    """env_step -> the column's value, from a run's metrics.csv (NaN rows dropped)."""
    curve = {}
    for row in csv.DictReader((out / 'metrics.csv').open()):
        value = float(row.get(column) or 'nan')
        if not math.isnan(value):
            curve[int(row['env_step'])] = value
    return curve


def finished(out: Path, steps: int) -> bool:
    path = out / 'metrics.csv'
    if not path.exists():
        return False
    rows = list(csv.DictReader(path.open()))
    return bool(rows) and int(rows[-1]['env_step']) == steps


def summarise(curves: dict[str, dict[int, dict[int, float]]]) -> dict[str, dict[int, list]]:
    """arm -> env_step -> [mean, std over seeds, n, per-seed values] at steps every seed has."""
    table: dict[str, dict[int, list]] = {}
    for arm, by_seed in curves.items():
        if not by_seed:
            continue
        steps = sorted(set.intersection(*(set(c) for c in by_seed.values())))
        table[arm] = {}
        for step in steps:
            values = [by_seed[s][step] for s in sorted(by_seed)]
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            table[arm][step] = [statistics.mean(values), std, len(values), values]
    return table


def write_table(table: dict[str, dict[int, list]], header: str, path: Path) -> str:
    steps = sorted({s for rows in table.values() for s in rows})
    lines = [header, '', '| arm | ' + ' | '.join(f'{s} steps' for s in steps) + ' |',
             '|---|' + '---|' * len(steps)]
    for arm, rows in table.items():
        cells = [f'{rows[s][0]:.1f} ± {rows[s][1]:.1f}' if s in rows else '' for s in steps]
        lines.append(f'| {arm} | ' + ' | '.join(cells) + ' |')
    lines += ['', 'per seed (in seed order):']
    for arm, rows in table.items():
        last = max(rows)
        lines.append(f'* {arm} at {last}: ' + ', '.join(f'{v:.1f}' for v in rows[last][3]))
    text = '\n'.join(lines) + '\n'
    path.write_text(text)
    return text


def plot(table: dict[str, dict[int, list]], title: str, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for arm, rows in table.items():
        steps = sorted(rows)
        mean = np.array([rows[s][0] for s in steps])
        std = np.array([rows[s][1] for s in steps])
        ax.plot(steps, mean, marker='o', label=arm, linestyle='--' if arm == 'loop actor' else '-')
        ax.fill_between(steps, mean - std, mean + std, alpha=0.15)
    ax.set(xlabel='env steps', ylabel='eval return', title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--env', default='InvertedPendulum-v5')
    parser.add_argument('--steps', type=int, default=5000)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--algos', nargs='+', default=['loop', 'sac'],
                        choices=['loop', 'pets', 'sac', 'sb3'])
    parser.add_argument('--eval-every', type=int, default=0,
                        help='evaluate every this many steps (0: only at the end)')
    parser.add_argument('--eval-episodes', type=int, default=5,
                        help='episodes per evaluation, planner and actor alike')
    parser.add_argument('--peers-python', default=str(REPO / '.venv-peers' / 'bin' / 'python'),
                        help='the python with stable-baselines3 (for --algos sb3)')
    parser.add_argument('--out', default='runs/bench_learning')
    parser.add_argument('--jobs', type=int, default=1,
                        help='runs at once (each a process; wall times are only comparable '
                        'between runs made with the same --jobs and --threads)')
    parser.add_argument('--threads', type=int, default=2, help='torch threads per run')
    parser.add_argument('--extra', nargs=argparse.REMAINDER, default=[],
                        help='further loop-ros train options, e.g. --extra --arc.horizon 5')
    args = parser.parse_args()
    if 'sb3' in args.algos and not Path(args.peers_python).exists():
        parser.error(f'--algos sb3 needs stable-baselines3 in {args.peers_python} '
                     '(the recipe is in bench/learner_speed.py)')
    protocol = ['--train.eval_every', str(args.eval_every),
                '--train.eval_episodes', str(args.eval_episodes),
                '--train.actor_eval_episodes', str(args.eval_episodes)]
    out_root = Path(args.out)
    out_root.mkdir(parents=True, exist_ok=True)
    env_tag = args.env.replace('/', '_')

    def run(seed: int, algo: str) -> tuple[int, str, float]:
        out = out_root / f'{env_tag}-{algo}-{seed}'
        if finished(out, args.steps):
            return seed, algo, float('nan')
        if algo == 'sb3':
            wall = sb3_run(args.peers_python, args.env, seed, args.steps, out, args.threads,
                           args.eval_every, args.eval_episodes)
        else:
            wall = train_run(args.env, algo, seed, args.steps, out, args.threads,
                             protocol + args.extra)
        return seed, algo, wall

    runs = [(seed, algo) for seed in args.seeds for algo in args.algos]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for seed, algo, wall in pool.map(lambda r: run(*r), runs):
            done = 'reused' if math.isnan(wall) else f'{wall / 60:.1f} min'
            print(f'{algo:5s} seed {seed}: {done}', flush=True)
    curves = {arm: {seed: read_curve(out_root / f'{env_tag}-{algo}-{seed}', column)
                    for seed in args.seeds}
              for arm, (algo, column) in ARMS.items() if algo in args.algos}
    table = summarise(curves)
    header = (f'{args.env}, {args.steps} steps, seeds {args.seeds}; eval: {args.eval_episodes} '
              f'episodes per arm every {args.eval_every or args.steps} steps on unused reset '
              f'seeds; mean ± std over seeds. loop-ros train options: '
              f'{" ".join(args.extra) or "(none)"}')
    print(write_table(table, header, out_root / 'table.md'))
    (out_root / 'table.json').write_text(json.dumps({'args': vars(args), 'table': table},
                                                    indent=1))
    plot(table, f'{args.env}: mean ± std over seeds {args.seeds}', out_root / 'curves.png')
    last = args.steps
    if 'loop' in table and 'sac' in table and table['sac'][last][0] != 0:
        print(f'LOOP (planner) / our SAC at {last} steps: '
              f'{table["loop"][last][0] / table["sac"][last][0]:.2f}x')
    if 'sac' in table and 'sb3' in table:
        ours, sb3 = table['sac'][last], table['sb3'][last]
        print(f'our SAC - SB3 SAC at {last} steps: {ours[0] - sb3[0]:+.1f} '
              f'(std over seeds {ours[1]:.1f} / {sb3[1]:.1f})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
