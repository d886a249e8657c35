"""A real base at the edge of the LOOP graph: velocity commands with limits, and step labels.

Pure numpy + torch (no ROS: ``test/test_layering.py``). The ``robot_adapter`` node
(``loop_ros.nodes.robot_adapter_node``) calls these; its tests run them without a graph.

Commands (``geometry_msgs/Twist`` fields, physical units):

* :class:`CommandLimits`: per field ``[low, high]`` (they define the normalised action space:
  ``a = -1`` is ``low``, ``a = +1`` is ``high``, :func:`loop_ros.io.odometry.normalize_action`)
  and a maximum acceleration (units/s², 0 = unlimited).
* :func:`limit_command`: ``u = clip(u_prev + clip(clip(target, low, high) - u_prev, ±a dt),
  low, high)``, so a command never leaves the bounds and never changes faster than allowed.
* :class:`CommandGovernor`: the command stream of one base. The latest normalised action is the
  target while it is fresher than the timeout; after that, or while the base is held (an
  episode terminated), the target is the zero command, reached through the same acceleration
  limits (a ramp, as ros2_controllers' diff_drive_controller does on its ``cmd_vel_timeout``).
  It keeps the recent commands so the adapter can tell which action was in force at a time
  (the bag converter's rule, ``loop_ros.io.convert``: the command in force at the middle of a
  control interval is that interval's action).

Step labels: :func:`step_labels` evaluates a task's batched torch functions (``Task.reward``,
``Task.cost``, ``Task.terminated``) on one (s, a, s') as ``loop_ros.io.replay.apply_task``
does on a whole bag.
"""
from __future__ import annotations

from bisect import bisect_right
from collections import deque
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from loop_ros.core.tasks import Task
from loop_ros.io import odometry


@dataclass(frozen=True)
class CommandLimits:
    """Bounds and acceleration limits of a base's velocity command, one entry per field.

    Build it with :meth:`create`, which validates. Shapes: ``low``, ``high``,
    ``max_acceleration`` (A,) float64.
    """

    fields: tuple[str, ...]
    low: np.ndarray
    high: np.ndarray
    max_acceleration: np.ndarray
    """Units/s² per field (m/s² for ``linear.*``, rad/s² for ``angular.*``); 0 = unlimited."""

    @classmethod
    def create(cls, fields: Sequence[str], low: Sequence[float], high: Sequence[float],
               max_acceleration: Sequence[float]) -> CommandLimits:
        """Validated limits; ValueError naming what does not fit.

        The bounds must contain 0 (the base must be able to stop) and hold one value per field;
        accelerations must be finite and >= 0.
        """
        names, lo, hi = odometry.check_action_fields(fields, low, high)
        acc = np.asarray(max_acceleration, np.float64)
        if acc.shape != (len(names),):
            raise ValueError(f'max_acceleration needs one value per action field {list(names)}, '
                             f'got {acc.tolist()}')
        if not (np.isfinite(acc).all() and (acc >= 0.0).all()):
            raise ValueError(f'max_acceleration must be finite and >= 0 (0: unlimited), got '
                             f'{acc.tolist()}')
        if ((lo > 0.0) | (hi < 0.0)).any():
            raise ValueError(f'action bounds must contain 0 so the base can be stopped, got low '
                             f'{lo.tolist()} and high {hi.tolist()}')
        return cls(names, lo, hi, acc)

    @property
    def zero(self) -> np.ndarray:
        """The stop command (all fields 0), (A,)."""
        return np.zeros(len(self.fields), np.float64)

    @property
    def symmetric(self) -> bool:
        """``low == -high``: the normalised action 0 (the planner's safe action) is a stop."""
        return bool(np.allclose(self.low, -self.high))

    def to_physical(self, action: np.ndarray) -> np.ndarray:
        """Normalised action (A,) in [-1, 1] -> physical command (A,)."""
        return odometry.denormalize_action(action, self.low, self.high)

    def to_normalized(self, command: np.ndarray) -> np.ndarray:
        """Physical command (A,) -> normalised action (A,) float32, clipped to [-1, 1]."""
        return odometry.normalize_action(command, self.low, self.high)[0]


def limit_command(target: np.ndarray, previous: np.ndarray, dt_s: float,
                  limits: CommandLimits) -> np.ndarray:
    """The next command: towards ``target`` within the bounds and the acceleration limits.

    ``u = clip(u_prev + clip(clip(target, low, high) - u_prev, -a dt, a dt), low, high)`` per
    field (no rate clip where ``a = 0``). The result is inside ``[low, high]`` whatever
    ``previous`` was.

    Shapes: target, previous (A,); returns (A,) float64.
    """
    goal = np.clip(np.asarray(target, np.float64), limits.low, limits.high)
    prev = np.asarray(previous, np.float64)
    change = goal - prev
    bound = limits.max_acceleration * max(float(dt_s), 0.0)
    change = np.where(limits.max_acceleration > 0.0, np.clip(change, -bound, bound), change)
    return np.clip(prev + change, limits.low, limits.high)


