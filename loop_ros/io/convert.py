"""A robot's own recording (state + commands) -> a loop_ros Transition bag.

``loop-ros bag convert IN --observation-topic /odom --action-topic /cmd_vel --rate 10 --out OUT``
(:func:`convert_bags`). Sources: ``nav_msgs/msg/Odometry`` or ``sensor_msgs/msg/JointState``
for the state, ``geometry_msgs/msg/Twist`` or ``TwistStamped`` for the commands; the message ->
vector mapping is :mod:`loop_ros.io.odometry` (the one a live adapter node uses too).

Alignment rule (``docs/bags.md``), with ``T = 1 / rate``:

1. Time: header stamps when both topics carry them (``time_source: auto`` with Odometry or
   JointState and TwistStamped), else the receive (log) times of both, so one clock orders
   both streams. ``header`` / ``receive`` force one.
2. Episodes: a gap longer than ``max_gap_periods * T`` between two state messages cuts the
   recording into segments (never bridged). A segment's transitions start at its first state
   message (or the first command, if later) and are spaced exactly ``T`` apart: grid times
   ``t_k = t_0 + k T`` up to the segment's last state message.
3. ``s_k`` is the state linearly interpolated at ``t_k`` between the two state messages around
   it (angles unwrapped), mapped to the observation (the task's own mapping when it has one).
4. ``a_k`` is the command in force over ``[t_k, t_k + T)``: the latest command at the middle of
   the interval, ``t_k + T/2`` (the one in force the longest when commands change at most once
   per interval). A command older than ``command_timeout_s`` there is replaced by the zero
   command, as a robot's command watchdog would (0 disables this). Commands outside
   ``[action_low, action_high]`` are clipped (and counted).
5. ``(s_k, a_k, s_{k+1})`` is a transition, stamped ``t_{k+1}``. The last transition of a
   segment is ``truncated`` (also after ``max_episode_steps``).
6. Reward, cost and termination come from ``task`` (its torch functions on the whole batch); a
   terminated transition ends its episode. Without a task they are 0 / False and the metadata
   says ``loop_ros.reward: unset``: the learner's task fills them in (``loop_ros.io.replay``).

Every failure raises one :class:`~loop_ros.io.bags.BagError` and leaves no output.
"""
from __future__ import annotations

from dataclasses import dataclass
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from loop_ros.core.config import _Validated
from loop_ros.core.config import ConfigError
from loop_ros.core.config import param
from loop_ros.core.config import to_dict
from loop_ros.io import odometry
from loop_ros.io.bags import BagError
from loop_ros.io.bags import DEFAULT_TRANSITION_TOPIC
from loop_ros.io.bags import open_bag
from loop_ros.io.bags import iter_messages
from loop_ros.io.bags import select_topic
from loop_ros.io.bags import TransitionData
from loop_ros.io.bags import write_transitions
from loop_ros.io.replay import apply_task
from loop_ros.io.replay import REWARD_KEY
from loop_ros.io.replay import REWARD_UNSET

ODOMETRY_TYPE = 'nav_msgs/msg/Odometry'
JOINT_STATE_TYPE = 'sensor_msgs/msg/JointState'
TWIST_TYPE = 'geometry_msgs/msg/Twist'
TWIST_STAMPED_TYPE = 'geometry_msgs/msg/TwistStamped'
STATE_TYPES = (ODOMETRY_TYPE, JOINT_STATE_TYPE)
COMMAND_TYPES = (TWIST_TYPE, TWIST_STAMPED_TYPE)
STAMPED_TYPES = (ODOMETRY_TYPE, JOINT_STATE_TYPE, TWIST_STAMPED_TYPE)
TIME_SOURCES = ('auto', 'header', 'receive')


