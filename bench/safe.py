"""Safe LOOP on the RC car (paper Fig. 6, issue #13): LOOP, safe LOOP, PETS-restricted, safePETS.

Every run is ``loop-ros train`` in a subprocess, by default on ``loop_ros/RCCarCircle-v0`` (cost:
1 per step outside the 1.2 m boundary; ``--env loop_ros/PointGoal1-v0`` and ``CarGoal1-v0``: 1 per
step inside a hazard). All four use the same planner and model sizes, read from the planner
section of ``config/rccar_safe.yaml`` (the RC-car graph's safe settings: H = 8, N = 64, ...); the
``--algo`` preset then switches the critic, the optimiser and the constraint (d0 = 0.2 for the
two safe ones, none for the others). Measured per run: the cumulative constraint violations
(steps outside the boundary) over training, the return of the training episodes, and the
evaluation return and cost (eval-mode planner, ``--eval-episodes`` episodes every
``--eval-every`` steps, reset seeds ``seed + 100 + step + i`` that training resets do not use).

Writes ``table.md``, ``table.json`` and ``curves.png`` (cumulative violations and evaluation
return against env steps, mean and range over seeds) under ``--out``; a run that exists there
(``metrics.csv`` written at its end) is not run again.

Usage: ``python bench/safe.py [--steps 5000] [--seeds 1 2 3] [--jobs 1] [--threads 1]``.
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml

from learning import REPO, train_run

ALGOS = ('loop', 'safe-loop', 'pets', 'safe-pets')
SIZE_FIELDS = {
    'arc': ('horizon', 'num_samples', 'num_actor_trajs', 'num_particles', 'num_iterations',
            'min_feasible', 'cost_discounted'),
    'ensemble': ('num_members', 'num_elites', 'hidden_size', 'num_layers'),
    'sac': ('hidden_sizes',),
}
"""What the four runs take from the params file: sizes and the safe-ARC rules, not the algorithm
(``arc.cost_limit``, ``arc.explore``, ``arc.value``, ``arc.optimizer`` come from ``--algo``)."""


def planner_options(params_file: Path) -> list[str]:
    """``--group.field value`` options for :data:`SIZE_FIELDS` of the planner node's section."""
    data = yaml.safe_load(params_file.read_text())
    params = data['/**/planner']['ros__parameters']
    options = []
    for group, names in SIZE_FIELDS.items():
        for name in names:
            value = params[group][name]
            if isinstance(value, list):
                value = ','.join(map(str, value))
            elif isinstance(value, bool):
                value = str(value).lower()
            options += [f'--{group}.{name}', str(value)]
    return options


def read_run(out: Path) -> dict:
    """Cumulative violations and returns of one finished run."""
    episodes = list(csv.DictReader((out / 'episodes.csv').open()))
    evals = list(csv.DictReader((out / 'metrics.csv').open()))
    steps = np.cumsum([int(e['length']) for e in episodes])
    costs = np.cumsum([float(e['cost']) for e in episodes])
    returns = [float(e['return']) for e in episodes]
    return {
        'episode_end_steps': steps.tolist(), 'cumulative_violations': costs.tolist(),
        'train_returns': returns,
        'eval_steps': [int(r['env_step']) for r in evals],
        'eval_returns': [float(r['eval_planner_return']) for r in evals],
        'eval_costs': [float(r['eval_planner_cost']) for r in evals],
    }


def violations_at(run: dict, step: int) -> float:
    """Cumulative violations at the last episode end at or before ``step``."""
    steps = np.asarray(run['episode_end_steps'])
    idx = np.searchsorted(steps, step, side='right') - 1
    return float(run['cumulative_violations'][idx]) if idx >= 0 else 0.0


def summarise(runs: dict[str, dict[int, dict]], start_steps: int) -> dict[str, dict]:
    table = {}
    for algo, by_seed in runs.items():
        total = [r['cumulative_violations'][-1] for r in by_seed.values()]
        after = [r['cumulative_violations'][-1] - violations_at(r, start_steps)
                 for r in by_seed.values()]
        final = [r['eval_returns'][-1] for r in by_seed.values()]
        final_cost = [r['eval_costs'][-1] for r in by_seed.values()]
        last_train = [statistics.mean(r['train_returns'][-10:]) for r in by_seed.values()]
        table[algo] = {'seeds': sorted(by_seed), 'violations': total,
                       'violations_after_random': after, 'final_eval_return': final,
                       'final_eval_cost': final_cost, 'last10_train_return': last_train}
    return table


def fmt(values: list[float]) -> str:
    return f'{statistics.mean(values):.1f} ± {statistics.pstdev(values):.1f}'


