"""What each loop_ros node reports on ``/diagnostics``, and when it is WARN or ERROR.

Each class is the status callable of a :class:`loop_ros.ros.diagnostics.DiagnosticsPublisher`:
it reads the node's own counters (no locks: ints, floats and list references, read under the
GIL) and compares them with the previous window (about 1 s of wall time). The rules
(``docs/ros.md``, "Diagnostics"):

* planner (``<node>: control loop``): ERROR while active when no new observation arrived in the
  window and the newest is older than ``observation_timeout_s`` (wall time), when every
  tick of the window found only a stale observation, or when the control timer did not tick
  (simulated time stopped); WARN when more than 10% of the window's plans missed the deadline,
  more than 10% of its ticks found a stale observation, messages were rejected, or the node is
  not active.
* learner (``<node>: training``): ERROR when the training thread died; WARN when rejected
  transitions grew in the window, when learning is paused (``updates_per_tick`` 0) with updates
  due, or when more than :data:`BACKLOG_S` seconds of SAC updates are pending.
* sim bridge (``<node>: simulation``): WARN when safe actions were applied, actions rejected or
  messages dropped in the window, or when the achieved real-time factor is below 90% of
  ``real_time_factor``.
* recorder (``<node>: recording``): WARN while no topic is being recorded; ERROR once the bag
  is closed.
"""
from __future__ import annotations

import math
import time
from typing import Any

from loop_ros.ros.diagnostics import Deltas
from loop_ros.ros.diagnostics import ERROR
from loop_ros.ros.diagnostics import OK
from loop_ros.ros.diagnostics import Status
from loop_ros.ros.diagnostics import WARN
from loop_ros.ros.diagnostics import worst

MISS_FRACTION = 0.10
"""WARN when more than this fraction of a window's plans missed the deadline (or found a stale
observation)."""
BACKLOG_S = 10.0
"""Learner WARN when the pending SAC updates need more than this many seconds at the configured
pace (``updates_per_tick`` per ``tick_period_s``)."""
RTF_FRACTION = 0.9
"""Sim bridge WARN when the achieved real-time factor is below this fraction of the asked one."""


def _lifecycle_state(node: Any) -> str:
    machine = getattr(node, '_state_machine', None)
    if machine is None:
        return 'active'   # a plain node is always "active"
    return str(machine.current_state[1])


class VersionAge:
    """Wall seconds since a watched value (a weights version) last changed."""

    def __init__(self) -> None:
        self.value: Any = None
        self.since = math.nan

    def __call__(self, value: Any, now: float) -> float:
        if value != self.value:
            self.value, self.since = value, now
        return now - self.since if value is not None else math.nan