class CommandGovernor:
    """The command stream of one base: latest action -> limited physical command.

    Call :meth:`receive` with each accepted normalised action and :meth:`update` at the
    command rate; every value :meth:`update` returns is what goes to the base. Times are
    seconds of one clock (the node's).

    Args:
        limits: bounds and acceleration limits.
        timeout_s: an action older than this no longer drives the base: the target becomes the
            zero command.
        max_dt_s: the longest gap between updates that counts for the acceleration limit (a
            stalled timer must not allow a jump).
        history_s: how long the sent commands are kept for :meth:`action_at`.
    """

    def __init__(self, limits: CommandLimits, timeout_s: float, max_dt_s: float = 0.1,
                 history_s: float = 5.0) -> None:
        self.limits = limits
        self.timeout_s = float(timeout_s)
        self.max_dt_s = float(max_dt_s)
        self.history_s = float(history_s)
        self.command = limits.zero
        self._action: np.ndarray | None = None
        self._action_t = -np.inf
        self._last_t: float | None = None
        self._times: deque[float] = deque()
        self._actions: deque[np.ndarray] = deque()

    @property
    def has_action(self) -> bool:
        """An action was received since the last :meth:`clear`."""
        return self._action is not None

    def receive(self, action: np.ndarray, t_s: float) -> None:
        """A new normalised action (A,), received at ``t_s``."""
        self._action = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        self._action_t = float(t_s)

    def clear(self) -> None:
        """Forget the latest action (a new episode waits for the planner's next answer)."""
        self._action = None
        self._action_t = -np.inf

    def fresh(self, t_s: float) -> bool:
        """The latest action is younger than the timeout at ``t_s``."""
        return self._action is not None and t_s - self._action_t <= self.timeout_s

    def update(self, t_s: float, hold: bool = False) -> tuple[np.ndarray, bool]:
        """The command to send at ``t_s``, and whether it is heading for zero because the
        action timed out (False while ``hold`` or before any action).

        Target: the latest action in physical units when it is fresh and not ``hold``, else
        the zero command; then :func:`limit_command` with ``dt`` = time since the last update
        (at most ``max_dt_s``; 0 for the first).
        """
        fresh = self.fresh(t_s)
        timed_out = not hold and self._action is not None and not fresh
        target = self.limits.to_physical(self._action) if (fresh and not hold) \
            else self.limits.zero
        dt = 0.0 if self._last_t is None else min(max(t_s - self._last_t, 0.0), self.max_dt_s)
        self.command = limit_command(target, self.command, dt, self.limits)
        self._last_t = float(t_s)
        self._remember(float(t_s), self.limits.to_normalized(self.command))
        return self.command.copy(), timed_out

    def set_limits(self, limits: CommandLimits) -> None:
        """New limits (same fields); the current command is clipped into the new bounds."""
        self.limits = limits
        self.command = np.clip(self.command, limits.low, limits.high)

    def _remember(self, t_s: float, action: np.ndarray) -> None:
        self._times.append(t_s)
        self._actions.append(action)
        while len(self._times) > 1 and self._times[1] <= t_s - self.history_s:
            self._times.popleft()
            self._actions.popleft()

    def action_at(self, t_s: float) -> np.ndarray:
        """The normalised command in force at ``t_s`` (A,) float32: the last one sent at or
        before ``t_s`` (the oldest kept one before that; the stop command before any)."""
        if not self._times:
            return self.limits.to_normalized(self.limits.zero)
        i = bisect_right(self._times, t_s) - 1
        return self._actions[max(i, 0)].copy()


def step_labels(task: Task, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray,
                missing_reward: float | None = None) -> tuple[float, float, bool]:
    """``(reward, cost, terminated)`` of one step from the task's torch functions.

    ``cost`` is 0 and ``terminated`` False when the task has none. A task without a reward
    function raises ValueError unless ``missing_reward`` gives the value to use.

    Shapes: obs, next_obs (O,); action (A,).
    """
    o, a, n = (torch.as_tensor(np.asarray(v, np.float32))[None] for v in (obs, action, next_obs))
    with torch.no_grad():
        if task.reward is not None:
            reward = float(task.reward(o, a, n)[0])
        elif missing_reward is not None:
            reward = float(missing_reward)
        else:
            raise ValueError('the task has no reward function')
        cost = float(task.cost(o, a, n)[0]) if task.cost is not None else 0.0
        terminated = bool(task.terminated(n)[0])
    return reward, cost, terminated