@dataclass(frozen=True)
class ConvertConfig(_Validated):
    """Settings of ``loop-ros bag convert`` (each is an option of the same name)."""

    observation_topic: str = param('/odom', 'state topic: nav_msgs/msg/Odometry or '
                                   'sensor_msgs/msg/JointState')
    action_topic: str = param('/cmd_vel', 'command topic: geometry_msgs/msg/Twist or '
                              'TwistStamped')
    rate_hz: float = param(10.0, 'control rate: one transition per period T = 1/rate',
                           (0.01, 10_000.0))
    observation_fields: tuple = param(
        odometry.DEFAULT_OBSERVATION, 'Odometry fields of the observation, in order (one of '
        f"{', '.join(odometry.OBSERVATION_FIELDS)}); a task with its own mapping ignores them")
    joints: tuple[str, ...] = param((), 'JointState joints (positions, then velocities); '
                                    'empty: all, in the order of the first message')
    action_fields: tuple = param(odometry.DEFAULT_ACTION, 'Twist fields of the action, in '
                                 f"order (one of {', '.join(odometry.TWIST_FIELDS)})")
    action_low: tuple = param((-1.0, -1.0), 'physical command mapped to -1, per action field')
    action_high: tuple = param((1.0, 1.0), 'physical command mapped to +1, per action field')
    max_gap_periods: float = param(3.0, 'a gap between state messages longer than this many '
                                   'periods cuts the episode instead of bridging it',
                                   (1.0, 1e6))
    command_timeout_s: float = param(0.5, 'a command older than this at the middle of an '
                                     'interval is replaced by the zero command (the robot\'s '
                                     'watchdog); 0: a command holds until the next one',
                                     (0.0, 1e6))
    time_source: str = param('auto', "'auto': header stamps when both topics have them, else "
                             "receive times; 'header' or 'receive' forces one", TIME_SOURCES)
    max_episode_steps: int = param(0, 'also cut episodes after this many transitions (0: only '
                                   'gaps, terminations and the end of the recording)',
                                   (0, 1_000_000_000))
    task: str = param('', 'registered task (env id) whose reward, cost and termination label '
                      "the transitions; '': left to the learner's task (reward 0, metadata "
                      f'{REWARD_KEY}: {REWARD_UNSET})')
    storage: str = param('mcap', 'storage of the output bag', ('mcap', 'sqlite3'))

    def validate(self) -> None:
        """Fields and bounds must fit together (the message names the setting)."""
        try:
            odometry.check_observation_fields(self.observation_fields)
            odometry.check_action_fields(self.action_fields, self.action_low, self.action_high)
        except ValueError as exc:
            raise ConfigError(f'ConvertConfig: {exc}') from None


@dataclass(frozen=True)
class ConvertResult:
    """What :func:`convert_bags` wrote."""

    path: Path
    data: TransitionData
    stats: dict[str, int]
    reward: str
    """'task' or 'unset'."""


@dataclass
class _Stream:
    """One topic's messages as vectors, sorted by time."""

    topic: str
    msgtype: str
    times: np.ndarray     # (N,) int64 ns
    values: np.ndarray    # (N, D)


def _read_stream(bag: Any, topic: str, msgtype: str, cfg: ConvertConfig, use_header: bool,
                 joints: list[str]) -> _Stream:
    times, values = [], []
    for index, log_ns, msg in iter_messages(bag, topic):
        if use_header:
            stamp = msg.header.stamp
            t = int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
        else:
            t = int(log_ns)
        try:
            if msgtype == ODOMETRY_TYPE:
                v = odometry.odometry_state(msg)
            elif msgtype == JOINT_STATE_TYPE:
                if not joints:
                    joints.extend(cfg.joints or list(msg.name))
                v = odometry.joint_state_vector(msg, joints)
            else:
                v = odometry.twist_vector(msg, cfg.action_fields)
        except (ValueError, AttributeError) as exc:
            raise bag.fail(f'topic {topic}: message {index}: {exc}') from None
        if not np.isfinite(v).all():
            raise bag.fail(f'topic {topic}: message {index} has non-finite values '
                           f'{v.tolist()}')
        times.append(t)
        values.append(v)
    order = np.argsort(np.asarray(times, np.int64), kind='stable')
    return _Stream(topic, msgtype, np.asarray(times, np.int64)[order],
                   np.asarray(values, np.float64)[order])