class PlannerDiagnostics:
    """Status of the planner's control loop (``planner: control loop``)."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self.deltas = Deltas()
        self.weights_age = VersionAge()
        self._seen_latest: Any = None
        self._observed_at: float | None = None   # wall time the newest observation was seen
        self.rejected_messages = 0
        """Rejected observations (the node's ``_on_observation`` counts them here)."""

    def __call__(self, window_s: float) -> Status:
        node, d = self.node, self.deltas
        now = time.monotonic()
        cfg = getattr(node, 'cfg', None)
        policy = getattr(node, 'policy', None)
        state = _lifecycle_state(node)
        active = state == 'active'
        ticks = d('ticks', node.ticks)
        misses = d('misses', node.deadline_misses)
        stale = d('stale', node.stale_observations)
        rejected_total = self.rejected_messages + int(getattr(node, 'rejected_weights', 0))
        rejected = d('rejected', rejected_total)
        faults = {name: d(name, int(getattr(node, name, 0)))
                  for name in ('tick_errors', 'plan_fallbacks', 'nonfinite_actions')}
        latest = getattr(node, '_latest', None)
        fresh = latest is not None and latest is not self._seen_latest   # new in this window
        if fresh:
            self._seen_latest, self._observed_at = latest, now
        obs_age = now - self._observed_at if self._observed_at is not None else math.inf
        planned = max(int(ticks - stale), 0)
        times = list(node.compute_ms[-planned:]) if planned else []
        version = policy.version if policy is not None else None
        timeout = cfg.observation_timeout_s if cfg is not None else math.nan
        values: dict[str, Any] = {
            'lifecycle state': state,
            'control rate achieved (Hz)': ticks / window_s,
            'control rate (Hz)': 1.0 / node.period_s if getattr(node, 'period_s', 0) else 0.0,
            'ticks': node.ticks,
            'deadline misses (window)': int(misses),
            'deadline misses (total)': node.deadline_misses,
            'mean plan time (ms)': sum(times) / len(times) if times else math.nan,
            'max plan time (ms)': max(times) if times else math.nan,
            'stale observations (window)': int(stale),
            'stale observations (total)': node.stale_observations,
            'observation age (s)': obs_age,
            'rejected messages (total)': rejected_total,
            'tick errors (total)': int(getattr(node, 'tick_errors', 0)),
            'plans without a finite candidate (total)': int(getattr(node, 'plan_fallbacks', 0)),
            'non-finite actions replaced (total)': int(getattr(node, 'nonfinite_actions', 0)),
            'policy version': version if version is not None else -1,
            'policy age (s)': self.weights_age(version, now),
            'explore': bool(getattr(node, '_explore', False)),
        }
        if not active:
            return Status(WARN, f"lifecycle state '{state}': not controlling", values)
        checks = [(OK, f'planning at {ticks / window_s:.1f} Hz')]
        if self._observed_at is None:
            checks.append((ERROR, 'no observation received yet'))
        elif not fresh and obs_age > timeout:
            checks.append((ERROR, f'no new observation for {obs_age:.1f} s '
                                  f'(observation_timeout_s {timeout:g})'))
        if ticks == 0:
            checks.append((ERROR, f'the control timer did not tick in {window_s:.1f} s '
                                  '(simulated time stopped?)'))
        elif stale >= ticks:
            checks.append((ERROR, f'every tick of the last {window_s:.1f} s found no fresh '
                                  'observation (safe action sent)'))
        elif stale > MISS_FRACTION * ticks:
            checks.append((WARN, f'{int(stale)} of {int(ticks)} ticks found no fresh observation'))
        if planned and misses > MISS_FRACTION * planned:
            checks.append((WARN, f'{int(misses)} of {planned} plans missed the deadline '
                                 "(the actor's action was sent)"))
        if rejected > 0:
            checks.append((WARN, f'rejected {int(rejected)} malformed messages'))
        if faults['tick_errors'] > 0:
            checks.append((ERROR, f"{int(faults['tick_errors'])} ticks failed with an error "
                                  '(safe action sent; see the log)'))
        if faults['plan_fallbacks'] + faults['nonfinite_actions'] > 0:
            checks.append((WARN, f"{int(faults['plan_fallbacks'])} plans without a finite "
                                 f"candidate, {int(faults['nonfinite_actions'])} non-finite "
                                 'actions replaced (the model predicts NaN or inf)'))
        level, message = worst(*checks)
        return Status(level, message, values)


class LearnerDiagnostics:
    """Status of the learner (``learner: training``)."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self.deltas = Deltas()
        self.checkpoint_age = VersionAge()

    def __call__(self, window_s: float) -> Status:
        node, d = self.node, self.deltas
        now = time.monotonic()
        learner = node.learner
        sac_updates = learner.sac.num_updates if learner.sac is not None else 0
        updates = d('updates', sac_updates)
        rejected = d('rejected', node.rejected)
        received = d('received', node.received)
        pending = learner.pending_sac_updates
        cfg = node.cfg
        holdout = float(learner.last_model_metrics.get('model/holdout_mse', math.nan))
        version = int(node.version)
        values: dict[str, Any] = {
            'env steps': learner.env_steps,
            'transitions/s': received / window_s,
            'replay size': len(learner.buffer),
            'rejected transitions (window)': int(rejected),
            'rejected transitions (total)': node.rejected,
            'SAC update rate (updates/s)': updates / window_s,
            'SAC updates': sac_updates,
            'pending SAC updates': pending,
            'updates per tick': cfg.updates_per_tick,
            'model version': learner.model_version,
            'holdout MSE': holdout,
            'checkpoint version': version,
            'checkpoint age (s)': self.checkpoint_age(version, now) if version > 0 else math.nan,
            'explore': bool(getattr(node, 'explore', False)),
        }
        trainer = getattr(node, '_trainer', None)
        stopping = getattr(node, '_stop', None)
        checks = [(OK, 'learning' if learner.env_steps else 'waiting for transitions')]
        if trainer is not None and not trainer.is_alive() and not (
                stopping is not None and stopping.is_set()):
            checks.append((ERROR, 'the training thread stopped'))
        if rejected > 0:
            checks.append((WARN, f'rejected {int(rejected)} malformed transitions in the last '
                                 f'{window_s:.1f} s ({node.rejected} in all)'))
        if cfg.updates_per_tick == 0 and pending > 0:
            checks.append((WARN, f'learning paused (updates_per_tick 0), {pending} SAC updates '
                                 'due'))
        elif cfg.updates_per_tick > 0:
            pace = cfg.updates_per_tick / cfg.tick_period_s
            if pending > BACKLOG_S * pace:
                checks.append((WARN, f'SAC falls behind: {pending} updates pending '
                                     f'({pending / pace:.0f} s at {pace:g} updates/s)'))
        level, message = worst(*checks)
        return Status(level, message, values)


class SimBridgeDiagnostics:
    """Status of the simulated robot (``sim_bridge: simulation``)."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self.deltas = Deltas()

    def __call__(self, window_s: float) -> Status:
        node, d = self.node, self.deltas
        steps = d('steps', node.steps)
        safe = d('safe', node.safe_actions)
        rejected = d('rejected', node.rejected_actions)
        dropped = d('dropped', node.dropped_messages)
        sim_s = d('sim_s', node.sim_clock.seconds)
        achieved = sim_s / window_s
        asked = float(node.cfg.real_time_factor)
        values: dict[str, Any] = {
            'steps': node.steps,
            'episodes': node.episodes,
            'safe actions (window)': int(safe),
            'safe actions (total)': node.safe_actions,
            'rejected actions (total)': node.rejected_actions,
            'dropped messages (total)': node.dropped_messages,
            'real-time factor achieved': achieved,
            'real-time factor': asked,
            'sim time (s)': node.sim_clock.seconds,
        }
        if node.done.done():
            return Status(OK, f'finished: max_episodes={node.cfg.max_episodes} reached', values)
        if node.steps == 0:
            return Status(OK, 'waiting for a transition subscriber (the learner)', values)
        checks = [(OK, f'stepping at {steps / window_s:.1f} Hz')]
        if safe > 0:
            checks.append((WARN, f'{int(safe)} safe actions in the last {window_s:.1f} s: no '
                                 'fresh action (is a planner running?)'))
        if rejected > 0:
            checks.append((WARN, f'rejected {int(rejected)} malformed actions'))
        if dropped > 0:
            checks.append((WARN, f'dropped {int(dropped)} messages (a reliable reader lags)'))
        if asked > 0 and steps > 0 and achieved < RTF_FRACTION * asked:
            checks.append((WARN, f'real-time factor {achieved:.2f} below the asked {asked:g}'))
        level, message = worst(*checks)
        return Status(level, message, values)


class RecorderDiagnostics:
    """Status of the bag recorder (``recorder: recording``)."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self.deltas = Deltas()

    def __call__(self, window_s: float) -> Status:
        node = self.node
        total = sum(node.counts.values())
        written = self.deltas('written', total)
        topics = sorted(node.counts)
        values: dict[str, Any] = {
            'messages written': total,
            'messages/s': written / window_s,
            'topics': len(topics),
            'recording': topics or '-',
            'bag path': str(node.path),
            'storage': node.cfg.storage,
        }
        if node.writer is None:
            return Status(ERROR, 'the bag is closed', values)
        if not topics:
            wanted = ', '.join(sorted(node.wanted)) or 'Transition topics'
            return Status(WARN, f'waiting for publishers of {wanted}', values)
        return Status(OK, f'recording {len(topics)} topic(s), {total} messages', values)


class RobotAdapterDiagnostics:
    """Status of the base behind the adapter (``robot_adapter: base``)."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self.deltas = Deltas()

    def __call__(self, window_s: float) -> Status:
        node, d = self.node, self.deltas
        sent = d('transitions', node.transitions_sent)
        timeouts = d('timeouts', node.command_timeouts)
        rejected = d('rejected', node.rejected_odometry + node.rejected_actions)
        stale = d('stale', node.stale_odometry)
        dropped = d('dropped', node.dropped_messages)
        values: dict[str, Any] = {
            'phase': node.phase.name.lower(),
            'episode': node.episode,
            'step': node.step,
            'control rate achieved (Hz)': sent / window_s,
            'transitions sent': node.transitions_sent,
            'commands sent': node.commands_sent,
            'command timeouts (total)': node.command_timeouts,
            'rejected odometry (total)': node.rejected_odometry,
            'rejected actions (total)': node.rejected_actions,
            'stale odometry (total)': node.stale_odometry,
            'dropped messages (total)': node.dropped_messages,
        }
        if node._latest is None:
            return Status(ERROR, 'no odometry received yet (is the base driver running, and '
                                 'odom_topic right?)', values)
        checks = [(OK, f'{node.phase.name.lower()}: {sent / window_s:.1f} transitions/s')]
        if stale > 0:
            checks.append((ERROR, f'odometry went stale {int(stale)} times in the last '
                                  f'{window_s:.1f} s: the base is commanded to stop'))
        if timeouts > 0:
            checks.append((WARN, f'{int(timeouts)} command timeouts: no fresh action (is the '
                                 'planner running?)'))
        if rejected > 0:
            checks.append((WARN, f'rejected {int(rejected)} malformed odometry/action messages'))
        if dropped > 0:
            checks.append((WARN, f'dropped {int(dropped)} messages (a reliable reader lags)'))
        level, message = worst(*checks)
        return Status(level, message, values)
