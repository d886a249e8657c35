"""Offline benchmark: the paper's Table 1 (LOOP on top of CRR) on datasets the project makes.

For every env and dataset kind: ``loop-ros dataset`` (SAC to a third of the expert's return,
seed ``--dataset-seed``), then per training seed ``loop-ros train-offline`` (ensemble + CRR) and
``loop-ros eval-offline`` (CRR's deterministic actor and LOOP-CRR on the same ``--episodes``
evaluation resets, seeds no dataset or training used). Every step is the real CLI in a
subprocess; finished outputs are reused, so an interrupted run resumes where it stopped. The
table (``table.md``, ``table.json`` in ``--out``) gives D4RL-normalised scores, mean and std
over seeds, and the improvement in percent of CRR's score.

Usage::

    python bench/offline.py [--envs Hopper-v5 HalfCheetah-v5 Walker2d-v5]
        [--kinds medium medium-replay] [--seeds 0 1 2] [--updates 15000] [--episodes 10]
        [--jobs 2] [--threads 1] [--out runs/bench_offline] [--extra-eval --arc.policy_noise 0.2]

A failed step fails the benchmark loudly (its log is in ``--out/logs``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--envs', nargs='+', default=['Hopper-v5', 'HalfCheetah-v5',
                                                      'Walker2d-v5'])
    parser.add_argument('--kinds', nargs='+', default=['medium', 'medium-replay'])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--dataset-seed', type=int, default=0)
    parser.add_argument('--updates', type=int, default=15000, help='CRR gradient steps')
    parser.add_argument('--model-epochs', type=int, default=40, help='ensemble epoch cap')
    parser.add_argument('--episodes', type=int, default=10, help='evaluation episodes per seed')
    parser.add_argument('--jobs', type=int, default=2, help='steps run at once')
    parser.add_argument('--threads', type=int, default=1, help='torch threads per step')
    parser.add_argument('--out', default='runs/bench_offline')
    parser.add_argument('--extra-dataset', nargs='*', default=[], help='loop-ros dataset options')
    parser.add_argument('--extra-train', nargs='*', default=[],
                        help='loop-ros train-offline options')
    parser.add_argument('--extra-eval', nargs='*', default=[], help='loop-ros eval-offline options')
    parser.add_argument('--eval-tag', default='',
                        help='evaluate into <run>/<tag>/ (and table-<tag>.md): a second set of '
                        'planner settings on the same checkpoints, e.g. with --extra-eval')
    args = parser.parse_args()
    out = Path(args.out).resolve()
    (out / 'logs').mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(REPO), MUJOCO_GL=os.environ.get('MUJOCO_GL', 'egl'),
               OMP_NUM_THREADS=str(args.threads))
    cli = [sys.executable, '-m', 'loop_ros.cli']
    threads = ['--threads', str(args.threads)]

    def bag(env_id: str, kind: str) -> Path:
        return out / 'datasets' / env_id / kind

    def run_dir(env_id: str, kind: str, seed: int) -> Path:
        return out / 'runs' / f'{env_id}-{kind}' / f'seed{seed}'

    def eval_dir(env_id: str, kind: str, seed: int) -> Path:
        return run_dir(env_id, kind, seed) / args.eval_tag

    def step(name: str, cmd: list[str], done: Path) -> str:
        if done.exists():
            return f'{name}: reused {done}'
        log = out / 'logs' / f'{name}.log'
        start = time.perf_counter()
        with log.open('w') as f:
            rc = subprocess.call(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)
        if rc != 0:
            raise RuntimeError(f'{name} failed (exit {rc}); see {log}')
        return f'{name}: {time.perf_counter() - start:.0f} s'

    def dataset(env_id: str) -> str:
        target = out / 'datasets' / env_id
        if len(args.kinds) == 1:   # one kind: --out is the bag itself
            target = bag(env_id, args.kinds[0])
        return step(f'dataset-{env_id}', [*cli, 'dataset', '--env', env_id, '--kind', *args.kinds,
                                          '--out', str(target), '--seed', str(args.dataset_seed),
                                          *threads, *args.extra_dataset],
                    bag(env_id, args.kinds[-1]) / 'metadata.yaml')

    def train_and_eval(env_id: str, kind: str, seed: int) -> str:
        run = run_dir(env_id, kind, seed)
        a = step(f'train-{env_id}-{kind}-{seed}',
                 [*cli, 'train-offline', '--bag', str(bag(env_id, kind)), '--out', str(run),
                  '--seed', str(seed), '--offline.updates', str(args.updates),
                  '--offline.model_epochs', str(args.model_epochs), '--no-progress', *threads,
                  *args.extra_train], run / 'final.pt')
        tag = f'-{args.eval_tag}' if args.eval_tag else ''
        b = step(f'eval{tag}-{env_id}-{kind}-{seed}',
                 [*cli, 'eval-offline', '--checkpoint', str(run / 'final.pt'), '--episodes',
                  str(args.episodes), '--out', str(eval_dir(env_id, kind, seed)), *threads,
                  *args.extra_eval], eval_dir(env_id, kind, seed) / 'eval.json')
        return f'{a}; {b}'

    start = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        pending: dict[Future, tuple[str, ...]] = {
            pool.submit(dataset, e): ('dataset', e) for e in args.envs}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                what = pending.pop(fut)
                print(fut.result(), flush=True)   # raises on a failed step
                if what[0] == 'dataset':
                    for kind in args.kinds:
                        for seed in args.seeds:
                            pending[pool.submit(train_and_eval, what[1], kind, seed)] = (
                                'run', what[1], kind, str(seed))

    from loop_ros.offline.evaluation import markdown_table
    rows = []
    for env_id in args.envs:
        for kind in args.kinds:
            evals = [json.loads((eval_dir(env_id, kind, s) / 'eval.json').read_text())
                     for s in args.seeds]
            rows += [_merge(env_id, kind, evals)]
    table = markdown_table(rows)
    name = f'table-{args.eval_tag}' if args.eval_tag else 'table'
    (out / f'{name}.md').write_text(table + '\n')
    (out / f'{name}.json').write_text(json.dumps({'rows': rows, 'args': vars(args)}, indent=2))
    print(table)
    print(f'total {time.perf_counter() - start:.0f} s; {out / name}.md')
    return 0


def _merge(env_id: str, kind: str, evals: list[dict]) -> dict:
    """One Table-1 row from the per-seed eval.json files (means over seeds)."""
    import numpy as np
    from loop_ros.offline.evaluation import improvement
    seed_rows = [e['rows'][0] for e in evals]
    base = [r['base'] for r in seed_rows]
    loop = [r['loop'] for r in seed_rows]
    return {'dataset': kind, 'env': env_id, 'seeds': len(seed_rows),
            'episodes': sum(r['episodes'] for r in seed_rows), 'score': seed_rows[0]['score'],
            'base': float(np.mean(base)), 'base_std': float(np.std(base)),
            'loop': float(np.mean(loop)), 'loop_std': float(np.std(loop)),
            'improvement_pct': improvement(float(np.mean(base)), float(np.mean(loop))),
            'base_return': float(np.mean([r['base_return'] for r in seed_rows])),
            'loop_return': float(np.mean([r['loop_return'] for r in seed_rows])),
            'plan_ms_median': float(np.median([r['plan_ms_median'] for r in seed_rows]))}


if __name__ == '__main__':
    sys.exit(main())
