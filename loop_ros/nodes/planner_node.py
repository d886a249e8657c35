"""``planner``: ARC at the control rate, as a lifecycle node (ros2/demos lifecycle_py pattern).

* **configure**: reads the parameters (``PlannerNodeConfig`` + ``LoopConfig`` groups), builds the
  policy on its device (CUDA when present), loads the newest checkpoint of ``checkpoint_dir``
  (or starts from a fresh actor and a random ensemble), warms up with one plan.
* **activate**: a timer at ``control_rate_hz`` (sim time) plans on the latest observation and
  publishes ``action`` (stamped with the observation it answers), ``~/plan_stats`` and, with
  ``publish_path``, the imagined trajectory as ``nav_msgs/Path`` on ``~/plan``. With
  ``tick_on: observation`` an arriving observation starts the plan at once (at most one per
  3/4 period of stamps) and the timer only stands in when observations stop.
* **constraints** (``constraints.*`` parameters, or a ``loop_ros/Constraints`` message on
  ``constraints``, which sets them): the boundary and keep-out zones of a task whose cost is a
  ``ConstraintCost`` (the RC car); applied at the next tick, no retraining.
* **deactivate**: publishes the safe (zero) action, stops the timer, forgets the warm start.

Deadline: the plan runs in a worker thread and must be done ``deadline_fraction`` of a period
after the tick started. ARC gets that time minus ``deadline_margin_s`` as its deadline and runs
only the iterations that fit (anytime planning; ``PlanStats.iterations`` says how many ran). If
the plan is still not done at the deadline (one iteration alone overran), the tick publishes the
actor's action instead and counts a missed deadline (a plan still running also makes the next
tick fall back to the actor). Stale (``observation_timeout_s``) or missing observations give the
safe action.

Weights (``mode: learn``): the learner announces checkpoints on ``policy_update`` (latched).
When the announced file is readable here (a shared folder: the fast local path) it is loaded;
otherwise the same version arrives as bytes on ``policy_weights`` (latched; a planner on another
machine), accepted only when its model signature equals this planner's model
(:func:`loop_ros.core.agent.model_signature`). Each version is loaded once, in a background
thread, and swapped in at the start of a tick when no plan is in flight, so loading never
stalls the control timer. Exploration: while the newest announcement says ``explore`` (the
learner has fewer than ``start_steps`` transitions), or before any announcement when no
checkpoint exists, actions are uniform random (the reference's random start steps). This is the
learner's call, made from the transitions it actually received, with one exception: a planner
that has acted on weights trained past ``start_steps`` never goes back to random actions (a
learner restarted without its state says ``explore`` again; the planner keeps its weights and
takes the restarted learner's as they come).

``mode: deploy``: the checkpoint (``checkpoint``, else the newest ``policy_*.pt`` of
``checkpoint_dir``) is required and final: no learner topic is subscribed, nothing explores,
and the executed action is the plan's mean (``explore=False`` in ARC).
"""
from __future__ import annotations

from dataclasses import dataclass
import importlib
import math
import os
import threading
import time
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Path
import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.duration import Duration
from rclpy.lifecycle import LifecycleNode
from rclpy.lifecycle import LifecycleState
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
import torch

