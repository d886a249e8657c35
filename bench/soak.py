"""Soak test: the RC-car LOOP graph for N minutes at its control rate, watched from outside.

Starts ``loop-ros launch rccar`` (sim bridge, planner, learner as processes, real time, the
packaged ``config/rccar.yaml``) and an observer node, and reports after the run:

* **deadline-miss rate**: ``PlanStats.deadline_missed`` over the planner's ticks after warm-up
  (the actor's action was sent instead of the plan), and how many ticks were random exploration;
* **action rate**: actions received per second vs the control rate;
* **memory growth** of each node process: resident set size (``/proc/<pid>/status`` VmRSS)
  sampled every ``--sample-s``; growth = (last - first after warm-up) / first after warm-up;
* **dropped transitions**: at the end the bridge is told to stop after its current episode
  (``max_episodes``, a run-time parameter); the graph then shuts down cleanly and the
  transitions the bridge published (the sum of its ``episode_stats`` lengths) are compared
  with those the learner stored (``env_steps`` of the ``learner_state.pt`` it saves at
  shutdown), next to its rejected and the bridge's dropped counters.

Targets (issue #12): misses < 1%, memory growth < 5%, no transition dropped. Asserts nothing:
it prints a table and writes ``soak.json`` into ``--out``.

Usage::

    python bench/soak.py --minutes 10 --warmup-minutes 2 --out runs/soak
    python bench/soak.py --env loop_ros/RCCarCircle20Hz-v0 --out runs/soak_20hz   # 20 Hz
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from pathlib import Path
import platform
import sys
import tempfile
import threading
import time

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the source tree, as in `make bench`
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.parameter_client import AsyncParameterClient  # noqa: E402
from rclpy.signals import SignalHandlerOptions  # noqa: E402
import yaml  # noqa: E402

from loop_ros.core.checkpoint import load_checkpoint  # noqa: E402

from loop_ros.graph import node_specs  # noqa: E402
from loop_ros.launcher import find_share_dir, Launcher  # noqa: E402
from loop_ros.msg import Action, EpisodeStats, PlanStats, TrainStats  # noqa: E402
from loop_ros.ros import qos  # noqa: E402
from loop_ros.ros.runner import executor_kind  # noqa: E402


def rss_kib(pid: int) -> int | None:
    """Resident set size of a process in KiB (None once it is gone)."""
    try:
        for line in Path(f'/proc/{pid}/status').read_text().splitlines():
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_model() -> str:
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


class Observer:
    """Counts what the graph publishes; all callbacks run in the spin thread."""

    def __init__(self) -> None:
        self.node = rclpy.create_node('soak_observer')
        self.stats: list[tuple[float, bool, bool, float]] = []  # wall time, missed, random, ms
        self.actions: list[float] = []
        self.train: TrainStats | None = None
        self.diagnostics: dict[str, dict[str, str]] = {}
        self.episodes: list[EpisodeStats] = []
        self.node.create_subscription(EpisodeStats, 'episode_stats', self.episodes.append,
                                      qos.EPISODE_STATS)
        self.node.create_subscription(PlanStats, 'planner/plan_stats', self._on_stats,
                                      qos.STATS)
        self.node.create_subscription(Action, 'action', self._on_action, qos.ACTION)
        self.node.create_subscription(TrainStats, 'learner/train_stats', self._on_train,
                                      qos.STATS)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag,
                                      qos.DIAGNOSTICS)

    def _on_stats(self, msg: PlanStats) -> None:
        self.stats.append((time.monotonic(), bool(msg.deadline_missed), bool(msg.random_action),
                           float(msg.compute_time_ms)))

    def _on_action(self, msg: Action) -> None:
        self.actions.append(time.monotonic())

    def _on_train(self, msg: TrainStats) -> None:
        self.train = msg

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            self.diagnostics[status.name] = {kv.key: kv.value for kv in status.values}


def planner_parameter(specs: list, name: str) -> object:
    """The planner's ``name`` as the graph sets it: an inline parameter, else the params file's
    ``/**/planner`` section (as bench/node_overhead.py and bench/safe.py read it)."""
    planner = next(s for s in specs if s.name == 'planner')
    if name in planner.parameters:
        return planner.parameters[name]
    data = yaml.safe_load(Path(planner.params_files[-1]).read_text())
    return data['/**/planner']['ros__parameters'].get(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--minutes', type=float, default=10.0)
    parser.add_argument('--warmup-minutes', type=float, default=2.0,
                        help='left out of the rates and the memory baseline')
    parser.add_argument('--sample-s', type=float, default=10.0)
    parser.add_argument('--out', default='runs/soak')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--env', default='loop_ros/RCCarCircle-v0',
                        help='the rccar graph\'s env launch argument (loop_ros/RCCarCircle20Hz-v0: '
                        'the same task at 20 Hz)')
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = tempfile.mkdtemp(prefix='soak_ckpt_')
    specs = node_specs('rccar', {'checkpoint_dir': ckpt, 'seed': str(args.seed),
                                 'env': args.env}, find_share_dir())
    tick_on = planner_parameter(specs, 'tick_on')
    log = (out / 'graph.log').open('w')
    launcher = Launcher(specs, out=log, sigint_timeout=20.0)
    code: list[int] = []
    runner = threading.Thread(target=lambda: code.append(launcher.run()), daemon=True)
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    observer = Observer()
    executor = SingleThreadedExecutor()
    executor.add_node(observer.node)
    start = time.monotonic()
    runner.start()
    warm_end = start + 60.0 * args.warmup_minutes
    end = start + 60.0 * args.minutes
    memory: dict[str, list[tuple[float, int]]] = {}
    next_sample = warm_end
    try:
        while time.monotonic() < end and runner.is_alive():
            executor.spin_once(timeout_sec=0.05)
            now = time.monotonic()
            if now >= next_sample:
                for proc in launcher.procs:
                    if proc.popen is not None:
                        kib = rss_kib(proc.popen.pid)
                        if kib is not None:
                            memory.setdefault(proc.spec.label, []).append((now - start, kib))
                next_sample = now + args.sample_s
        stopped_at = time.monotonic()
        # stop the bridge after its current episode; the graph follows it down (a required
        # node) and the learner saves its state with every transition it received
        client = AsyncParameterClient(observer.node, 'sim_bridge')
        if client.wait_for_services(timeout_sec=10.0):
            client.set_parameters([Parameter('max_episodes',
                                             value=len(observer.episodes) + 1)])
        settle = time.monotonic() + 120.0
        while time.monotonic() < settle and runner.is_alive():
            executor.spin_once(timeout_sec=0.05)
        for _ in range(20):   # the last episode_stats
            executor.spin_once(timeout_sec=0.05)
    finally:
        launcher.request_shutdown()
        runner.join(timeout=90.0)
        executor.shutdown()
        observer.node.destroy_node()
        rclpy.shutdown()
        log.close()

    window = [(t, m, r, ms) for t, m, r, ms in observer.stats if warm_end <= t <= stopped_at]
    planned = [(t, m, ms) for t, m, r, ms in window if not r]
    misses = sum(m for _, m, _ in planned)
    plan_ms = [ms for _, _, ms in planned]
    actions = [t for t in observer.actions if warm_end <= t <= stopped_at]
    seconds = max(stopped_at - warm_end, 1e-9)
    bridge_diag = observer.diagnostics.get('sim_bridge: simulation', {})
    published = sum(int(e.length) for e in observer.episodes)
    try:
        stored = int(load_checkpoint(Path(ckpt) / 'learner_state.pt')['learner']['env_steps'])
    except Exception as exc:  # reported, not raised: the run's other numbers still count
        print(f'cannot read the learner state: {exc}', file=sys.stderr)
        stored = -1
    final_train = observer.train
    growth = {}
    for label, samples in memory.items():
        first, last = samples[0][1], samples[-1][1]
        growth[label] = {'rss_first_mib': first / 1024, 'rss_last_mib': last / 1024,
                         'growth': (last - first) / first, 'samples': len(samples)}
    result = {
        'command': 'python bench/soak.py ' + ' '.join(argv if argv is not None
                                                       else sys.argv[1:]),
        'date': dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds'),
        'machine': f'{os.cpu_count()} cores, {cpu_model()}',
        'minutes': args.minutes, 'warmup_minutes': args.warmup_minutes, 'seed': args.seed,
        'env': args.env, 'tick_on': tick_on,
        'executor': executor_kind(),
        'graph_exit_code': code[0] if code else None,
        'ticks_after_warmup': len(window),
        'random_ticks_after_warmup': len(window) - len(planned),
        'planned_ticks_after_warmup': len(planned),
        'deadline_misses': int(misses),
        'deadline_miss_rate': misses / len(planned) if planned else float('nan'),
        'tick_ms_p50': float(np.percentile(plan_ms, 50)) if plan_ms else None,
        'tick_ms_p99': float(np.percentile(plan_ms, 99)) if plan_ms else None,
        'action_rate_hz': len(actions) / seconds,
        'episodes': len(observer.episodes),
        'return_last_10_episodes': (float(sum(e.episode_return for e in observer.episodes[-10:])
                                          / len(observer.episodes[-10:]))
                                    if observer.episodes else None),
        'transitions_published': published,
        'transitions_stored_by_learner': stored,
        'learner_rejected': int(final_train.rejected_transitions) if final_train else None,
        'bridge_dropped': int(float(bridge_diag.get('dropped messages (total)', 0))),
        'dropped_transitions': published - stored if stored >= 0 else None,
        'memory': growth,
    }
    (out / 'soak.json').write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
