"""``learner``: SAC and the ensemble trained from logged transitions; weights to the planner(s).

* Subscribes to ``transition`` (reliable, depth >= 1000: nothing is dropped silently; a
  malformed transition is rejected with a throttled warning and counted). With several robots
  the bridges publish on one shared topic; ``source`` (the producer) keeps each robot's
  successor chain apart in the replay buffer (SARSA next actions).
* A training thread does bounded work every ``tick_period_s`` of wall time (``LoopLearner.train``:
  a due model retrain, then at most ``updates_per_tick`` SAC steps). The subscription callback
  only validates and queues, so transitions keep arriving while a retrain runs for seconds.
* Every ``checkpoint_every_steps`` transitions, after each model retrain, and when exploration
  ends, it writes ``policy_<version>.pt`` atomically into ``checkpoint_dir`` and announces it on
  ``policy_update`` (latched), with ``explore = env_steps < start_steps``: the planners act
  uniformly at random until the learner has that many transitions. The newest few checkpoints
  are kept.
* ``~/train_stats`` (loop_ros/TrainStats) after every tick: transitions stored and rejected, SAC
  updates done and due, model and policy versions, holdout MSE, tick time.
* ``replay_bags``: Transition bags read into the replay buffer at start-up, before any live
  transition (``loop_ros.io.replay``). They count as environment steps (toward
  ``start_steps`` too), and the planners keep exploring until the model has been retrained on
  them and that checkpoint announced. A bad bag, or one whose sizes differ from the task's, is
  a configuration error (exit code 1, the log names the bag).
"""
from __future__ import annotations

from collections import deque
import math
import threading
import time
from pathlib import Path
from typing import Any

from rclpy.node import Node

from loop_ros import graph
from loop_ros.core.agent import LoopLearner
from loop_ros.core.agent import resolve_device
from loop_ros.core.agent import seed_everything
from loop_ros.core.checkpoint import save_checkpoint
from loop_ros.core.config import ConfigError
from loop_ros.core.config import LoopConfig
from loop_ros.core.node_config import LearnerNodeConfig
from loop_ros.core.tasks import get_task
from loop_ros.io.replay import load_replay_bags
from loop_ros.io.replay import seed_learner
from loop_ros.msg import PolicyUpdate
from loop_ros.msg import TrainStats
from loop_ros.msg import Transition
from loop_ros.nodes.planner_node import CHECKPOINT_KIND
from loop_ros.nodes.planner_node import declare_node_parameters
from loop_ros.nodes.planner_node import env_spec
from loop_ros.ros import qos
from loop_ros.ros.conversions import stream_key
from loop_ros.ros.conversions import transition_from_msg
from loop_ros.ros.conversions import TransitionArrays
from loop_ros.ros.params import read_config
from loop_ros.ros.runner import run_node

KEEP_CHECKPOINTS = 3


