"""numpy <-> ROS message conversions with validation.

Every ``*_from_msg`` and every builder checks lengths and finiteness and raises ``ValueError``
with a message that names the field, so a node can reject a bad message with a throttled warning
instead of crashing (or, worse, feeding NaNs into a learner).

Messages (see ``msg/`` and ``docs/ros.md``):

* ``loop_ros/Observation`` (header + ``data``): stamped, so the planner can judge staleness;
* ``loop_ros/Action`` (header + ``data``, normalised to [-1, 1]): stamped with the observation
  it answers, so the bridge can measure latency;
* ``loop_ros/Transition``: one step (s, a, r, c, s') for the learner;
* ``std_msgs/Float32MultiArray`` helpers for tools that speak plain arrays (empty layout).
"""
from __future__ import annotations

import array
import math
from typing import Any, Callable, NamedTuple, Sequence

from builtin_interfaces.msg import Time
from nav_msgs.msg import Odometry
import numpy as np
from std_msgs.msg import Float32MultiArray
from transforms3d.euler import euler2quat

from loop_ros.msg import Action
from loop_ros.msg import Observation
from loop_ros.msg import Transition

__all__ = [
    'TransitionArrays', 'action_from_msg', 'action_msg', 'check_vector', 'float32_array',
    'from_float32_multi_array', 'observation_from_msg', 'observation_msg', 'odometry_msg',
    'to_float32_multi_array', 'transition_from_msg', 'transition_msg', 'stream_key',
    'validated',
]

REJECT_LOG_PERIOD_S = 2.0
"""At most one warning per this many seconds about rejected messages of one kind."""


def check_vector(values: Any, name: str, length: int | None = None) -> np.ndarray:
    """``values`` as a finite 1-D float32 array; ``ValueError`` naming ``name`` otherwise.

    Values that are finite in float64 but overflow float32 are rejected too.
    """
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f'{name}: not a numeric vector ({exc})') from None
    if arr.ndim != 1:
        raise ValueError(f'{name}: expected a 1-D vector, got shape {arr.shape}')
    if length is not None and arr.shape[0] != length:
        raise ValueError(f'{name}: expected {length} values, got {arr.shape[0]}')
    with np.errstate(over='ignore'):
        out = arr.astype(np.float32)
    bad = ~np.isfinite(out)
    if bad.any():
        idx = np.flatnonzero(bad)
        raise ValueError(f'{name}: non-finite value(s) {arr[idx[:4]].tolist()} at index '
                         f'{idx[:4].tolist()} (NaN, inf or beyond float32)')
    return out


def _check_scalar(value: float, name: str) -> float:
    v = float(value)
    if not math.isfinite(v) or abs(v) > np.finfo(np.float32).max:
        raise ValueError(f'{name}: non-finite value {value!r} (NaN, inf or beyond float32)')
    return v


def float32_array(values: np.ndarray) -> array.array:
    """A float32 numpy vector as the ``array.array('f')`` message fields hold."""
    return array.array('f', np.ascontiguousarray(values, dtype=np.float32).tobytes())


def _msg_vector(field: Any) -> np.ndarray:
    return np.array(field, dtype=np.float32)


def observation_msg(obs: Any, stamp: Time, frame_id: str = '', episode: int = 0,
                    step: int = 0) -> Observation:
    """Build a stamped ``Observation`` (validates ``obs``)."""
    msg = Observation()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.data = float32_array(check_vector(obs, 'observation'))
    msg.episode = int(episode)
    msg.step = int(step)
    return msg


def observation_from_msg(msg: Observation, obs_dim: int | None = None) -> np.ndarray:
    """The observation vector of ``msg`` (float32); ``ValueError`` on bad length or values."""
    return check_vector(_msg_vector(msg.data), 'observation', obs_dim)


def action_msg(action: Any, stamp: Time, source: str = '', frame_id: str = '') -> Action:
    """Build an ``Action``; ``stamp`` is the stamp of the observation it answers, ``source``
    the sending planner.

    Raises ``ValueError`` for non-finite values or values outside [-1, 1].
    """
    vec = check_vector(action, 'action')
    if np.any(np.abs(vec) > 1.0 + 1e-6):
        raise ValueError(f'action: normalised actions must lie in [-1, 1], got {vec.tolist()}')
    msg = Action()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.source = source
    msg.data = float32_array(vec)
    return msg


def action_from_msg(msg: Action, act_dim: int | None = None, clip: bool = True) -> np.ndarray:
    """The normalised action of ``msg``, clipped to [-1, 1] when ``clip``.

    Raises ``ValueError`` on a wrong length or a non-finite value.
    """
    vec = check_vector(_msg_vector(msg.data), 'action', act_dim)
    return np.clip(vec, -1.0, 1.0) if clip else vec