def write_table(table: dict[str, dict], path: Path, header: str) -> str:
    lines = [header, '',
             '| algo | violations in training | after the random steps | final eval return '
             '| final eval cost per episode | last 10 training episodes |',
             '|---|---|---|---|---|---|']
    for algo, row in table.items():
        lines.append(f"| {algo} | {fmt(row['violations'])} | "
                     f"{fmt(row['violations_after_random'])} | {fmt(row['final_eval_return'])} | "
                     f"{fmt(row['final_eval_cost'])} | {fmt(row['last10_train_return'])} |")
    lines.append('')
    lines.append('Per seed (violations in training / final eval return):')
    for algo, row in table.items():
        per = ', '.join(f'{s}: {v:.0f} / {r:.1f}' for s, v, r in
                        zip(row['seeds'], row['violations'], row['final_eval_return']))
        lines.append(f'- {algo}: {per}')
    text = '\n'.join(lines) + '\n'
    path.write_text(text)
    return text


def plot(runs: dict[str, dict[int, dict]], steps: int, env_id: str, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    grid = np.arange(0, steps + 1, 100)
    fig, (ax_v, ax_r) = plt.subplots(1, 2, figsize=(11, 4))
    for algo, by_seed in runs.items():
        curves = np.array([[violations_at(r, s) for s in grid] for r in by_seed.values()])
        line, = ax_v.plot(grid, curves.mean(0), label=algo)
        ax_v.fill_between(grid, curves.min(0), curves.max(0), alpha=0.2, color=line.get_color())
        eval_steps = next(iter(by_seed.values()))['eval_steps']
        rets = np.array([r['eval_returns'] for r in by_seed.values()])
        ax_r.plot(eval_steps, rets.mean(0), marker='o', label=algo, color=line.get_color())
        ax_r.fill_between(eval_steps, rets.min(0), rets.max(0), alpha=0.2,
                          color=line.get_color())
    ax_v.set(xlabel='env steps', ylabel="cumulative cost (sum of info['cost'])",
             title='constraint violations during training')
    ax_r.set(xlabel='env steps', ylabel='eval return (planner, eval mode)',
             title='evaluation return')
    for ax in (ax_v, ax_r):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f'{env_id}: mean and range over seeds {sorted(next(iter(runs.values())))}')
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--env', default='loop_ros/RCCarCircle-v0',
                        help='a gymnasium id whose task has a cost')
    parser.add_argument('--steps', type=int, default=5000)
    parser.add_argument('--seeds', type=int, nargs='+', default=[1, 2, 3])
    parser.add_argument('--algos', nargs='+', default=list(ALGOS), choices=ALGOS)
    parser.add_argument('--params-file', default=str(REPO / 'config' / 'rccar_safe.yaml'))
    parser.add_argument('--eval-every', type=int, default=1000)
    parser.add_argument('--eval-episodes', type=int, default=5)
    parser.add_argument('--out', default='runs/bench_safe')
    parser.add_argument('--jobs', type=int, default=1)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--extra', nargs=argparse.REMAINDER, default=[],
                        help='further loop-ros train options for every run, e.g. '
                        '--extra --ensemble.learn_cost true')
    args = parser.parse_args()
    options = planner_options(Path(args.params_file)) + [
        '--train.eval_every', str(args.eval_every),
        '--train.eval_episodes', str(args.eval_episodes), '--train.actor_eval_episodes', '0',
        *args.extra]
    out_root = Path(args.out)
    out_root.mkdir(parents=True, exist_ok=True)
    env_tag = args.env.replace('/', '_')

    def run(seed: int, algo: str) -> tuple[str, int]:
        out = out_root / f'{env_tag}-{algo}-{seed}'
        if not (out / 'metrics.csv').exists() or not (out / 'final.pt').exists():
            wall = train_run(args.env, algo, seed, args.steps, out, args.threads, options)
            print(f'{algo:10s} seed {seed}: {wall / 60:.1f} min', flush=True)
        return algo, seed

    jobs = [(seed, algo) for seed in args.seeds for algo in args.algos]
    runs: dict[str, dict[int, dict]] = {a: {} for a in args.algos}
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for algo, seed in pool.map(lambda j: run(*j), jobs):
            runs[algo][seed] = read_run(out_root / f'{env_tag}-{algo}-{seed}')
    from loop_ros.train import task_of
    start_steps = task_of(args.env, warn=False).start_steps
    table = summarise(runs, start_steps)
    header = (f'{args.env}, {args.steps} steps, seeds {args.seeds}, sizes from '
              f'{Path(args.params_file).name}; eval: {args.eval_episodes} episodes every '
              f'{args.eval_every} steps; the first {start_steps} steps are uniform random. '
              'mean ± std over seeds.')
    print(write_table(table, out_root / 'table.md', header))
    (out_root / 'table.json').write_text(json.dumps(
        {'args': vars(args), 'options': options, 'table': table, 'runs': runs}, indent=1))
    plot(runs, args.steps, args.env, out_root / 'curves.png')
    return 0


if __name__ == '__main__':
    sys.path.insert(0, str(REPO))
    sys.exit(main())
