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
* Weights reach planners two ways: the checkpoint file (its path in ``policy_update``: the fast
  path when the planner shares ``checkpoint_dir``) and, with ``publish_weights``, the file's bytes
  on ``policy_weights`` (latched, with the model signature the planner checks) for a planner on
  another machine.
* Restart: with ``save_state`` the whole learner (weights, optimisers, replay buffer, counters,
  checkpoint version) is written to ``checkpoint_dir/learner_state.pt`` with every checkpoint and
  at shutdown; in between, every received transition goes to the append-only journal
  ``checkpoint_dir/journal/`` (``loop_ros.core.journal``), flushed every ``journal_flush_s``.
  With ``resume`` a restarted learner (even after ``kill -9``) loads the state, replays the
  journal written after it, says how many transitions it recovered, announces its newest
  checkpoint again (``explore`` false once past ``start_steps``) and carries on, so its planners
  never go back to random actions. A state file for another model, or a corrupt one, is a
  configuration error naming the file (move it away, or ``resume:=false``).
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

from rclpy.clock import Clock
from rclpy.clock import ClockType
from rclpy.node import Node

from loop_ros import graph
from loop_ros.core.agent import LoopLearner
from loop_ros.core.agent import resolve_device
from loop_ros.core.agent import seed_everything
from loop_ros.core.checkpoint import checkpoint_bytes
from loop_ros.core.checkpoint import CheckpointError
from loop_ros.core.checkpoint import load_checkpoint
from loop_ros.core.checkpoint import save_checkpoint
from loop_ros.core.config import ConfigError
from loop_ros.core.journal import JournalError
from loop_ros.core.journal import TransitionJournal
from loop_ros.core.config import LoopConfig
from loop_ros.core.node_config import LearnerNodeConfig
from loop_ros.core.tasks import get_task
from loop_ros.io.replay import load_replay_bags
from loop_ros.io.replay import seed_learner
from loop_ros.msg import PolicyUpdate
from loop_ros.msg import PolicyWeights
from loop_ros.msg import TrainStats
from loop_ros.msg import Transition
from loop_ros.nodes.planner_node import CHECKPOINT_KIND
from loop_ros.nodes.planner_node import declare_node_parameters
from loop_ros.nodes.planner_node import env_spec
from loop_ros.ros import qos
from loop_ros.ros.conversions import stream_key
from loop_ros.ros.conversions import transition_from_msg
from loop_ros.ros.conversions import validated
from loop_ros.ros.conversions import TransitionArrays
from loop_ros.ros.node_extras import LearnerExtras
from loop_ros.ros.params import read_config
from loop_ros.ros.runner import run_node

KEEP_CHECKPOINTS = 3
STATE_FILE = 'learner_state.pt'
STATE_KIND = 'loop_ros.learner_state'


