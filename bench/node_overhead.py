"""Node overhead of the RC-car graph: observation->action latency less the plan's compute time.

Runs the demo graph (``loop-ros demo``: sim bridge, planner, learner as processes, real time,
``config/rccar.yaml``) for ``--minutes`` per run, once per arm and ``--repeats`` times, the arms
alternating so that drift in the machine hits all of them. An arm is
``EXECUTOR/TICK_ON[/niceN]``: the executor the nodes spin with (``LOOP_ROS_EXECUTOR``:
``events``, rclpy's EventsExecutor, one thread per node, the default; ``pooled``, loop_ros's
:class:`~loop_ros.ros.executor.PooledExecutor`; ``rclpy``, rclpy 9.1.2's
MultiThreadedExecutor), the planner's ``tick_on`` (``timer``: the control timer on ``/clock``;
``observation``: each observation starts the plan) and optionally the learner's ``nice``, the
last two set through a copy of the params file. The demo's monitor (in rclpy's EventsExecutor
whatever the arm) pairs each planned tick's ``PlanStats.compute_time_ms`` with the latency, seen
from outside, from the observation to the first action answering it (same stamp); the
difference is what the nodes and DDS add. Target (issue #14): <= 2 ms p99.

Usage::

    python bench/node_overhead.py --minutes 3 --repeats 2 --out runs/bench_node_overhead
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from pathlib import Path
import platform
import sys

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the source tree, as in `make bench`
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from loop_ros.demo import run_demo  # noqa: E402
from loop_ros.ros.runner import EXECUTOR_ENV, EXECUTOR_KINDS  # noqa: E402

KEYS = ('node_overhead_ms_p50', 'node_overhead_ms_p99', 'obs_to_action_ms_p50',
        'obs_to_action_ms_p99', 'plan_ms_p50', 'plan_ms_p99', 'node_overhead_ticks',
        'deadline_misses', 'eval_return')


ARMS = ('events/observation', 'pooled/observation', 'rclpy/timer')
CONFIG = Path(__file__).resolve().parents[1] / 'config' / 'rccar.yaml'


def params_file(out: Path, tick_on: str, learner_nice: int | None) -> str:
    """config/rccar.yaml with the planner's ``tick_on`` (and the learner's ``nice``) set."""
    params = yaml.safe_load(CONFIG.read_text())
    params['/**/planner']['ros__parameters']['tick_on'] = tick_on
    name = f'rccar_tick_on_{tick_on}'
    if learner_nice is not None:
        params['/**/learner']['ros__parameters']['nice'] = learner_nice
        name += f'_nice{learner_nice}'
    path = out / f'{name}.yaml'
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return str(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--minutes', type=float, default=3.0, help='wall minutes per run')
    parser.add_argument('--repeats', type=int, default=2, help='runs per arm')
    parser.add_argument('--arms', nargs='+', default=list(ARMS),
                        help='EXECUTOR/TICK_ON[/niceN]: executor events|pooled|rclpy, tick_on '
                        "timer|observation, N the learner's nice (default: config/rccar.yaml's)")
    parser.add_argument('--out', default='runs/bench_node_overhead')
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    arms = []
    for arm in args.arms:
        kind, tick_on, *rest = arm.split('/')
        nice = rest[0].removeprefix('nice') if len(rest) == 1 else ''
        if (kind not in EXECUTOR_KINDS or tick_on not in ('timer', 'observation') or len(rest) > 1
                or (rest and not nice.isdigit())):
            parser.error(f'arm {arm!r}: expected EXECUTOR/TICK_ON[/niceN], EXECUTOR one of '
                         f'{", ".join(EXECUTOR_KINDS)}, TICK_ON timer or observation, N the '
                         "learner's nice")
        arms.append((arm, kind, params_file(out, tick_on, int(nice) if rest else None)))
    runs: list[dict] = []
    for repeat in range(args.repeats):
        for arm, kind, params in arms:   # alternate, so drift in the machine hits every arm
            run_dir = out / f'{arm.replace("/", "_")}_{repeat}'
            os.environ[EXECUTOR_ENV] = kind   # the launcher's node processes inherit it
            code = run_demo(str(run_dir), minutes=args.minutes,
                            extra_args={'params_file': params})
            summary = json.loads((run_dir / 'summary.json').read_text())
            runs.append({'arm': arm, 'repeat': repeat, 'exit_code': code,
                         **{k: summary.get(k) for k in KEYS}})
            print(json.dumps(runs[-1]), flush=True)
    os.environ.pop(EXECUTOR_ENV, None)
    lines = [f'# node overhead, {dt.date.today()}, {platform.node()}, {os.cpu_count()} cores, '
             f'{args.minutes:g} min per run, {args.repeats} runs per arm', '',
             '| executor / tick_on | overhead p50 / p99 (ms) | obs->action p50 / p99 (ms) | '
             'plan p50 / p99 (ms) | paired ticks | deadline misses |', '|---|---|---|---|---|---|']
    for arm, _, _ in arms:
        mine = [r for r in runs if r['arm'] == arm]

        def mean(key: str) -> float:
            return float(np.mean([r[key] for r in mine]))

        lines.append(f'| {arm} | {mean("node_overhead_ms_p50"):.1f} / '
                     f'{mean("node_overhead_ms_p99"):.1f} | {mean("obs_to_action_ms_p50"):.1f} / '
                     f'{mean("obs_to_action_ms_p99"):.1f} | {mean("plan_ms_p50"):.1f} / '
                     f'{mean("plan_ms_p99"):.1f} | {sum(r["node_overhead_ticks"] for r in mine)} '
                     f'| {sum(r["deadline_misses"] for r in mine)} |')
    lines.append('')
    lines.append('Means over runs of each run\'s percentile. Per run: ' + '; '.join(
        f'{r["arm"]} #{r["repeat"]}: overhead {r["node_overhead_ms_p50"]:.1f} / '
        f'{r["node_overhead_ms_p99"]:.1f} ms' for r in runs))
    table = '\n'.join(lines)
    (out / 'table.md').write_text(table + '\n')
    (out / 'runs.json').write_text(json.dumps(runs, indent=2))
    print(table)
    return 0 if all(r['exit_code'] == 0 for r in runs) else 1


if __name__ == '__main__':
    sys.exit(main())