from loop_ros import graph
from loop_ros.core.agent import LoopPolicy
from loop_ros.core.agent import resolve_device
from loop_ros.core.checkpoint import CheckpointError
from loop_ros.core.checkpoint import latest_checkpoint
from loop_ros.core.checkpoint import load_checkpoint
from loop_ros.core.checkpoint import load_checkpoint_bytes
from loop_ros.core.config import ArcConfig
from loop_ros.core.config import ConfigError
from loop_ros.core.config import from_dict
from loop_ros.core.config import LoopConfig
from loop_ros.core.config import replace
from loop_ros.core.live_config import live_parameters
from loop_ros.core.node_config import NODE_PARAMETERS
from loop_ros.core.node_config import PlannerNodeConfig
from loop_ros.core.tasks import get_task
from loop_ros.core.tasks import Task
from loop_ros.msg import Action
from loop_ros.msg import Observation
from loop_ros.msg import PlanStats
from loop_ros.msg import PolicyUpdate
from loop_ros.msg import PolicyWeights
from loop_ros.ros import qos
from loop_ros.ros.clock import ns_to_stamp
from loop_ros.ros.clock import stamp_to_ns
from loop_ros.ros.constraints import subscribe_constraints
from loop_ros.ros.conversions import action_msg
from loop_ros.ros.conversions import observation_from_msg
from loop_ros.ros.node_extras import PlannerExtras
from loop_ros.ros.publish import safe_publish
from loop_ros.ros.params import declare_config
from loop_ros.ros.params import declare_groups
from loop_ros.ros.params import read_config
from loop_ros.ros.runner import run_node

CHECKPOINT_KIND = 'loop_ros.learner'
SHUTDOWN_ACK_S = 0.5
OBSERVATION_TICK_SPACING = 0.75   # tick_on observation: periods between stamps planned on
WATCHDOG_PERIODS = 1.5            # tick_on observation: the timer ticks after this long idle
"""At shutdown, how long the planner waits for its last (safe) action to be acknowledged."""


def load_task(env_id: str, task_module: str = '') -> Task:
    """The task of ``env_id``, after importing ``task_module`` (which may register it).

    A robot without a gymnasium env registers its task in ``task_module`` with ``obs_dim``,
    ``act_dim`` and ``dt`` (docs/integration.md). Raises ValueError.
    """
    if task_module:
        try:
            importlib.import_module(task_module)
        except ImportError as exc:
            raise ValueError(f'cannot import task_module {task_module!r}: {exc}') from exc
    from loop_ros.train import task_of
    try:
        return task_of(env_id, warn=False)
    except ImportError as exc:
        raise ValueError(f'cannot load the task of {env_id!r}: {exc}') from exc


def declare_node_parameters(node: Node, node_name: str) -> None:
    """Declare the node's own group, then the LOOP groups with the task's presets as defaults.

    Layering: dataclass defaults < the task's ``hyperparameters`` < params file / ``-p``.
    An env_id that cannot be loaded yet declares plain defaults (configure reports the error).
    """
    groups = NODE_PARAMETERS[node_name]
    declare_config(node, groups[''])
    node_cfg = read_config(node, groups[''])
    try:
        presets = load_task(node_cfg.env_id, node_cfg.task_module).hyperparameters
    except ValueError:
        presets = {}
    declare_groups(node, groups, defaults=presets, live=live_parameters(node_name))


@dataclass(frozen=True)
class TaskSpec:
    """Sizes, control period and (for gym envs) physical action bounds of a task."""

    obs_dim: int
    act_dim: int
    dt: float
    action_low: np.ndarray | None = None
    """The env's own action bounds (before the rescaling to [-1, 1]); None for robot tasks."""
    action_high: np.ndarray | None = None

    def normalized(self, values: Any) -> np.ndarray:
        """Physical action values -> normalised (identity, clipped, without bounds)."""
        if self.action_low is None or self.action_high is None:
            return np.clip(np.asarray(values, np.float32), -1.0, 1.0)
        from loop_ros.envs import normalized_action
        return normalized_action(values, self.action_low, self.action_high)


