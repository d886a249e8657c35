"""``make demo`` / ``loop-ros demo``: the RC-car LOOP graph learning live.

Starts the ``rccar`` graph (sim bridge, lifecycle ARC planner, learner) with the package's own
launcher, each node a separate process talking over Fast DDS (loopback only), and watches it
from an in-process monitor node: a progress line shows episode returns, the planner's compute
time and the policy version. At the end it stops the graph cleanly and writes to ``--out``:

* ``learning_curve.png``: training-episode returns over time, with the final evaluation;
* ``episode.gif`` / ``episode.png``: top-down rendering of the last finished episode (odometry);
* ``summary.json``: final eval return of the learned planner (ARC, eval mode, from the newest
  checkpoint) next to a random policy's, planner p50/p99 compute time, observation->action
  latency and the node overhead (that latency less the tick's compute time, planned ticks
  paired by the observation's stamp), deadline misses, episodes, wall time;
* ``launch.log``: the nodes' output.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

DEMO_GRAPH = 'rccar'
DEMO_ENV = 'loop_ros/RCCarCircle-v0'
DEFAULT_MINUTES = 12.0
STOP_TIMEOUT_S = 15.0
"""How long the nodes get after SIGINT before SIGTERM: the learner (at nice 5) writes its whole
state on the way out; on the 2-core machine with two benchmark jobs beside the demo, that and
the process's exit once took longer than the launcher's default 5 s (exit code 143)."""


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float('nan')


class Monitor:
    """In-process rclpy node recording what the graph publishes (no math, just bookkeeping)."""

    def __init__(self) -> None:
        import rclpy
        from nav_msgs.msg import Odometry

        from loop_ros.msg import Action, EpisodeStats, Observation, PlanStats, PolicyUpdate
        from loop_ros.ros import qos

        self.node = rclpy.create_node('demo_monitor')
        self.episodes: list[dict[str, float]] = []
        self.compute_ms: list[float] = []  # planned ticks only (random exploration takes ~0)
        self.latency_ms: list[float] = []
        self.overhead_ms: list[float] = []  # obs->action latency less the tick's compute time
        self._latency_by_stamp: dict[int, float] = {}
        self._compute_by_stamp: dict[int, float] = {}
        self.deadline_misses = 0
        self.random_actions = 0
        self.policy_version = 0
        self.env_steps = 0
        self._obs_wall: dict[int, float] = {}
        self._odom: list[tuple[float, ...]] = []
        self.last_episode_states: np.ndarray | None = None
        self.start = time.monotonic()
        n = self.node
        n.create_subscription(EpisodeStats, 'episode_stats', self._on_episode, qos.EPISODE_STATS)
        n.create_subscription(PlanStats, 'planner/plan_stats', self._on_plan, qos.STATS)
        n.create_subscription(Observation, 'observation', self._on_obs, qos.OBSERVATION)
        n.create_subscription(Action, 'action', self._on_action, qos.ACTION)
        n.create_subscription(Odometry, 'odom', self._on_odom, qos.ODOMETRY)
        n.create_subscription(PolicyUpdate, 'policy_update', self._on_update, qos.POLICY_UPDATE)

    @staticmethod
    def _ns(stamp: Any) -> int:
        return stamp.sec * 1_000_000_000 + stamp.nanosec

    def _on_episode(self, msg: Any) -> None:
        self.episodes.append({'wall_s': time.monotonic() - self.start,
                              'return': msg.episode_return, 'cost': msg.episode_cost,
                              'length': msg.length})
        if len(self._odom) > 2:
            self.last_episode_states = np.array(self._odom)
        self._odom = []

    def _on_plan(self, msg: Any) -> None:
        if not msg.random_action:
            self.compute_ms.append(msg.compute_time_ms)
            self._pair(self._compute_by_stamp, self._latency_by_stamp,
                       self._ns(msg.header.stamp), msg.compute_time_ms, compute_first=True)
        self.deadline_misses += int(msg.deadline_missed)
        self.random_actions += int(msg.random_action)

    def _on_obs(self, msg: Any) -> None:
        self._obs_wall[self._ns(msg.header.stamp)] = time.monotonic()
        if len(self._obs_wall) > 200:
            self._obs_wall.pop(next(iter(self._obs_wall)))

    def _on_action(self, msg: Any) -> None:
        stamp = self._ns(msg.header.stamp)
        sent = self._obs_wall.pop(stamp, None)   # the first action answering an observation
        if sent is not None:
            latency = (time.monotonic() - sent) * 1e3
            self.latency_ms.append(latency)
            self._pair(self._latency_by_stamp, self._compute_by_stamp, stamp, latency,
                       compute_first=False)

    def _pair(self, mine: dict[int, float], other: dict[int, float], stamp: int, value: float,
              compute_first: bool) -> None:
        """Match a tick's compute time and its action's latency by the observation's stamp
        (either message may come first); their difference is the node overhead."""
        if stamp in other:
            partner = other.pop(stamp)
            latency, compute = (partner, value) if compute_first else (value, partner)
            self.overhead_ms.append(latency - compute)
            return
        mine[stamp] = value
        if len(mine) > 200:
            mine.pop(next(iter(mine)))

    def _on_odom(self, msg: Any) -> None:
        p, q, t = msg.pose.pose.position, msg.pose.pose.orientation, msg.twist.twist
        yaw = 2.0 * np.arctan2(q.z, q.w)
        self._odom.append((p.x, p.y, yaw, t.linear.x, t.linear.y, t.angular.z))

    def _on_update(self, msg: Any) -> None:
        self.policy_version = msg.version
        self.env_steps = msg.env_steps


def final_evaluation(checkpoint_dir: Path, episodes: int = 5, seed: int = 1000
                     ) -> dict[str, float]:
    """ARC (eval mode) from the newest checkpoint vs uniform random, on the same seeds."""
    from loop_ros.core.agent import LoopPolicy
    from loop_ros.core.checkpoint import latest_checkpoint, load_checkpoint
    from loop_ros.core.config import LoopConfig, from_dict
    from loop_ros.core.tasks import get_task
    from loop_ros.envs import make_env
    from loop_ros.train import run_episode

    env = make_env(DEMO_ENV)
    rng = np.random.default_rng(seed)
    random_returns = [run_episode(env, lambda o: rng.uniform(-1, 1, 2).astype(np.float32),
                                  seed + i)[0] for i in range(episodes)]
    result = {'random_return': float(np.mean(random_returns)), 'eval_return': float('nan')}
    newest = latest_checkpoint(checkpoint_dir, 'policy_*.pt')
    if newest is not None:
        state = load_checkpoint(newest)
        policy = LoopPolicy(from_dict(LoopConfig, state['config']), state['obs_dim'],
                            state['act_dim'], get_task(DEMO_ENV))
        policy.load_policy_state(state)
        returns = [run_episode(env, lambda o: policy.act(o, explore=False)[0], seed + i,
                               on_reset=policy.reset)[0] for i in range(episodes)]
        result.update(eval_return=float(np.mean(returns)), checkpoint=str(newest),
                      checkpoint_env_steps=int(state['env_steps']))
    env.close()
    return result


def plot(monitor: Monitor, summary: dict[str, Any], out: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    if monitor.episodes:
        minutes = [e['wall_s'] / 60 for e in monitor.episodes]
        returns = [e['return'] for e in monitor.episodes]
        ax.plot(minutes, returns, '.', color='0.6', label='training episodes')
        k = 5
        if len(returns) >= k:
            smooth = np.convolve(returns, np.ones(k) / k, mode='valid')
            ax.plot(minutes[k - 1:], smooth, '-', label=f'mean of {k}')
    end = (time.monotonic() - monitor.start) / 60
    for key, label, style in (('eval_return', 'final eval (ARC)', 'g*'),
                              ('random_return', 'random policy', 'rx')):
        if np.isfinite(summary.get(key, np.nan)):
            ax.plot([end], [summary[key]], style, markersize=12, label=label)
    ax.set_xlabel('wall time (min)')
    ax.set_ylabel('episode return')
    ax.set_title('LOOP on the RC car (ROS 2 graph, live)')
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / 'learning_curve.png')
    plt.close(fig)


def run_demo(out: str = 'runs/demo', steps: int | None = None, minutes: float | None = None,
             extra_args: dict[str, str] | None = None) -> int:
    """Run the graph for ``minutes`` (or until ``steps`` env steps), then evaluate and report."""
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    import rclpy
    from rclpy.experimental import EventsExecutor
    from tqdm import tqdm

    from loop_ros.graph import node_specs
    from loop_ros.launcher import find_share_dir, Launcher
    from loop_ros.ros.runner import StopRequest

    out_dir = Path(out).resolve()
    ckpt_dir = out_dir / 'checkpoints'
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    for old in ckpt_dir.glob('policy_*.pt'):
        old.unlink()  # a fresh run: the planner must not start from an old demo's weights
    budget_s = 60.0 * (minutes if minutes is not None else DEFAULT_MINUTES)
    args = {'checkpoint_dir': str(ckpt_dir), **(extra_args or {})}
    log = (out_dir / 'launch.log').open('w')
    launcher = Launcher(node_specs(DEMO_GRAPH, args, find_share_dir()), out=log,
                        sigint_timeout=STOP_TIMEOUT_S)
    code: list[int] = []
    runner = threading.Thread(target=lambda: code.append(launcher.run()), daemon=True)
    rclpy.init()
    monitor = Monitor()
    # the monitor's receive times come without a Python wait set, whatever executor the nodes
    # spin with (bench/node_overhead.py compares those)
    executor = EventsExecutor()
    executor.add_node(monitor.node)
    runner.start()
    bar = tqdm(total=int(budget_s), unit='s', desc='RC car (LOOP graph)', dynamic_ncols=True,
               bar_format='{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} s {postfix}')
    interactive = sys.stderr.isatty()
    shown = -1
    # Ctrl-C is a stop request, not a KeyboardInterrupt inside rclpy's message take
    with StopRequest() as stop:
        try:
            while runner.is_alive() and not stop.requested:
                executor.spin_once(timeout_sec=0.2)
                elapsed = time.monotonic() - monitor.start
                second = int(elapsed)
                done_steps = (steps is not None
                              and sum(e['length'] for e in monitor.episodes) >= steps)
                finished = elapsed >= budget_s or done_steps
                if finished or (second != shown and (interactive or second % 30 == 0)):
                    shown = second
                    bar.n = min(second, bar.total)
                    recent = [e['return'] for e in monitor.episodes[-5:]]
                    mean_recent = np.mean(recent) if recent else float('nan')
                    bar.set_postfix_str(
                        f'ep {len(monitor.episodes)} | return {mean_recent:.1f} | plan p50 '
                        f'{percentile(monitor.compute_ms[-100:], 50):.0f} ms | policy '
                        f'v{monitor.policy_version} ({monitor.env_steps} steps)', refresh=False)
                    bar.refresh()
                if finished:
                    break
        except KeyboardInterrupt:
            pass
        finally:
            bar.close()
            launcher.request_shutdown()
            runner.join(timeout=30.0)
            executor.shutdown()
            monitor.node.destroy_node()
            rclpy.shutdown()
            log.close()
    wall = time.monotonic() - monitor.start
    print('graph stopped; evaluating the final checkpoint ...', flush=True)
    summary: dict[str, Any] = final_evaluation(ckpt_dir)
    summary.update({
        'wall_s': round(wall, 1), 'episodes': len(monitor.episodes),
        'env_steps': int(sum(e['length'] for e in monitor.episodes)),
        'last5_training_return': float(np.mean([e['return'] for e in monitor.episodes[-5:]]))
        if monitor.episodes else float('nan'),
        'plan_ms_p50': percentile(monitor.compute_ms, 50),
        'plan_ms_p99': percentile(monitor.compute_ms, 99),
        'obs_to_action_ms_p50': percentile(monitor.latency_ms, 50),
        'obs_to_action_ms_p99': percentile(monitor.latency_ms, 99),
        'node_overhead_ms_p50': percentile(monitor.overhead_ms, 50),
        'node_overhead_ms_p99': percentile(monitor.overhead_ms, 99),
        'node_overhead_ticks': len(monitor.overhead_ms),
        'deadline_misses': monitor.deadline_misses,
        'planner_ticks': len(monitor.compute_ms) + monitor.random_actions,
        'random_actions': monitor.random_actions,
        'launcher_exit_code': code[0] if code else None,
    })
    (out_dir / 'summary.json').write_text(json.dumps(summary, indent=2))
    plot(monitor, summary, out_dir)
    if monitor.last_episode_states is not None:
        from loop_ros.sim.render import render_episode
        for suffix in ('gif', 'png'):
            render_episode(monitor.last_episode_states, out_dir / f'episode.{suffix}',
                           title=f'last training episode (policy v{monitor.policy_version})',
                           dt=0.1)
    print(f"final eval return (ARC, eval mode): {summary['eval_return']:.1f} vs random "
          f"{summary['random_return']:.1f}; {summary['episodes']} episodes in "
          f"{wall / 60:.1f} min; plan p50/p99 {summary['plan_ms_p50']:.0f}/"
          f"{summary['plan_ms_p99']:.0f} ms; obs->action p50/p99 "
          f"{summary['obs_to_action_ms_p50']:.0f}/{summary['obs_to_action_ms_p99']:.0f} ms; "
          f'outputs in {out_dir}')
    if code and code[0] != 0:
        print(f'launcher exited with code {code[0]} (see {out_dir / "launch.log"})')
        return code[0]
    return 0