def _uses_header(bag: Any, types: tuple[str, str], cfg: ConvertConfig) -> bool:
    stamped = all(t in STAMPED_TYPES for t in types)
    if cfg.time_source == 'receive':
        return False
    if cfg.time_source == 'header' and not stamped:
        raise bag.fail(f"time_source 'header' needs stamped messages on both topics, got "
                       f'{types[0]} and {types[1]}')
    return stamped


def _check_stamps(bag: Any, stream: _Stream) -> None:
    if (stream.times <= 0).any():
        raise bag.fail(f'topic {stream.topic}: {int((stream.times <= 0).sum())} message(s) '
                       "have a zero header stamp: use time_source 'receive'")


def _convert_one(path: Path, cfg: ConvertConfig, stats: dict[str, int]
                 ) -> tuple[TransitionData, str]:
    """Transitions of one bag (stream 0), and the name of its producer."""
    period = int(round(1e9 / cfg.rate_hz))
    max_gap = cfg.max_gap_periods * period
    timeout = int(cfg.command_timeout_s * 1e9)
    _, low, high = odometry.check_action_fields(cfg.action_fields, cfg.action_low,
                                                cfg.action_high)
    with open_bag(path) as bag:
        state_topic = select_topic(bag, cfg.observation_topic, STATE_TYPES)
        command_topic = select_topic(bag, cfg.action_topic, COMMAND_TYPES)
        types = {c.topic: c.msgtype for c in bag.reader.connections}
        state_type, command_type = types[state_topic], types[command_topic]
        use_header = _uses_header(bag, (state_type, command_type), cfg)
        joints: list[str] = []
        states = _read_stream(bag, state_topic, state_type, cfg, use_header, joints)
        commands = _read_stream(bag, command_topic, command_type, cfg, use_header, joints)
        if use_header:
            _check_stamps(bag, states)
            _check_stamps(bag, commands)
        fail = bag.fail
    # segments: runs of state messages without a gap longer than max_gap
    cuts = np.flatnonzero(np.diff(states.times) > max_gap) + 1
    stats['gaps_cut'] += len(cuts)
    bounds = np.split(np.arange(len(states.times)), cuts)
    grid_all: list[np.ndarray] = []
    for idx in bounds:
        t_first, t_last = states.times[idx[0]], states.times[idx[-1]]
        start = max(int(t_first), int(commands.times[0]))
        if start > t_last:
            continue
        grid = start + period * np.arange((t_last - start) // period + 1, dtype=np.int64)
        if len(grid) < 2:
            continue
        grid_all.append(grid)
    if not grid_all:
        raise fail(f'no transitions: the state topic {state_topic} and the command topic '
                   f'{command_topic} do not overlap for two periods of {1e3 / cfg.rate_hz:g} '
                   'ms (or every state segment is shorter)')
    obs_list, next_list, act_list, stamp_list, last_list = [], [], [], [], []
    state_map = odometry.state_observation_for(cfg.task) if state_type == ODOMETRY_TYPE \
        else None
    for grid in grid_all:   # interpolation inside a segment only uses that segment's messages
        seg_times = states.times
        if state_type == ODOMETRY_TYPE:
            s = odometry.interpolate_states(seg_times, states.values, grid)
            obs = state_map(s) if state_map is not None else \
                odometry.observation_from_states(s, cfg.observation_fields)
        else:
            obs = np.stack([np.interp(grid, seg_times, states.values[:, j])
                            for j in range(states.values.shape[1])], axis=1).astype(np.float32)
        mid = grid[:-1] + period // 2
        j = np.searchsorted(commands.times, mid, side='right') - 1
        physical = commands.values[np.clip(j, 0, None)].copy()
        stale = (j < 0) | ((mid - commands.times[np.clip(j, 0, None)] > timeout) if timeout
                           else np.zeros(len(mid), bool))
        physical[stale] = 0.0
        stats['commands_timed_out'] += int(stale.sum())
        action, clipped = odometry.normalize_action(physical, low, high)
        stats['commands_clipped'] += int(clipped.sum())
        obs_list.append(obs[:-1])
        next_list.append(obs[1:])
        act_list.append(action)
        stamp_list.append(grid[1:])
        last = np.zeros(len(grid) - 1, bool)
        last[-1] = True
        last_list.append(last)
    n = sum(len(a) for a in act_list)
    data = TransitionData.from_arrays(
        np.concatenate(obs_list), np.concatenate(act_list), np.zeros(n),
        np.concatenate(next_list), truncated=np.concatenate(last_list),
        stamp_ns=np.concatenate(stamp_list))
    producer = Path(path).name
    return data, producer


def _episodes(data: TransitionData, max_steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """episode, step and truncated columns after terminations, segment ends and max_steps."""
    n = len(data)
    episode = np.zeros(n, np.int64)
    step = np.zeros(n, np.int64)
    truncated = np.zeros(n, bool)
    ep = k = 0
    for i in range(n):
        episode[i], step[i] = ep, k
        k += 1
        end = bool(data.truncated[i]) or (max_steps > 0 and k >= max_steps)
        truncated[i] = end and not data.terminated[i]
        if data.terminated[i] or end:
            ep, k = ep + 1, 0
    return episode, step, truncated


def convert_bags(inputs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str],
                 cfg: ConvertConfig, overwrite: bool = False,
                 topic: str = DEFAULT_TRANSITION_TOPIC) -> ConvertResult:
    """Convert one or several recordings of one robot into one Transition bag at ``out``.

    Each input bag is its own stream (producer); episodes are numbered across them.

    Raises:
        BagError: a bad input (missing topic, wrong type, ...), a task that cannot label these
            observations, no transitions, or ``out`` exists (unless ``overwrite``).
    """
    if not inputs:
        raise BagError('no input bag given')
    out = Path(out)
    if out.exists() and not overwrite:
        raise BagError(f'{out} exists already (remove it, or overwrite it)')
    task = None
    if cfg.task:
        import loop_ros.sim  # noqa: F401  (registers the loop_ros/ tasks)
        from loop_ros.core.tasks import registered_tasks
        from loop_ros.core.tasks import get_task
        if cfg.task not in registered_tasks():
            raise BagError(f"unknown task {cfg.task!r}; registered: "
                           f"{', '.join(registered_tasks())}")
        task = get_task(cfg.task)
    stats = {'gaps_cut': 0, 'commands_clipped': 0, 'commands_timed_out': 0}
    parts, producers = [], []
    for path in inputs:
        part, producer = _convert_one(Path(path), cfg, stats)
        parts.append(part)
        producers.append(producer)
    data = parts[0] if len(parts) == 1 else TransitionData.concat(parts)
    if task is not None:
        try:
            data = apply_task(data, task, str(inputs[0]))
        except BagError:
            raise BagError(f'task {cfg.task!r} has no reward function: it cannot label the '
                           "transitions (leave --task empty to let the learner's task do it)"
                           ) from None
        except (IndexError, RuntimeError, ValueError) as exc:
            raise BagError(f'task {cfg.task!r} cannot evaluate observations of size '
                           f'{data.obs_dim} and actions of size {data.act_dim}: {exc}') from None
    episode, step, truncated = _episodes(data, cfg.max_episode_steps)
    data.episode, data.step, data.truncated = episode, step, truncated
    stats.update(transitions=len(data), episodes=int(episode[-1]) + 1 if len(data) else 0,
                 terminated=int(data.terminated.sum()))
    reward = 'task' if task is not None else REWARD_UNSET
    meta = {
        'loop_ros.source': 'loop-ros bag convert',
        'loop_ros.inputs': json.dumps([str(p) for p in inputs]),
        REWARD_KEY: reward,
        'loop_ros.task': cfg.task,
        'loop_ros.observation': json.dumps(
            [f'task:{cfg.task}'] if odometry.state_observation_for(cfg.task) is not None
            else list(cfg.observation_fields)),
        'loop_ros.convert': json.dumps(to_dict(cfg)),
        'loop_ros.stats': json.dumps(stats),
    }
    path = write_transitions(out, data, storage=cfg.storage, topic=topic, metadata=meta,
                             sources=producers, overwrite=overwrite)
    return ConvertResult(path, data, stats, reward)