class LearnerNode(Node):
    """Fills the replay buffer, trains on the reference schedule, publishes checkpoints."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('learner', **kwargs)
        declare_node_parameters(self, 'learner')
        self.cfg = read_config(self, LearnerNodeConfig)
        loop_cfg = read_config(self, LoopConfig)
        seed_everything(loop_cfg.train.seed)
        obs_dim, act_dim, _ = env_spec(self.cfg.env_id, self.cfg.task_module)
        task = get_task(self.cfg.env_id, warn=False)
        self.learner = LoopLearner(loop_cfg, obs_dim, act_dim, task,
                                   resolve_device(loop_cfg.train.device))
        self.replayed = 0
        self._stream_base = 0
        if self.cfg.replay_bags:
            seed = load_replay_bags(self.cfg.replay_bags, obs_dim, act_dim, task)
            self._stream_base = seed_learner(self.learner, seed.data)
            self.replayed = len(seed.data)
            self.get_logger().info(
                f'replay buffer seeded with {self.replayed} transitions from '
                f'{len(seed.bags)} bag(s) ({seed.rewards_from_task} with rewards from the task)'
                f'; {self.learner.pending_sac_updates} SAC updates due')
        self.checkpoint_dir = Path(self.cfg.checkpoint_dir).expanduser().resolve()
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        self._inbox: deque[tuple[TransitionArrays, int]] = deque()
        self._streams: dict[str, int] = {}
        self.received = 0
        self.rejected = 0
        self.version = 0
        self._last_checkpoint_steps = 0
        self._written: list[Path] = []
        self.update_pub = self.create_publisher(PolicyUpdate, graph.POLICY_UPDATE_TOPIC,
                                                qos.POLICY_UPDATE)
        self.stats_pub = self.create_publisher(TrainStats, graph.TRAIN_STATS_TOPIC, qos.STATS)
        self.create_subscription(Transition, graph.TRANSITION_TOPIC, self._on_transition,
                                 qos.TRANSITION)
        self._announce(path='')  # version 0: no weights yet, planners explore
        self.get_logger().info(
            f'learning {loop_cfg.train.algo} on {self.cfg.env_id} (obs {obs_dim}, act {act_dim});'
            f' random exploration for the first {self.learner.start_steps} transitions; '
            f'checkpoints in {self.checkpoint_dir}')
        # Training runs in its own thread on the wall clock, not in an executor callback: a
        # model retrain takes seconds, and a long callback makes rclpy's executor spin on the
        # callbacks it cannot dispatch meanwhile (starving the training of the GIL).
        self._stop = threading.Event()
        self._trainer = threading.Thread(target=self._train_loop, name='train', daemon=True)
        self._trainer.start()

    def _on_transition(self, msg: Transition) -> None:
        """Validate and queue (never blocks: training drains the queue in its own thread)."""
        try:
            t = transition_from_msg(msg, self.learner.obs_dim, self.learner.act_dim)
        except ValueError as exc:
            self.rejected += 1
            self.get_logger().warning(f'rejected transition ({self.rejected} so far): {exc}',
                                      throttle_duration_sec=2.0)
            return
        self._inbox.append((t, self._streams.setdefault(
            stream_key(msg), self._stream_base + len(self._streams))))
        self.received += 1

    def _train_loop(self) -> None:
        """Every ``tick_period_s``: store the queued transitions, train a bounded slice."""
        while not self._stop.is_set():
            start = time.perf_counter()
            try:
                self._tick()
            except Exception as exc:  # keep learning alive; the error is visible in the log
                self.get_logger().error(f'training tick failed: {exc!r}')
            self._stop.wait(max(0.0, self.cfg.tick_period_s - (time.perf_counter() - start)))

    def _tick(self) -> None:
        """Drain the queue, do the due work (bounded), checkpoint when one is due."""
        while self._inbox:
            t, stream = self._inbox.popleft()
            self.learner.add(t.obs, t.action, t.reward, t.cost, t.next_obs, t.terminated,
                             t.truncated, stream=stream)
        retrain = self.learner.model_due
        t0 = time.perf_counter()
        metrics = self.learner.train(max_sac_updates=self.cfg.updates_per_tick) \
            if self.learner.has_work else {}
        tick_ms = (time.perf_counter() - t0) * 1e3
        steps = self.learner.env_steps
        if retrain and metrics:
            self.get_logger().info(
                f'model retrained on {steps} transitions in {tick_ms / 1e3:.1f} s: '
                f"holdout MSE {metrics.get('model/holdout_mse', math.nan):.4g}")
        crossed_start = self._last_checkpoint_steps < self.learner.start_steps <= steps
        if steps > self._last_checkpoint_steps and (
                retrain or crossed_start
                or steps - self._last_checkpoint_steps >= self.cfg.checkpoint_every_steps):
            self.write_checkpoint()
        if not self._stop.is_set():
            self._publish_stats(tick_ms)

    def close(self) -> None:
        """Stop the training thread (called by run_node before the node is destroyed)."""
        self._stop.set()
        self._trainer.join(timeout=30.0)

    def _publish_stats(self, tick_ms: float) -> None:
        learner = self.learner
        msg = TrainStats()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.env_steps = learner.env_steps
        msg.rejected_transitions = self.rejected
        msg.buffer_size = len(learner.buffer)
        msg.sac_updates = learner.sac.num_updates if learner.sac is not None else 0
        msg.pending_sac_updates = learner.pending_sac_updates
        msg.model_version = learner.model_version
        msg.holdout_mse = float(learner.last_model_metrics.get('model/holdout_mse', math.nan))
        msg.policy_version = self.version
        msg.tick_ms = float(tick_ms)
        self.stats_pub.publish(msg)

    def write_checkpoint(self) -> Path:
        """Atomic write of the policy weights, then the latched announcement."""
        state = self.learner.policy_state()
        self.version += 1
        state['version'] = self.version
        path = save_checkpoint(self.checkpoint_dir / f'policy_{self.version:06d}.pt', state,
                               kind=CHECKPOINT_KIND)
        self._last_checkpoint_steps = state['env_steps']
        self._written.append(path)
        for old in self._written[:-KEEP_CHECKPOINTS]:
            old.unlink(missing_ok=True)
        self._written = self._written[-KEEP_CHECKPOINTS:]
        self._announce(str(path))
        return path

    def _announce(self, path: str) -> None:
        msg = PolicyUpdate()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.version = self.version
        msg.path = path
        msg.env_steps = self.learner.env_steps
        msg.holdout_loss = float(self.learner.last_model_metrics.get('model/holdout_mse',
                                                                     math.nan))
        msg.explore = self.explore
        self.update_pub.publish(msg)

    @property
    def explore(self) -> bool:
        """Planners act at random: too few transitions, or replayed ones not yet modelled."""
        learner = self.learner
        unmodelled = self.replayed > 0 and learner.ensemble is not None \
            and learner.model_version == 0
        return learner.env_steps < learner.start_steps or unmodelled


def main(args: list[str] | None = None) -> int:
    """Spin the learner (2 threads: ingestion and training) until shutdown."""
    return run_node(LearnerNode, 'learner', (ConfigError, ValueError), args=args)


if __name__ == '__main__':
    import sys
    sys.exit(main())
