"""Standard robot messages -> vectors: THE one mapping, for bags and live nodes alike.

The functions take *duck-typed* messages: rosbags' deserialized messages and rclpy's messages
have the same attribute names (``msg.pose.pose.position.x``, ``msg.twist.twist.linear.x``,
``msg.name``, ``msg.position``), so ``loop-ros bag convert`` and a live adapter node call the
same code. Nothing here imports ROS (``test/test_layering.py``).

* ``nav_msgs/Odometry`` -> a 12-value **state** (:data:`STATE_FIELDS`: position, roll/pitch/yaw
  from the quaternion via transforms3d, and the twist, which REP 105 expresses in the body frame
  ``child_frame_id``) -> an **observation** of named fields (:data:`OBSERVATION_FIELDS`), by
  default :data:`DEFAULT_OBSERVATION` = planar position, yaw as sin/cos, body-frame linear and
  angular velocity. A task may register its own state -> observation function
  (:func:`register_state_observation`; the RC-car tasks do: their 9 circle-relative features).
* ``geometry_msgs/Twist`` / ``TwistStamped`` -> a normalised action: named fields
  (``linear.x``, ``angular.z``, ...) scaled from ``[low, high]`` to ``[-1, 1]``.
* ``sensor_msgs/JointState`` -> positions then velocities of the named joints.

Shapes: states (..., 12) float64; observations (..., O) float32; actions (..., A) float32.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
from transforms3d.euler import quat2euler

STATE_FIELDS = ('x', 'y', 'z', 'roll', 'pitch', 'yaw', 'vx', 'vy', 'vz', 'wx', 'wy', 'wz')
"""Odometry state: position (odom frame, m), attitude (rad; static-axes xyz Euler angles of the
orientation), linear and angular velocity (body frame ``child_frame_id``, m/s and rad/s)."""
ANGLE_FIELDS = ('roll', 'pitch', 'yaw')
DERIVED_FIELDS = ('sin_yaw', 'cos_yaw', 'speed')
"""Observation-only fields: sin/cos of the yaw, planar speed ``hypot(vx, vy)``."""
OBSERVATION_FIELDS = STATE_FIELDS + DERIVED_FIELDS
DEFAULT_OBSERVATION = ('x', 'y', 'sin_yaw', 'cos_yaw', 'vx', 'vy', 'wz')
TWIST_FIELDS = ('linear.x', 'linear.y', 'linear.z', 'angular.x', 'angular.y', 'angular.z')
DEFAULT_ACTION = ('linear.x', 'angular.z')

StateObservation = Callable[[np.ndarray], np.ndarray]
"""(N, 12) states -> (N, O) observations."""
_STATE_OBSERVATIONS: dict[str, StateObservation] = {}


# --- Odometry -----------------------------------------------------------------------------------

def odometry_state(msg: Any) -> np.ndarray:
    """The (12,) :data:`STATE_FIELDS` vector of a ``nav_msgs/Odometry`` message."""
    p = msg.pose.pose.position
    q = msg.pose.pose.orientation
    v = msg.twist.twist.linear
    w = msg.twist.twist.angular
    norm = math.sqrt(q.w * q.w + q.x * q.x + q.y * q.y + q.z * q.z)
    if not norm > 0.0:   # all-zero (unset) or NaN orientation
        raise ValueError(f'odometry orientation is not a rotation (quaternion '
                         f'{[q.x, q.y, q.z, q.w]})')
    roll, pitch, yaw = quat2euler((q.w / norm, q.x / norm, q.y / norm, q.z / norm), 'sxyz')
    return np.array([p.x, p.y, p.z, roll, pitch, yaw, v.x, v.y, v.z, w.x, w.y, w.z],
                    dtype=np.float64)


def check_observation_fields(fields: Sequence[str]) -> tuple[str, ...]:
    """``fields`` as a tuple; ValueError naming an unknown one (and listing the known)."""
    fields = tuple(fields)
    unknown = [f for f in fields if f not in OBSERVATION_FIELDS]
    if unknown or not fields:
        raise ValueError(f'unknown observation field(s) {unknown}; known: '
                         f"{', '.join(OBSERVATION_FIELDS)}")
    return fields


def observation_from_states(states: np.ndarray,
                            fields: Sequence[str] = DEFAULT_OBSERVATION) -> np.ndarray:
    """(N, 12) states -> (N, len(fields)) float32 observations of the named fields."""
    states = np.atleast_2d(np.asarray(states, dtype=np.float64))
    index = {name: i for i, name in enumerate(STATE_FIELDS)}
    cols = []
    for name in check_observation_fields(fields):
        if name == 'sin_yaw':
            cols.append(np.sin(states[:, index['yaw']]))
        elif name == 'cos_yaw':
            cols.append(np.cos(states[:, index['yaw']]))
        elif name == 'speed':
            cols.append(np.hypot(states[:, index['vx']], states[:, index['vy']]))
        else:
            cols.append(states[:, index[name]])
    return np.stack(cols, axis=1).astype(np.float32)


def register_state_observation(env_id: str, fn: StateObservation) -> None:
    """Give task ``env_id`` its own (N, 12) state -> (N, O) observation function."""
    _STATE_OBSERVATIONS[env_id] = fn


def state_observation_for(env_id: str | None) -> StateObservation | None:
    """The registered state -> observation function of ``env_id`` (None if it has none)."""
    if env_id and env_id.startswith('loop_ros/RCCar'):
        _register_rc_car()
    return _STATE_OBSERVATIONS.get(env_id or '')


def _register_rc_car() -> None:
    """The RC car observes 9 circle-relative features of its planar state (sim/rc_car.py), and
    its world position too for the ``...XY-v0`` ids."""
    from functools import partial

    import torch

    from loop_ros.sim import rc_car

    def rc_car_observation(states: np.ndarray, radius: float = 1.0,
                           with_position: bool = False) -> np.ndarray:
        planar = np.asarray(states, np.float64)[:, [0, 1, 5, 6, 7, 11]]  # x y yaw vx vy wz
        with torch.no_grad():
            obs = rc_car.observation_torch(torch.as_tensor(planar), radius, with_position)
        return obs.numpy().astype(np.float32)

    for env_id, kwargs in rc_car.ENV_IDS.items():
        _STATE_OBSERVATIONS.setdefault(env_id, partial(
            rc_car_observation, with_position=bool(kwargs.get('observe_position', False))))


def odometry_observation(msg: Any, fields: Sequence[str] = DEFAULT_OBSERVATION,
                         env_id: str | None = None) -> np.ndarray:
    """The observation of one Odometry message: the task's mapping if it has one, else fields."""
    state = odometry_state(msg)[None]
    fn = state_observation_for(env_id)
    return (fn(state) if fn is not None else observation_from_states(state, fields))[0]