class LearnerNode(Node):
    """Fills the replay buffer, trains on the reference schedule, publishes checkpoints."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('learner', **kwargs)
        declare_node_parameters(self, 'learner')
        self.cfg = read_config(self, LearnerNodeConfig)
        loop_cfg = read_config(self, LoopConfig)
        seed_everything(loop_cfg.train.seed)
        spec = env_spec(self.cfg.env_id, self.cfg.task_module)
        obs_dim, act_dim = spec.obs_dim, spec.act_dim
        task = get_task(self.cfg.env_id, warn=False)
        self.learner = LoopLearner(loop_cfg, obs_dim, act_dim, task,
                                   resolve_device(loop_cfg.train.device))
        self.replayed = 0
        self._stream_base = 0
        self.checkpoint_dir = Path(self.cfg.checkpoint_dir).expanduser().resolve()
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        self.version = 0
        self._last_checkpoint_steps = 0
        self._written: list[Path] = []
        self.journal = TransitionJournal(self.checkpoint_dir / 'journal', obs_dim, act_dim) \
            if self.cfg.journal_flush_s > 0 else None
        self._last_flush = time.monotonic()
        self.recovered = 0
        resumed = self.cfg.resume and self._resume()
        if not self.cfg.resume and self.journal is not None and self.journal.last_seq:
            self.get_logger().warning(f'resume is false: discarding the journal of the previous '
                                      f'run in {self.journal.directory}')
            self.journal.compact(self.journal.last_seq)
        if self.cfg.replay_bags and resumed:
            self.get_logger().info('replay_bags not read: the restored replay buffer holds them')
        elif self.cfg.replay_bags:
            seed = load_replay_bags(self.cfg.replay_bags, obs_dim, act_dim, task)
            self._stream_base = seed_learner(self.learner, seed.data)
            self.replayed = len(seed.data)
            self.get_logger().info(
                f'replay buffer seeded with {self.replayed} transitions from '
                f'{len(seed.bags)} bag(s) ({seed.rewards_from_task} with rewards from the task)'
                f'; {self.learner.pending_sac_updates} SAC updates due')
        self._inbox: deque[tuple[TransitionArrays, int]] = deque()
        self._journal_lock = threading.Lock()
        if self.journal is not None:   # on the wall clock: sim time may stand still
            self.create_timer(self.cfg.journal_flush_s, self._flush_journal,
                              clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._streams: dict[str, int] = {}
        self.received = 0
        self.rejected = 0
        self.update_pub = self.create_publisher(PolicyUpdate, graph.POLICY_UPDATE_TOPIC,
                                                qos.POLICY_UPDATE)
        self.weights_pub = self.create_publisher(PolicyWeights, graph.POLICY_WEIGHTS_TOPIC,
                                                 qos.POLICY_UPDATE)
        self.stats_pub = self.create_publisher(TrainStats, graph.TRAIN_STATS_TOPIC, qos.STATS)
        self.create_subscription(Transition, graph.TRANSITION_TOPIC, self._on_transition,
                                 qos.TRANSITION)
        if resumed and self._written:   # the newest checkpoint again, for the planners
            self._announce(str(self._written[-1]))
            self._publish_weights(self._written[-1])
        else:
            self._announce(path='')  # version 0: no weights yet, planners explore
        self.get_logger().info(
            f'learning {loop_cfg.train.algo} on {self.cfg.env_id} (obs {obs_dim}, act {act_dim});'
            f' random exploration for the first {self.learner.start_steps} transitions; '
            f'checkpoints in {self.checkpoint_dir}')
        self.extras = LearnerExtras(self)   # /diagnostics and run-time parameters
        # Training runs in its own thread on the wall clock, not in an executor callback: a
        # model retrain takes seconds, and would hold one of the executor's two workers (and,
        # with rclpy's own MultiThreadedExecutor, made it spin: loop_ros/ros/executor.py).
        self._stop = threading.Event()
        self._trainer = threading.Thread(target=self._train_loop, name='train', daemon=True)
        self._trainer.start()

    def _resume(self) -> bool:
        """Restore the learner from ``learner_state.pt`` and the journal written after it.

        Returns False when there is neither. Raises ConfigError for a state or journal that
        cannot be used (corrupt, another model).
        """
        path = self.checkpoint_dir / STATE_FILE
        journal_seq = 0
        if path.exists():
            journal_seq = self._load_state(path)
        elif self.journal is None or not self.journal.last_seq:
            return False
        if self.journal is not None:
            self._replay_journal(journal_seq)
        learner = self.learner
        self._last_checkpoint_steps = learner.env_steps - self.recovered
        self._written = sorted(self.checkpoint_dir.glob('policy_*.pt'))[-KEEP_CHECKPOINTS:]
        self.get_logger().info(
            f'resumed from {path if path.exists() else "the journal"}: {learner.env_steps} '
            f'transitions ({self.recovered} recovered from the journal), {len(learner.buffer)} '
            f'in the replay buffer, model version {learner.model_version}, checkpoint version '
            f'{self.version}')
        return True

    def _replay_journal(self, after: int) -> None:
        """Add the journal's transitions written after the saved state (``kill -9`` recovery)."""
        assert self.journal is not None
        top_stream = self._stream_base - 1
        try:
            for chunk in self.journal.replay(after):
                for i in range(len(chunk)):
                    self.learner.add(chunk.obs[i], chunk.action[i], float(chunk.reward[i]),
                                     float(chunk.cost[i]), chunk.next_obs[i],
                                     bool(chunk.terminated[i]), bool(chunk.truncated[i]),
                                     stream=int(chunk.stream[i]))
                self.recovered += len(chunk)
                top_stream = max(top_stream, int(chunk.stream.max(initial=0)))
        except JournalError as exc:
            raise ConfigError(f'cannot resume: {exc}. Move it away, or set resume:=false to '
                              'start fresh') from exc
        self._stream_base = top_stream + 1   # live producers get fresh successor chains

    def _load_state(self, path: Path) -> int:
        """Restore ``learner_state.pt``; returns the journal sequence number it includes."""
        try:
            state = load_checkpoint(path, kind=STATE_KIND)
            if state['model_signature'] != self.learner.model_signature:
                raise ValueError(f"it was written for another model (signature "
                                 f"{state['model_signature']}, this learner's is "
                                 f'{self.learner.model_signature}: other sizes or networks)')
            self.learner.load_state_dict(state['learner'])
            node = state['node']
            self.version = int(node['version'])
            self.replayed = int(node['replayed'])
            self._stream_base = int(node['next_stream'])   # live producers get fresh chains
            journal_seq = int(node.get('journal_seq', 0))
        except (CheckpointError, KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ConfigError(f'cannot resume from {path}: {exc}. Move it away, or set '
                              'resume:=false to start fresh') from exc
        self.learner.last_model_metrics = {
            'model/holdout_mse': float(state['learner'].get('holdout_mse', math.nan))}
        return journal_seq

    def save_state(self) -> Path:
        """Atomic write of the whole learner to ``checkpoint_dir/learner_state.pt``; the journal
        chunks it now contains are removed."""
        with self._journal_lock:   # everything journaled so far goes into the state
            self._drain()
            seq = self.journal.flush() if self.journal is not None else 0
        state = {'learner': self.learner.state_dict(),
                 'model_signature': self.learner.model_signature,
                 'node': {'version': self.version, 'replayed': self.replayed,
                          'next_stream': self._stream_base + len(self._streams),
                          'journal_seq': seq}}
        path = save_checkpoint(self.checkpoint_dir / STATE_FILE, state, kind=STATE_KIND)
        if self.journal is not None:
            self.journal.compact(seq)
        return path

    def _on_transition(self, msg: Transition) -> None:
        """Validate and queue (never blocks: training drains the queue in its own thread)."""
        t = validated(self, 'rejected', 'transition', transition_from_msg, msg,
                      self.learner.obs_dim, self.learner.act_dim)
        if t is None:
            return
        stream = self._streams.setdefault(stream_key(msg), self._stream_base + len(self._streams))
        with self._journal_lock:   # journaled exactly when queued (see save_state)
            self._inbox.append((t, stream))
            if self.journal is not None:
                self.journal.append(t.obs, t.action, t.reward, t.cost, t.next_obs, t.terminated,
                                    t.truncated, stream)
        self.received += 1

    def _flush_journal(self) -> None:
        """Wall timer: the transitions received since the last flush, to disk."""
        try:
            with self._journal_lock:
                self.journal.flush()  # type: ignore[union-attr]
        except JournalError as exc:   # the rows stay pending; the next flush retries
            self.get_logger().error(f'journal: {exc}', throttle_duration_sec=10.0)

    def _drain(self) -> None:
        """Store the queued transitions in the replay buffer (training thread only)."""
        while self._inbox:
            t, stream = self._inbox.popleft()
            self.learner.add(t.obs, t.action, t.reward, t.cost, t.next_obs, t.terminated,
                             t.truncated, stream=stream)

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
        self.extras.before_tick()   # parameter changes accepted since the last slice
        self._drain()
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
        """Stop the training thread, then save the state (run_node calls it before the node is
        destroyed). Transitions still queued are stored first, so a clean stop loses none."""
        self._stop.set()
        self._trainer.join(timeout=30.0)
        if self._trainer.is_alive():
            return
        if not self.cfg.save_state:
            if self.journal is not None:
                self._flush_journal()
            return
        self._drain()
        if self.learner.env_steps > 0:
            path = self.save_state()
            self.get_logger().info(f'saved {path} ({self.learner.env_steps} transitions)')

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
        if self.cfg.publish_weights:
            self._publish_weights(path)
        if self.cfg.save_state:
            self.save_state()
        return path

    def _publish_weights(self, path: Path) -> None:
        """The checkpoint's bytes on ``policy_weights`` (planners without the shared folder)."""
        msg = PolicyWeights()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.version = self.version
        msg.source = self.get_fully_qualified_name()
        msg.model_signature = self.learner.model_signature
        msg.env_steps = self.learner.env_steps
        msg.explore = self.explore
        msg.checkpoint = checkpoint_bytes(path)
        self.weights_pub.publish(msg)

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
