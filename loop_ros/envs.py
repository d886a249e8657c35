"""Making environments the one way every entry point needs them (CLI, sim bridge, planner).

``make_env`` returns a gymnasium env with a flat Box observation and actions normalised to
[-1, 1]. Ids starting with ``loop_ros/`` are registered by importing ``loop_ros.sim`` first.
No ROS imports here: the standalone CLI uses it on machines without ROS.
"""
from __future__ import annotations

import importlib
from typing import Any

import gymnasium
from gymnasium.spaces import Box
from gymnasium.wrappers import FlattenObservation
from gymnasium.wrappers import RescaleAction
import numpy as np


class EnvError(ValueError):
    """The environment cannot be made or does not fit LOOP (a clear message says why)."""


def make_env(env_id: str, seed: int | None = None, **kwargs: Any) -> gymnasium.Env:
    """``gymnasium.make(env_id, **kwargs)``, flat Box observation, actions rescaled to [-1, 1].

    Raises:
        EnvError: unknown id, a non-Box or non-finite action space, or a loop_ros id whose
            simulators fail to import.
    """
    if env_id.startswith('loop_ros/'):
        try:
            importlib.import_module('loop_ros.sim')
        except ImportError as exc:
            raise EnvError(f'env {env_id!r} is registered by loop_ros.sim, which failed to '
                           f'import: {exc}') from exc
    try:
        env = gymnasium.make(env_id, **kwargs)
    except (gymnasium.error.Error, ModuleNotFoundError, TypeError) as exc:
        raise EnvError(f'cannot make env {env_id!r}: {exc}') from exc
    space = env.action_space
    if not isinstance(space, Box) or len(space.shape) != 1:
        env.close()
        raise EnvError(f'env {env_id!r}: LOOP needs a 1-D Box action space, got {space}')
    if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        env.close()
        raise EnvError(f'env {env_id!r}: action bounds must be finite to normalise them, got '
                       f'low={space.low} high={space.high}')
    if not (isinstance(env.observation_space, Box) and len(env.observation_space.shape) == 1):
        env = FlattenObservation(env)
    ones = np.ones(space.shape, dtype=space.dtype)
    env = RescaleAction(env, min_action=-ones, max_action=ones)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def raw_action_bounds(env: gymnasium.Env) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of a :func:`make_env` env's own action space, before the rescaling."""
    space = env.env.action_space   # the Box under RescaleAction
    return np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)


def normalized_action(values: Any, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Physical action values -> the normalised [-1, 1] action (clipped into the box)."""
    span = np.where(high > low, high - low, 1.0)
    a = 2.0 * (np.clip(np.asarray(values, np.float64), low, high) - low) / span - 1.0
    return np.clip(a, -1.0, 1.0).astype(np.float32)