def interpolate_states(times_ns: np.ndarray, states: np.ndarray,
                       query_ns: np.ndarray) -> np.ndarray:
    """Linear interpolation of (N, 12) states at ``query_ns`` (angles unwrapped first).

    ``times_ns`` must be sorted; queries outside ``[times_ns[0], times_ns[-1]]`` are clamped to
    the end values.
    """
    states = np.array(states, dtype=np.float64)
    for name in ANGLE_FIELDS:
        i = STATE_FIELDS.index(name)
        states[:, i] = np.unwrap(states[:, i])
    t = np.asarray(times_ns, dtype=np.float64)
    q = np.asarray(query_ns, dtype=np.float64)
    out = np.stack([np.interp(q, t, states[:, i]) for i in range(states.shape[1])], axis=1)
    for name in ANGLE_FIELDS:
        i = STATE_FIELDS.index(name)
        out[:, i] = (out[:, i] + math.pi) % (2 * math.pi) - math.pi
    return out


# --- Twist commands -----------------------------------------------------------------------------

def check_action_fields(fields: Sequence[str], low: Sequence[float],
                        high: Sequence[float]) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Validated (fields, low, high); ValueError on unknown fields or bounds that do not fit."""
    fields = tuple(fields)
    unknown = [f for f in fields if f not in TWIST_FIELDS]
    if unknown or not fields:
        raise ValueError(f"unknown action field(s) {unknown}; known: {', '.join(TWIST_FIELDS)}")
    lo, hi = np.asarray(low, np.float64), np.asarray(high, np.float64)
    if lo.shape != (len(fields),) or hi.shape != (len(fields),):
        raise ValueError(f'action bounds need one low and one high per field {list(fields)}, '
                         f'got low {lo.tolist()} and high {hi.tolist()}')
    if not (np.isfinite(lo).all() and np.isfinite(hi).all() and (hi > lo).all()):
        raise ValueError(f'action bounds must be finite with high > low, got low '
                         f'{lo.tolist()} and high {hi.tolist()}')
    return fields, lo, hi


def twist_vector(msg: Any, fields: Sequence[str] = DEFAULT_ACTION) -> np.ndarray:
    """The named fields of a Twist (or the ``twist`` of a TwistStamped), in physical units."""
    twist = getattr(msg, 'twist', msg)
    return np.array([getattr(getattr(twist, f.split('.')[0]), f.split('.')[1]) for f in fields],
                    dtype=np.float64)


def normalize_action(values: np.ndarray, low: np.ndarray, high: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Physical commands (..., A) -> ``[-1, 1]``; also the mask of rows that had to be clipped.

    ``a = 2 (u - low) / (high - low) - 1``, clipped to [-1, 1].
    """
    a = 2.0 * (np.asarray(values, np.float64) - low) / (high - low) - 1.0
    clipped = (np.abs(a) > 1.0 + 1e-6).any(axis=-1)
    return np.clip(a, -1.0, 1.0).astype(np.float32), clipped


def denormalize_action(action: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Inverse of :func:`normalize_action` (for an adapter that publishes Twist commands)."""
    return low + (np.clip(np.asarray(action, np.float64), -1.0, 1.0) + 1.0) * 0.5 * (high - low)


# --- JointState ---------------------------------------------------------------------------------

def joint_state_vector(msg: Any, joints: Sequence[str] | None = None) -> np.ndarray:
    """Positions then velocities of ``joints`` (default: all, in message order).

    A message without velocities contributes zeros for them. ValueError names a missing joint.
    """
    names = list(msg.name)
    joints = list(joints) if joints else names
    position = np.asarray(msg.position, np.float64)
    velocity = np.asarray(msg.velocity, np.float64)
    try:
        index = [names.index(j) for j in joints]
    except ValueError:
        missing = [j for j in joints if j not in names]
        raise ValueError(f'joint(s) {missing} not in the JointState (it has {names})') from None
    if len(position) != len(names):
        raise ValueError(f'JointState has {len(names)} names but {len(position)} positions')
    vel = velocity[index] if len(velocity) == len(names) else np.zeros(len(index))
    return np.concatenate([position[index], vel])