def env_spec(env_id: str, task_module: str = '') -> TaskSpec:
    """The :class:`TaskSpec` of a task: from its registered description, else its gym env.

    Raises ValueError (see :func:`load_task`).
    """
    task = load_task(env_id, task_module)
    if task.obs_dim is not None and task.act_dim is not None:
        return TaskSpec(task.obs_dim, task.act_dim, float(task.dt or 0.0))
    from loop_ros.envs import make_env
    from loop_ros.envs import raw_action_bounds
    try:
        env = make_env(env_id)
    except Exception as exc:  # gymnasium raises several types for unknown/broken ids
        raise ValueError(f'env_id {env_id!r} is neither a registered robot task nor a '
                         f'gymnasium env: {exc}') from exc
    try:
        return TaskSpec(int(env.observation_space.shape[0]), int(env.action_space.shape[0]),
                        float(getattr(env.unwrapped, 'dt', 0.0)), *raw_action_bounds(env))
    finally:
        env.close()


class PlannerNode(LifecycleNode):
    """Runs ARC on the latest observation at a fixed rate; see the module docstring."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('planner', **kwargs)
        declare_node_parameters(self, 'planner')
        self.cfg: PlannerNodeConfig | None = None
        self.policy: LoopPolicy | None = None
        self._lock = threading.Lock()
        self._latest: tuple[np.ndarray, int, int, int, str] | None = None  # obs, ns, ep, step, frame
        self._episode_key: tuple[int, int] | None = None
        self._pending: tuple[dict, int] | None = None                  # weights, version
        self._requested_version: int | None = None   # newest version being loaded
        self._explore = True
        self._trained = False       # acted on weights trained past start_steps: never random again
        self._signature = ''
        self.rejected_weights = 0
        self._plan_future: Future | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._loader: ThreadPoolExecutor | None = None
        self._timer = None
        self._tick_lock = threading.Lock()   # one tick at a time, whichever source started it
        self._last_tick_ns: int | None = None         # node clock when the last tick started
        self._last_planned_stamp: int | None = None   # stamp of the observation it acted on
        self._pubs: list[Any] = []
        self._subs: list[Any] = []
        self.ticks = 0
        self.tick_errors = 0        # ticks that raised: the safe action was sent
        self.plan_fallbacks = 0     # plans with no finite candidate (a model predicting NaN)
        self.nonfinite_actions = 0  # non-finite actions replaced by the safe action
        self.deadline_misses = 0
        self.stale_observations = 0
        self.compute_ms: list[float] = []
        self.extras = PlannerExtras(self)   # /diagnostics, run-time parameters, ~/plan_markers

    # --- lifecycle -------------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Build the policy, load the newest checkpoint, warm up. ERROR on a bad setup."""
        try:
            self.cfg = read_config(self, PlannerNodeConfig)
            loop_cfg = read_config(self, LoopConfig)
            spec = env_spec(self.cfg.env_id, self.cfg.task_module)
            obs_dim, act_dim, dt = spec.obs_dim, spec.act_dim, spec.dt
            if self.cfg.safe_action == 'value' and len(self.cfg.safe_action_value) != act_dim:
                raise ConfigError(f'safe_action_value has {len(self.cfg.safe_action_value)} '
                                  f'values, the task has {act_dim} action dimensions')
        except (ConfigError, ValueError) as exc:
            self.get_logger().error(f'configure failed: {exc}')
            return TransitionCallbackReturn.ERROR
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.spec = spec
        self._last_sent = np.zeros(act_dim, np.float32)
        rate = self.cfg.control_rate_hz or (1.0 / dt if dt > 0 else 10.0)
        self.period_s = 1.0 / rate
        device = resolve_device(loop_cfg.train.device)
        deploy = self.cfg.mode == 'deploy'
        payload, source = None, None
        if self.cfg.checkpoint:   # asked for by name: a bad file is a configure error
            source = self.cfg.checkpoint
            try:
                payload = load_checkpoint(source, kind=CHECKPOINT_KIND)
                loop_cfg = self._planner_settings(loop_cfg, payload)
            except (CheckpointError, ConfigError, KeyError) as exc:
                self.get_logger().error(f'configure failed: checkpoint {source}: {exc}')
                return TransitionCallbackReturn.ERROR
        else:
            source = latest_checkpoint(self.cfg.checkpoint_dir, 'policy_*.pt')
            if deploy and source is None:
                self.get_logger().error(
                    "configure failed: mode 'deploy' acts on a checkpoint: set checkpoint, or "
                    f'put a policy_*.pt into checkpoint_dir ({self.cfg.checkpoint_dir} has none)')
                return TransitionCallbackReturn.ERROR
        try:   # the planner's own copy of the task's constraints, from constraints.*
            task = self.extras.configure_constraints(get_task(self.cfg.env_id, warn=False))
        except ConfigError as exc:
            self.get_logger().error(f'configure failed: {exc}')
            return TransitionCallbackReturn.ERROR
        self.policy = LoopPolicy(loop_cfg, obs_dim, act_dim, task, device,
                                 seed=loop_cfg.train.seed)
        if source is not None:
            try:
                payload = payload or load_checkpoint(source, kind=CHECKPOINT_KIND)
                self.policy.load_policy_state(payload, version=int(payload.get('version', 0)))
                self._trained = payload['env_steps'] >= payload['start_steps']
                self._explore = not (self._trained or deploy)
                self.get_logger().info(f'loaded {source} (version {self.policy.version}, '
                                       f'{self.policy.cfg.train.algo}, mode {self.cfg.mode})')
            except (CheckpointError, KeyError, ValueError) as exc:
                if self.cfg.checkpoint or deploy:
                    self.get_logger().error(f'configure failed: checkpoint {source}: {exc}')
                    return TransitionCallbackReturn.ERROR
                self.get_logger().warning(f'ignoring checkpoint {source}: {exc}')
        self._explore = self._explore and not deploy
        self._signature = self.policy.model_signature
        self._warm_up()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix='arc')
        self._loader = ThreadPoolExecutor(1, thread_name_prefix='ckpt')
        self.action_pub = self.create_lifecycle_publisher(Action, graph.ACTION_TOPIC, qos.ACTION)
        self.stats_pub = self.create_lifecycle_publisher(PlanStats, graph.PLAN_STATS_TOPIC,
                                                         qos.STATS)
        self.path_pub = self.create_lifecycle_publisher(Path, graph.PLAN_PATH_TOPIC,
                                                        qos.VISUALIZATION)
        self._pubs = [self.action_pub, self.stats_pub, self.path_pub]
        group = MutuallyExclusiveCallbackGroup()
        self._subs = [
            self.create_subscription(Observation, graph.OBSERVATION_TOPIC, self._on_observation,
                                     qos.OBSERVATION, callback_group=group),
            subscribe_constraints(self, group, on_rejected=self.extras.count_rejected),
        ]
        if not deploy:   # a deployed planner takes no weights from anyone
            self._subs += [
                self.create_subscription(PolicyUpdate, graph.POLICY_UPDATE_TOPIC,
                                         self._on_policy_update, qos.POLICY_UPDATE,
                                         callback_group=group),
                self.create_subscription(PolicyWeights, graph.POLICY_WEIGHTS_TOPIC,
                                         self._on_policy_weights, qos.POLICY_UPDATE,
                                         callback_group=group),
            ]
        self.get_logger().info(f'configured: {self.cfg.env_id}, obs {obs_dim}, act {act_dim}, '
                               f'{rate:.1f} Hz on {device}')
        return TransitionCallbackReturn.SUCCESS

    def _planner_settings(self, loop_cfg: LoopConfig, payload: dict[str, Any]) -> LoopConfig:
        """The node's settings, with an offline checkpoint's algo and arc.* when it brings them."""
        saved = payload.get('config', {})
        if (not self.cfg.checkpoint_planner_settings  # type: ignore[union-attr]
                or saved.get('train', {}).get('algo') != 'loop-offline'):
            return loop_cfg
        arc = from_dict(ArcConfig, saved.get('arc', {}), where='checkpoint arc settings')
        self.get_logger().info('offline checkpoint: planning with its settings (loop-offline, '
                               f'H={arc.horizon}, N={arc.num_samples}, pessimism '
                               f'{arc.pessimism}, policy noise {arc.policy_noise})')
        return replace(loop_cfg, arc=arc, **{'train.algo': 'loop-offline'})

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Start the control timer (in its own callback group)."""
        self._last_tick_ns = self._last_planned_stamp = None
        self._timer = self.create_timer(self.period_s, self._on_timer,
                                        callback_group=MutuallyExclusiveCallbackGroup())
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Publish the safe action, stop the timer, forget the warm start."""
        self._publish_action(self.safe_action(), self._latest_stamp())
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        self.policy.reset()  # type: ignore[union-attr]
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release publishers, subscriptions, threads and the models."""
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def close(self) -> None:
        """Stop the timer and wait for an in-flight plan or weight load.

        ``run_node`` calls it after spinning and before the node is destroyed, so no worker
        finishes onto a destroyed publisher at Ctrl-C.
        """
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        for pool in (self._executor, self._loader):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        if self._pubs and self.action_pub.is_activated:   # SIGINT/SIGTERM: stop the robot
            self._publish_action(self.safe_action(), self._latest_stamp())
            self.action_pub.wait_for_all_acked(Duration(seconds=SHUTDOWN_ACK_S))

    def _release(self) -> None:
        for sub in self._subs:
            self.destroy_subscription(sub)
        for pub in self._pubs:
            self.destroy_lifecycle_publisher(pub)
        self._subs, self._pubs = [], []
        for pool in (self._executor, self._loader):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        self._executor = self._loader = None
        self.policy = None
        self.extras.constraint_cost = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _warm_up(self) -> None:
        """One plan at configure time, so the first tick pays no allocation or lazy init."""
        self.policy.act(np.zeros(self.obs_dim, np.float32), explore=False)  # type: ignore
        self.policy.reset()  # type: ignore[union-attr]

    # --- callbacks: store only -------------------------------------------------------------------

    def _on_observation(self, msg: Observation) -> None:
        try:
            obs = observation_from_msg(msg, self.obs_dim)
            stamp_ns = stamp_to_ns(msg.header.stamp)
            ahead_s = (stamp_ns - self.get_clock().now().nanoseconds) * 1e-9
            if ahead_s > self.cfg.future_tolerance_s:  # type: ignore[union-attr]
                raise ValueError(f'stamped {ahead_s:.3f} s in the future (future_tolerance_s '
                                 f'{self.cfg.future_tolerance_s:g})')  # type: ignore
        except ValueError as exc:
            self.get_logger().warning(f'rejected observation: {exc}', throttle_duration_sec=2.0)
            self.extras.count_rejected()
            return
        with self._lock:
            self._latest = (obs, stamp_ns, msg.episode, msg.step, msg.header.frame_id)
        if self._starts_a_tick(stamp_ns):
            self._on_tick()

    def _wanted(self, version: int) -> bool:
        """A version neither in use nor already being loaded (file and topic bring each)."""
        return version != self.policy.version and version != self._requested_version  # type: ignore

    def _on_policy_update(self, msg: PolicyUpdate) -> None:
        """The file route: load the announced checkpoint when it is readable here."""
        self._explore = bool(msg.explore) and not self._trained
        version = int(msg.version)
        route = self.cfg.weights_route  # type: ignore[union-attr]
        if (not msg.path or self._loader is None or route == 'topic'
                or not self._wanted(version)):
            return
        if route == 'auto' and not os.path.isfile(msg.path):   # the learner is elsewhere
            self.get_logger().info(f'policy version {version}: {msg.path} is not readable here, '
                                   'taking the weights from policy_weights', once=True)
            return
        self._requested_version = version
        self._loader.submit(self._load, msg.path, version, int(msg.env_steps))

    def _on_policy_weights(self, msg: PolicyWeights) -> None:
        """The topic route: checkpoint bytes, checked against this planner's model."""
        self._explore = bool(msg.explore) and not self._trained
        version = int(msg.version)
        if (self._loader is None or self.cfg.weights_route == 'file'  # type: ignore[union-attr]
                or not self._wanted(version)):
            return
        if msg.model_signature != self._signature:
            self.rejected_weights += 1
            self.get_logger().error(
                f'rejected policy version {version} from {msg.source or "?"}: its model '
                f'signature {msg.model_signature!r} differs from this planner\'s '
                f'{self._signature!r} (other observation/action sizes or network settings)',
                throttle_duration_sec=2.0)
            return
        self._requested_version = version
        self._loader.submit(self._load, bytes(msg.checkpoint), version, int(msg.env_steps))

    def _load(self, source: str | bytes, version: int, env_steps: int) -> None:
        """Background thread: read a checkpoint (a path, or its bytes); the tick swaps it in.

        The payload must be the announced one (its version and env steps): a file at the same
        path written by another learner (another machine's folder layout) is not used.
        """
        try:
            if isinstance(source, bytes):
                payload = load_checkpoint_bytes(source, kind=CHECKPOINT_KIND,
                                                name=f'policy_weights version {version}')
            else:
                payload = load_checkpoint(source, kind=CHECKPOINT_KIND)
            got = (int(payload.get('version', -1)), int(payload.get('env_steps', -1)))
            if got != (version, env_steps):
                raise CheckpointError(f'{source if isinstance(source, str) else "the message"} '
                                      f'holds version {got[0]} after {got[1]} env steps, the '
                                      f'announcement says version {version} after {env_steps}')
        except CheckpointError as exc:
            self.get_logger().error(f'cannot load policy version {version}: {exc}')
            with self._lock:
                if self._requested_version == version:
                    self._requested_version = None   # the other route may still bring it
            return
        with self._lock:
            self._pending = (payload, version)

    # --- the control tick ------------------------------------------------------------------------

    def _latest_stamp(self) -> int:
        with self._lock:
            return self._latest[1] if self._latest is not None else 0

    def safe_action(self) -> np.ndarray:
        """The normalised action sent when no plan can be (``safe_action``)."""
        cfg = self.cfg
        assert cfg is not None
        if cfg.safe_action == 'hold':
            return self._last_sent.copy()
        values = cfg.safe_action_value if cfg.safe_action == 'value' else np.zeros(self.act_dim)
        return self.spec.normalized(values)

    def _starts_a_tick(self, stamp_ns: int) -> bool:
        """``tick_on: observation``: an active planner plans on an observation stamped at
        least ``OBSERVATION_TICK_SPACING`` periods after the last one it planned on."""
        if self.cfg is None or self.cfg.tick_on != 'observation' or self._timer is None:
            return False
        last = self._last_planned_stamp
        return last is None or stamp_ns - last >= OBSERVATION_TICK_SPACING * self.period_s * 1e9

    def _on_timer(self) -> None:
        """The control timer; with ``tick_on: observation`` only a watchdog: it ticks when no
        tick started for ``WATCHDOG_PERIODS`` periods (observations stopped or came too fast)."""
        last = self._last_tick_ns
        if (self.cfg is not None and self.cfg.tick_on == 'observation' and last is not None
                and self.get_clock().now().nanoseconds - last
                <= WATCHDOG_PERIODS * self.period_s * 1e9):
            return
        self._on_tick()

    def _on_tick(self) -> None:
        """One control tick; whatever goes wrong in it, the safe action goes out.

        One tick runs at a time: a tick started while another runs (the timer and an
        observation at once) is dropped, the running one answers.
        """
        if not self._tick_lock.acquire(blocking=False):
            return
        try:
            self.ticks += 1
            self._last_tick_ns = self.get_clock().now().nanoseconds
            self._tick()
        except Exception as exc:  # the robot must get a command; the node must live on
            self.tick_errors += 1
            self.get_logger().error(f'tick failed ({self.tick_errors} so far): {exc!r}: sending '
                                    'the safe action', throttle_duration_sec=2.0)
            self._publish_action(self.safe_action(), self._latest_stamp())
        finally:
            self._tick_lock.release()

    def _tick(self) -> None:
        """Take the latest state, plan (with a deadline), publish, record stats."""
        assert self.cfg is not None and self.policy is not None
        tick_start = time.perf_counter()
        self._swap_weights()
        self.extras.before_tick()   # parameter changes accepted since the last tick
        with self._lock:
            latest = self._latest
        now_ns = self.get_clock().now().nanoseconds
        if latest is None or (now_ns - latest[1]) * 1e-9 > self.cfg.observation_timeout_s:
            self.stale_observations += 1
            self.get_logger().warning('no fresh observation: sending the safe action',
                                   throttle_duration_sec=2.0)
            self._publish_action(self.safe_action(), latest[1] if latest else now_ns)
            return
        obs, stamp_ns, episode, step, frame_id = latest
        self._last_planned_stamp = stamp_ns
        # like nav2's controllers: every tick acts on the newest state, even one already answered
        if self._episode_key is not None and episode != self._episode_key[0]:
            self.policy.reset()  # a new episode: drop the warm start
        self._episode_key = (episode, step)
        action, info, missed = self._plan_with_deadline(obs, tick_start)
        if info is not None and info.fallback:
            self.plan_fallbacks += 1
            self.get_logger().warning(
                f'no finite candidate in the plan ({self.plan_fallbacks} so far: the model '
                f'predicts NaN or inf): sent the {info.fallback} action instead',
                throttle_duration_sec=2.0)
        compute_ms = (time.perf_counter() - tick_start) * 1e3
        self.compute_ms = (self.compute_ms + [compute_ms])[-1000:]
        self._publish_action(action, stamp_ns)
        self._publish_stats(info, compute_ms, missed, stamp_ns)
        if self.cfg.publish_path and info is not None:
            self._publish_path(obs, stamp_ns, frame_id)
        self.extras.after_tick(obs, stamp_ns, frame_id, info)   # ~/plan_markers

    def _swap_weights(self) -> None:
        """Between ticks only: swap in weights loaded by the background thread."""
        if self._plan_future is not None and not self._plan_future.done():
            return
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            payload, version = pending
            previous = self.policy.version  # type: ignore[union-attr]
            try:
                self.policy.load_policy_state(payload, version=version)  # type: ignore
                self._trained = self._trained or payload['env_steps'] >= payload['start_steps']
                restarted = ' (the learner restarted without its state)' \
                    if version < previous else ''
                self.get_logger().info(f'policy version {version} ({payload["env_steps"]} '
                                       f'env steps){restarted}')
            except (KeyError, ValueError, RuntimeError) as exc:
                self.get_logger().error(f'rejected policy version {version}: {exc}')

    def _plan_with_deadline(self, obs: np.ndarray, tick_start: float
                            ) -> tuple[np.ndarray, Any, bool]:
        """ARC in the worker thread, its iterations bounded by the deadline less the margin;
        the actor's action if it still misses the deadline."""
        policy = self.policy
        assert policy is not None and self._executor is not None and self.cfg is not None
        if self._explore:
            return policy.random_action(), None, False
        if self._plan_future is not None and not self._plan_future.done():
            self.deadline_misses += 1
            return policy.actor_action(obs), None, True
        deadline = tick_start + self.cfg.deadline_fraction * self.period_s
        # learn: ARC samples the executed action (exploration); deploy: the plan's mean
        self._plan_future = self._executor.submit(
            policy.act, obs, self.cfg.mode == 'learn',
            deadline=deadline - self.cfg.deadline_margin_s)
        try:
            action, info = self._plan_future.result(
                timeout=max(deadline - time.perf_counter(), 0.0))
            return action, info.plan, False
        except FutureTimeout:
            self.deadline_misses += 1
            self._plan_future.add_done_callback(self._count_late_fallback)
            self.get_logger().warning(f'plan missed its deadline ({self.deadline_misses} so far): '
                                   "sending the actor's action", throttle_duration_sec=2.0)
            return policy.actor_action(obs), None, True

    def _count_late_fallback(self, future: Future) -> None:
        """A plan that ended after its deadline still counts in ``plan_fallbacks`` when it
        found no finite candidate (its action was never sent: the actor's went instead)."""
        if future.cancelled() or future.exception() is not None:
            return
        _, info = future.result()
        if info.plan is not None and info.plan.fallback:
            self.plan_fallbacks += 1

    def _publish_action(self, action: np.ndarray, stamp_ns: int) -> None:
        """Send a normalised action; a non-finite one is replaced by the safe action."""
        if not self._pubs:
            return
        action = np.asarray(action, np.float32)
        if not np.isfinite(action).all():
            self.nonfinite_actions += 1
            self.get_logger().error(f'non-finite action {action.tolist()} '
                                    f'({self.nonfinite_actions} so far): sending the safe action',
                                    throttle_duration_sec=2.0)
            action = self.safe_action()
        action = np.clip(action, -1.0, 1.0)
        self.action_pub.publish(action_msg(action, ns_to_stamp(stamp_ns),
                                           source=self.get_fully_qualified_name()))
        self._last_sent = action

    def _publish_stats(self, info: Any, compute_ms: float, missed: bool, stamp_ns: int) -> None:
        msg = PlanStats()
        msg.header.stamp = ns_to_stamp(stamp_ns)
        msg.compute_time_ms = float(compute_ms)
        msg.deadline_missed = bool(missed)
        msg.policy_version = int(self.policy.version)  # type: ignore[union-attr]
        msg.random_action = bool(self._explore)
        if info is not None:
            msg.iterations = int(info.iterations)
            msg.elite_return = float(info.elite_return)
            msg.mean_return = float(info.mean_return)
            msg.action_std = float(info.action_std)
            msg.predicted_worst_cost = float(info.predicted_worst_cost)
            msg.num_feasible = int(info.num_feasible)
        else:
            msg.elite_return = msg.mean_return = msg.predicted_worst_cost = math.nan
            msg.num_feasible = -1
        self.stats_pub.publish(msg)


    def _publish_path(self, obs: np.ndarray, stamp_ns: int, frame_id: str) -> None:
        """The executed plan imagined through the elites, as poses in the robot frame."""
        poses = self.policy.imagined_poses(obs, self.period_s)  # type: ignore[union-attr]
        if poses is None:
            return
        path = Path()
        path.header.stamp = ns_to_stamp(stamp_ns)
        path.header.frame_id = frame_id
        for x, y, yaw in poses:
            pose = PoseStamped()
            pose.header = path.header
            pose.pose.position.x, pose.pose.position.y = float(x), float(y)
            pose.pose.orientation.z, pose.pose.orientation.w = math.sin(yaw / 2), math.cos(yaw / 2)
            path.poses.append(pose)
        safe_publish(self, self.path_pub, path)


def build_planner() -> PlannerNode:
    """The planner; with ``autostart`` configured and activated (ConfigError if that fails)."""
    node = PlannerNode()
    if node.get_parameter('autostart').value:
        if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            node.destroy_node()
            raise ConfigError('autostart: configure failed (see the error above)')
        node.trigger_activate()
    return node


def main(args: list[str] | None = None) -> int:
    """Spin the planner with a multi-threaded executor until shutdown."""
    return run_node(build_planner, 'planner', (ConfigError, ValueError), args=args)


if __name__ == '__main__':
    import sys
    sys.exit(main())
