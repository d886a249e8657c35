"""Shrink the RC car's boundary while it drives (issue #13): no retraining, a ROS parameter.

Starts the RC-car graph in deploy mode (sim bridge + planner, no learner) on a trained safe-LOOP
checkpoint with ``config/rccar_safe.yaml``, lets it drive ``--before-s`` simulated seconds
inside the 1.2 m boundary, then sets the planner's ``constraints.boundary_radius`` to
``--new-radius`` (1.0 m) through the parameter service, as an operator would with
``ros2 param set /planner constraints.boundary_radius 1.0``. The same checkpoint and sim seed
run twice: the ``shrink`` arm changes the parameter, the ``keep`` arm does not (the control).

Measured from the ``transition`` messages the sim bridge publishes (``next_obs[0]`` is the distance from
the 1 m circle, so the distance from the origin is ``1 + next_obs[0]``): the fraction of steps
outside the new radius before and after the change, in windows of simulated time after it, and
separately for the first second of each episode (a reset puts the car 0.75–1.25 m from the
origin, so some of those steps are outside 1.0 m whatever the planner does). The return of each
episode is reported too (the reward still asks for the 1 m circle).

Several ``--checkpoint`` files (e.g. the safe-loop runs of ``bench/safe.py``, one per training
seed) each run both arms. Writes ``shrink.json`` (summaries and the per-step traces) and
``shrink.png`` (the first checkpoint's arms) under ``--out``; asserts nothing.

Usage::

    python bench/boundary_shrink.py --checkpoint runs/bench_safe/*safe-loop*/final.pt \\
        --out runs/bench_shrink
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from pathlib import Path
import sys
import tempfile
import threading
import time

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the source tree, as in `make bench`
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.parameter_client import AsyncParameterClient  # noqa: E402
from rclpy.signals import SignalHandlerOptions  # noqa: E402

from loop_ros import graph  # noqa: E402
from loop_ros.graph import node_specs  # noqa: E402
from loop_ros.launcher import find_share_dir, Launcher  # noqa: E402
from loop_ros.msg import EpisodeStats, Transition  # noqa: E402
from loop_ros.ros import qos  # noqa: E402

from soak import cpu_model  # noqa: E402

EPISODE_START_STEPS = 10
"""Steps (1 s at the RC car's 0.1 s) counted as the start of an episode."""
WINDOWS_S = ((0.0, 1.0), (1.0, 3.0), (3.0, 5.0), (5.0, float('inf')))
"""Windows of simulated time after the change."""


def run_arm(args: argparse.Namespace, checkpoint: str, shrink: bool, out: Path) -> dict:
    """One launch of the graph; returns per-step (sim time, distance, episode step) rows, the
    simulated time of the change and the episode returns."""
    ckpt_dir = tempfile.mkdtemp(prefix='shrink_ckpt_')
    share = find_share_dir()
    params_file = args.params_file or os.path.join(share, 'config', 'rccar_safe.yaml')
    specs = node_specs('rccar', {'params_file': params_file, 'mode': 'deploy',
                                 'checkpoint': str(Path(checkpoint).resolve()),
                                 'checkpoint_dir': ckpt_dir, 'seed': str(args.seed)}, share)
    log = (out / f"graph_{Path(checkpoint).parent.name}_{'shrink' if shrink else 'keep'}.log"
           ).open('w')
    launcher = Launcher(specs, out=log, sigint_timeout=20.0)
    code: list[int] = []
    runner = threading.Thread(target=lambda: code.append(launcher.run()), daemon=True)
    node = rclpy.create_node('shrink_observer')
    rows: list[tuple[float, float, int]] = []
    episodes: list[float] = []
    node.create_subscription(
        Transition, graph.TRANSITION_TOPIC,
        lambda m: rows.append((m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec,
                               1.0 + float(m.next_obs[0]), int(m.step))), qos.TRANSITION)
    node.create_subscription(EpisodeStats, graph.EPISODE_STATS_TOPIC,
                             lambda m: episodes.append(float(m.episode_return)),
                             qos.EPISODE_STATS)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    runner.start()
    change_at = None
    deadline = time.monotonic() + args.timeout_s
    try:
        while runner.is_alive() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
            if not rows:
                continue
            now = rows[-1][0]
            if change_at is None and now - rows[0][0] >= args.before_s:
                change_at = now
                if shrink:
                    client = AsyncParameterClient(node, 'planner')
                    if not client.wait_for_services(timeout_sec=10.0):
                        raise RuntimeError('the planner has no parameter service')
                    future = client.set_parameters(
                        [Parameter('constraints.boundary_radius', value=args.new_radius)])
                    executor.spin_until_future_complete(future, timeout_sec=10.0)
                    result = future.result()
                    if result is None or not all(r.successful for r in result.results):
                        raise RuntimeError(f'the planner refused the new boundary: {result}')
                    change_at = rows[-1][0]   # the last step before the change was accepted
            if change_at is not None and now - change_at >= args.after_s:
                break
    finally:
        launcher.request_shutdown()
        runner.join(timeout=90.0)
        executor.shutdown()
        node.destroy_node()
        log.close()
    if change_at is None:
        raise RuntimeError(f'the graph stopped before the change (exit {code}); see {log.name}')
    return {'rows': rows, 'change_at': change_at, 'episode_returns': episodes}


def summarise(arm: dict, radius: float) -> dict:
    rows = np.array(arm['rows'])
    t, dist, step = rows[:, 0] - arm['change_at'], rows[:, 1], rows[:, 2]
    outside = dist > radius
    settled = step >= EPISODE_START_STEPS

    def rate(mask: np.ndarray) -> dict:
        return {'steps': int(mask.sum()),
                'outside_fraction': float(outside[mask].mean()) if mask.any() else None}

    result = {'before': rate(t <= 0), 'before_settled': rate((t <= 0) & settled),
              'after': rate(t > 0), 'after_episode_start': rate((t > 0) & ~settled)}
    for lo, hi in WINDOWS_S:
        result[f'after_{lo:g}-{hi:g}s_settled'] = rate((t > lo) & (t <= hi) & settled)
    result['max_distance_after_5s_settled'] = float(dist[(t > 5) & settled].max()) \
        if ((t > 5) & settled).any() else None
    result['episode_returns'] = arm['episode_returns']
    return result


def plot(arms: dict[str, dict], radius: float, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 3.5))
    for name, arm in arms.items():
        rows = np.array(arm['rows'])
        ax.plot(rows[:, 0] - arm['change_at'], rows[:, 1], lw=0.8, label=name)
    ax.axhline(1.2, color='grey', ls=':', label='1.2 m (trained)')
    ax.axhline(radius, color='red', ls='--', label=f'{radius} m (new)')
    ax.axvline(0.0, color='black', lw=0.8)
    ax.set_ylim(0.0, 3.0)
    ax.set(xlabel='simulated s after the change', ylabel='distance from the origin (m)',
           title='RC car, safe LOOP checkpoint: boundary shrunk through a ROS parameter')
    ax.legend(loc='upper right', fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--checkpoint', required=True, nargs='+',
                        help="safe-loop runs' final.pt (each runs both arms)")
    parser.add_argument('--params-file', default='', help="'' = the package's rccar_safe.yaml")
    parser.add_argument('--new-radius', type=float, default=1.0)
    parser.add_argument('--before-s', type=float, default=20.0)
    parser.add_argument('--after-s', type=float, default=40.0)
    parser.add_argument('--seed', type=int, default=7, help='sim bridge reset seed')
    parser.add_argument('--timeout-s', type=float, default=600.0)
    parser.add_argument('--out', default='runs/bench_shrink')
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    try:
        runs = {ckpt: {'shrink': run_arm(args, ckpt, True, out),
                       'keep': run_arm(args, ckpt, False, out)} for ckpt in args.checkpoint}
    finally:
        rclpy.shutdown()
    result = {
        'command': 'python bench/boundary_shrink.py ' + ' '.join(
            argv if argv is not None else sys.argv[1:]),
        'date': dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds'),
        'machine': f'{os.cpu_count()} cores, {cpu_model()}',
        'new_radius': args.new_radius,
        'checkpoints': {ckpt: {name: summarise(arm, args.new_radius) for name, arm in arms.items()}
                        for ckpt, arms in runs.items()},
        'traces': {ckpt: {name: {'change_at': arm['change_at'], 'rows': arm['rows']}
                          for name, arm in arms.items()} for ckpt, arms in runs.items()},
    }
    (out / 'shrink.json').write_text(json.dumps(result, indent=2))
    plot(next(iter(runs.values())), args.new_radius, out / 'shrink.png')
    for ckpt, arms in result['checkpoints'].items():
        for name, summary in arms.items():
            rates = {k: v['outside_fraction'] for k, v in summary.items()
                     if isinstance(v, dict) and k.startswith(('before', 'after'))}
            print(ckpt, name, json.dumps(rates))
    return 0


if __name__ == '__main__':
    sys.exit(main())