class TransitionArrays(NamedTuple):
    """One step as numpy arrays (float32 vectors)."""

    obs: np.ndarray
    action: np.ndarray
    next_obs: np.ndarray
    reward: float
    cost: float
    terminated: bool
    truncated: bool
    episode: int
    step: int


def transition_msg(obs: Any, action: Any, next_obs: Any, reward: float, cost: float,
                   terminated: bool, truncated: bool, stamp: Time, frame_id: str = '',
                   episode: int = 0, step: int = 0, source: str = '') -> Transition:
    """Build a ``Transition``; ``stamp`` is the time ``next_obs`` was observed, ``frame_id``
    the robot's body frame, ``source`` the producer (the learner's stream key).

    Raises ``ValueError`` when ``obs`` and ``next_obs`` differ in length, or a value is not
    finite.
    """
    o = check_vector(obs, 'transition.obs')
    msg = Transition()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.source = source
    msg.obs = float32_array(o)
    msg.action = float32_array(check_vector(action, 'transition.action'))
    msg.next_obs = float32_array(check_vector(next_obs, 'transition.next_obs', o.shape[0]))
    msg.reward = _check_scalar(reward, 'transition.reward')
    msg.cost = _check_scalar(cost, 'transition.cost')
    msg.terminated = bool(terminated)
    msg.truncated = bool(truncated)
    msg.episode = int(episode)
    msg.step = int(step)
    return msg


def validated(node: Any, counter: str, what: str, convert: Callable[..., Any], *args: Any
              ) -> Any | None:
    """``convert(*args)``; on ValueError None, after counting ``node.<counter>`` and logging why
    (throttled): how every subscriber refuses a malformed message and keeps running."""
    try:
        return convert(*args)
    except ValueError as exc:
        count = getattr(node, counter) + 1
        setattr(node, counter, count)
        node.get_logger().warning(f'rejected {what} ({count} so far): {exc}',
                                  throttle_duration_sec=REJECT_LOG_PERIOD_S)
        return None


def stream_key(msg: Any) -> str:
    """The producer of a Transition: ``source``, or ``header.frame_id`` when a producer leaves
    ``source`` empty (hand-written publishers, bags converted from other recordings)."""
    return getattr(msg, 'source', '') or msg.header.frame_id


def transition_from_msg(msg: Transition, obs_dim: int | None = None,
                        act_dim: int | None = None) -> TransitionArrays:
    """Validated numpy view of a ``Transition``.

    Raises ``ValueError`` on a length mismatch (obs vs next_obs, or vs the given dims) or a
    non-finite value.
    """
    obs = check_vector(_msg_vector(msg.obs), 'transition.obs', obs_dim)
    next_obs = check_vector(_msg_vector(msg.next_obs), 'transition.next_obs', obs.shape[0])
    action = check_vector(_msg_vector(msg.action), 'transition.action', act_dim)
    return TransitionArrays(
        obs=obs, action=action, next_obs=next_obs,
        reward=_check_scalar(msg.reward, 'transition.reward'),
        cost=_check_scalar(msg.cost, 'transition.cost'),
        terminated=bool(msg.terminated), truncated=bool(msg.truncated),
        episode=int(msg.episode), step=int(msg.step))


def to_float32_multi_array(values: Any) -> Float32MultiArray:
    """A header-less ``Float32MultiArray`` (empty layout: a plain vector)."""
    msg = Float32MultiArray()
    msg.data = float32_array(check_vector(values, 'Float32MultiArray.data'))
    return msg


def from_float32_multi_array(msg: Float32MultiArray, length: int | None = None) -> np.ndarray:
    """The data of a ``Float32MultiArray`` as a validated float32 vector."""
    return check_vector(_msg_vector(msg.data), 'Float32MultiArray.data', length)


def odometry_msg(pose_twist: Sequence[float], stamp: Time, frame_id: str = 'odom',
                 child_frame_id: str = 'base_link') -> Odometry:
    """``nav_msgs/Odometry`` from ``(x, y, yaw, v_x, v_y, yaw_rate)``.

    Planar pose in ``frame_id``; ``v_x, v_y`` are body-frame velocities (REP 105: the twist is
    expressed in ``child_frame_id``).
    """
    x, y, yaw, vx, vy, yaw_rate = (float(v) for v in check_vector(pose_twist, 'pose_twist', 6))
    w, qx, qy, qz = euler2quat(0.0, 0.0, yaw)  # (w, x, y, z) order
    msg = Odometry()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.child_frame_id = child_frame_id
    msg.pose.pose.position.x = x
    msg.pose.pose.position.y = y
    msg.pose.pose.orientation.w = float(w)
    msg.pose.pose.orientation.x = float(qx)
    msg.pose.pose.orientation.y = float(qy)
    msg.pose.pose.orientation.z = float(qz)
    msg.twist.twist.linear.x = vx
    msg.twist.twist.linear.y = vy
    msg.twist.twist.angular.z = yaw_rate
    return msg
