"""RC-car circle and drift environments (gymnasium API), and their planner tasks.

The simulated RC car of the LOOP paper (sec. 6, app. C; spec sec. 9): E. Ahn's 3-DoF dynamic
bicycle with brush tyres (:mod:`loop_ros.sim.rc_car_dynamics`), asked to drive around a circle
of radius ``r`` = 1 m centred on the origin, counter-clockwise, while staying inside the 1.2 m
safety boundary.

Registered ids (``import loop_ros.sim``): ``loop_ros/RCCarCircle-v0`` and
``loop_ros/RCCarDrift-v0``; both 100-step episodes of 0.1 s, with their reward, cost and
termination registered in :mod:`loop_ros.core.tasks` under the same ids.
``loop_ros/RCCarCircleXY-v0`` and ``loop_ros/RCCarDriftXY-v0`` are the same tasks observing
the car's world position too (11 features, below), which keep-out zones need.
``loop_ros/RCCarCircle20Hz-v0`` is the circle task at 20 Hz (200 steps of 0.05 s).

Observation (float32, 9), all relative to the circle, so the task is invariant to rotations
about the origin and these features are a Markov state of the car:

====  ============  ==========================================================================
 idx   name          meaning
====  ============  ==========================================================================
  0    dx            distance to the origin minus r (m); > 0 outside the circle
  1    theta         heading error: direction of the CCW circle tangent minus yaw, [-pi, pi)
  2    d(dx)/dt      radial speed (m/s)
  3    d(theta)/dt   rate of the tangent direction minus the yaw rate (rad/s)
  4    v_x           body-frame forward velocity (m/s)
  5    v_y           body-frame leftward velocity (m/s)
  6    yaw_rate      r (rad/s)
  7    sin(theta)    smooth heading error (no wrap jump for a learned model)
  8    cos(theta)
  9    x             world position (m; only with ``observe_position``, the ``...XY-v0`` ids)
 10    y
====  ============  ==========================================================================

Indices 0-3 are the reference's ``CircleEnv`` observation (its d(dx)/dt mixed body and world
frames; here both rates are exact). Action: ``a in [-1, 1]^2``; ``a[0]`` -> rear-wheel speed
0..10 m/s, ``a[1]`` -> steering +-pi/6 rad
(:func:`~loop_ros.sim.rc_car_dynamics.action_to_controls`).

Rewards, on the next observation (speed ``v = sqrt(v_x^2 + v_y^2)``):

* ``circle``: ``-|dx| - 0.25 (v - v_target)^2 - 0.25 max(0, |theta| - pi/2)^2`` (the
  reference's ``CircleEnv``; ``v_target`` = 1 m/s by default).
* ``drift``: ``v_t - 2 |dx|`` with ``v_t = v_x cos(theta) + v_y sin(theta)`` the speed along the
  CCW tangent. Speed on the 1 m circle is capped by friction: holding it at the limit puts both
  axles near full slide (tyre slip ~40 deg), and the rear's kinetic friction (mu_k > mu_s)
  makes a powered slide the fastest way round, so the optimum drifts (|side slip| > 10 deg).
  The ``|dx|`` weight (2 per m) exceeds the speed gained by a wider circle (dv/dr ~ v / 2r).

Cost (both tasks, the paper's constraint): ``1`` when the car is outside the 1.2 m boundary
(``dx > 0.2``), else 0, reported as ``info['cost']``. The boundary is the default of a
:class:`~loop_ros.core.constraints.PlanarConstraints` set that can be replaced while running
(:meth:`RCCarEnv.set_constraints`; the planner's copy through
:class:`~loop_ros.core.constraint_cost.ConstraintCost`): another boundary radius, and keep-out
circles and polygons in the world frame. Keep-out zones need the ``...XY-v0`` observation: the
circle-relative features fix the car's position only up to a rotation about the origin, which
leaves the boundary unchanged but not a zone. The boundary does not end the episode,
and by default nothing but a non-finite state does (``terminated=True``): with rewards that are
negative per step, ending the episode early would pay (leaving would beat staying), so the
registered tasks have no arena. An ``arena_radius`` can still be given to end runaway episodes
(e.g. to mirror a real track's limits); the planner's termination function follows it.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from functools import partial
import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from loop_ros.core.constraint_cost import check_observable
from loop_ros.core.constraint_cost import ConstraintCost
from loop_ros.core.constraint_cost import ObservedPosition
from loop_ros.core.constraints import PlanarConstraints
from loop_ros.core.tasks import Task, register_task
from loop_ros.sim.rc_car_dynamics import (ACTION_DIM, DEFAULT_PARAMS, STATE_DIM, RCCarParams,
                                          action_to_controls, step_scalar, wrap_angle,
                                          wrap_angle_torch)

OBS_DX, OBS_THETA, OBS_DDX, OBS_DTHETA = 0, 1, 2, 3
OBS_VX, OBS_VY, OBS_YAW_RATE, OBS_SIN_THETA, OBS_COS_THETA = 4, 5, 6, 7, 8
OBS_DIM = 9
OBS_NAMES = ('dx', 'theta', 'ddx', 'dtheta', 'v_x', 'v_y', 'yaw_rate', 'sin_theta',
             'cos_theta')
OBS_X, OBS_Y = 9, 10
OBS_DIM_WITH_POSITION = 11
"""Observation size of the ``...XY-v0`` ids: the 9 features, then the world position x, y."""

TASKS = ('circle', 'drift')
CIRCLE_SPEED_WEIGHT = 0.25
"""lambda_1 of the reference's circle reward (speed error)."""
CIRCLE_HEADING_WEIGHT = 0.25
"""lambda_2 of the reference's circle reward (heading error beyond pi/2)."""
DRIFT_DX_WEIGHT = 2.0
"""Penalty per metre of |dx| in the drift reward."""
MIN_RADIUS = 0.01
"""Distance to the origin (m) below which the rates divide by this instead (no division by 0)."""
MAX_ANGULAR_RATE = 1e3
"""Clip of d(theta)/dt (rad/s), which grows as 1 / distance near the origin."""
OBS_LIMIT = 1e4
"""Bound of the observation space for the unbounded features (no physical state reaches it)."""

ENV_IDS = {
    'loop_ros/RCCarCircle-v0': {'task': 'circle'},
    'loop_ros/RCCarDrift-v0': {'task': 'drift'},
    'loop_ros/RCCarCircleXY-v0': {'task': 'circle', 'observe_position': True},
    'loop_ros/RCCarDriftXY-v0': {'task': 'drift', 'observe_position': True},
    'loop_ros/RCCarCircle20Hz-v0': {'task': 'circle', 'dt': 0.05, 'max_episode_steps': 200},
}
"""Registered ids and their :class:`RCCarEnv` arguments. ``RCCarCircle20Hz-v0`` is the circle
task controlled at 20 Hz: the same 10 s episodes in 200 steps of 0.05 s."""
SIM_ONLY_ARGUMENTS = ('dt', 'substeps', 'max_episode_steps')
"""Env arguments that the planner task does not depend on."""
POSITION_HINT = 'use loop_ros/RCCarCircleXY-v0 or loop_ros/RCCarDriftXY-v0, which observe it'
MAX_EPISODE_STEPS = 100
START_STEPS = 500
"""Uniform-random steps before the agent acts: five 100-step episodes."""


# ----------------------------------------------------------------------------------------------
# State -> observation


def observation_scalar(state: tuple[float, ...], radius: float = 1.0,
                       with_position: bool = False) -> tuple[float, ...]:
    """The 9 circle-relative features of one state, as Python floats (see the module table).

    ``with_position``: the world position x, y follows (11 features).
    """
    x, y, yaw, v_x, v_y, yaw_rate = state
    rho = math.hypot(x, y)
    inv_rho = 1.0 / (rho if rho > MIN_RADIUS else MIN_RADIUS)
    theta = wrap_angle(math.atan2(y, x) + 0.5 * math.pi - yaw)
    cos_yaw = math.cos(yaw)
    sin_yaw = math.sin(yaw)
    v_world_x = v_x * cos_yaw - v_y * sin_yaw
    v_world_y = v_x * sin_yaw + v_y * cos_yaw
    radial_speed = (x * v_world_x + y * v_world_y) * inv_rho
    angular_rate = (x * v_world_y - y * v_world_x) * inv_rho * inv_rho
    theta_rate = angular_rate - yaw_rate
    if theta_rate > MAX_ANGULAR_RATE:  # only within centimetres of the origin
        theta_rate = MAX_ANGULAR_RATE
    elif theta_rate < -MAX_ANGULAR_RATE:
        theta_rate = -MAX_ANGULAR_RATE
    features = (rho - radius, theta, radial_speed, theta_rate, v_x, v_y, yaw_rate,
                math.sin(theta), math.cos(theta))
    return features + (x, y) if with_position else features


def observation_torch(state: torch.Tensor, radius: float = 1.0,
                      with_position: bool = False) -> torch.Tensor:
    """Batched :func:`observation_scalar`: what the env would observe in ``state``.

    Lets a ground-truth model (:class:`~loop_ros.sim.rc_car_dynamics.RCCarDynamicsTorch`)
    produce observations for planner tests.

    Shapes:
        state: (..., 6) ``(x, y, yaw, v_x, v_y, yaw_rate)``; returns (..., 9), or (..., 11)
        ``with_position``, same dtype.
    """
    x, y, yaw, v_x, v_y, yaw_rate = state.unbind(-1)
    rho = torch.hypot(x, y)
    inv_rho = 1.0 / rho.clamp_min(MIN_RADIUS)
    theta = wrap_angle_torch(torch.atan2(y, x) + 0.5 * math.pi - yaw)
    cos_yaw = torch.cos(yaw)
    sin_yaw = torch.sin(yaw)
    v_world_x = v_x * cos_yaw - v_y * sin_yaw
    v_world_y = v_x * sin_yaw + v_y * cos_yaw
    radial_speed = (x * v_world_x + y * v_world_y) * inv_rho
    angular_rate = (x * v_world_y - y * v_world_x) * inv_rho * inv_rho
    theta_rate = (angular_rate - yaw_rate).clamp(-MAX_ANGULAR_RATE, MAX_ANGULAR_RATE)
    features = (rho - radius, theta, radial_speed, theta_rate, v_x, v_y, yaw_rate,
                torch.sin(theta), torch.cos(theta))
    return torch.stack(features + ((x, y) if with_position else ()), dim=-1)


def state_from_observation_torch(obs: torch.Tensor, radius: float = 1.0) -> torch.Tensor:
    """A state ``(x, y, yaw, v_x, v_y, yaw_rate)`` the car is in when it observes ``obs``.

    Exact with the world position (11 features). From the 9 circle-relative features the state
    is fixed only up to a rotation about the origin: the car is put on the positive x axis
    (polar angle 0), which every reward, the boundary and the dynamics are invariant to. With
    :func:`observation_torch` and the batched dynamics this makes a perfect model for tests.

    Shapes:
        obs: (..., 9) or (..., 11) -> (..., 6), same dtype.
    """
    position = _position(obs, radius)
    x, y = position.unbind(-1)
    yaw = _heading(obs, radius)
    return torch.stack((x, y, yaw, obs[..., OBS_VX], obs[..., OBS_VY], obs[..., OBS_YAW_RATE]),
                       dim=-1)


def _position(obs: torch.Tensor, radius: float) -> torch.Tensor:
    """(..., 2) world x, y: observed (11 features), else (dx + r, 0) on the positive x axis."""
    if obs.shape[-1] == OBS_DIM_WITH_POSITION:
        return obs[..., OBS_X:OBS_Y + 1]
    rho = obs[..., OBS_DX] + radius
    return torch.stack((rho, torch.zeros_like(rho)), dim=-1)


def _heading(obs: torch.Tensor, radius: float) -> torch.Tensor:
    """(...) yaw = polar angle + pi/2 - theta (theta: heading error to the CCW tangent)."""
    x, y = _position(obs, radius).unbind(-1)
    return wrap_angle_torch(torch.atan2(y, x) + 0.5 * math.pi - obs[..., OBS_THETA])


# ----------------------------------------------------------------------------------------------
# Tasks: reward, cost and termination on (predicted) observations


@dataclass(frozen=True)
class RCCarTask:
    """Reward, cost and termination of one RC-car task, in batched torch and in scalar form.

    The torch methods take observations with any leading shape and never leave their device;
    the env evaluates the scalar twins on its float64 features, so both agree to float32
    precision on real observations.

    Shapes:
        obs, next_obs: (..., 9); action: (..., 2); every method returns (...).
    """

    name: str = 'circle'
    """'circle' (follow the circle at ``target_speed``) or 'drift' (go round it fast)."""
    radius: float = 1.0
    """Radius r of the circle to follow (m)."""
    target_speed: float = 1.0
    """v_target of the circle reward (m/s); also sets the reset speed range U(0, 2 v_target)."""
    boundary_radius: float = 1.2
    """Cost 1 per step beyond this distance from the origin (m)."""
    arena_radius: float = math.inf
    """The episode terminates beyond this distance from the origin (m); none by default."""
    observe_position: bool = False
    """The observation ends with the world position x, y (11 features): keep-out zones work."""

    def __post_init__(self) -> None:
        if self.name not in TASKS:
            raise ValueError(f'unknown RC-car task {self.name!r}; known: {TASKS}')
        if not 0.0 < self.radius < self.boundary_radius < self.arena_radius:
            raise ValueError('need 0 < radius < boundary_radius < arena_radius, got '
                             f'{self.radius}, {self.boundary_radius}, {self.arena_radius}')

    def reward(self, obs: torch.Tensor, action: torch.Tensor,
               next_obs: torch.Tensor) -> torch.Tensor:
        """Reward of reaching ``next_obs`` (``obs`` and ``action`` are unused)."""
        dx = next_obs[..., OBS_DX]
        v_x = next_obs[..., OBS_VX]
        v_y = next_obs[..., OBS_VY]
        sin_theta = next_obs[..., OBS_SIN_THETA]
        cos_theta = next_obs[..., OBS_COS_THETA]
        if self.name == 'drift':
            # r = v_t - 2 |dx|, v_t = v_x cos(theta) + v_y sin(theta)
            return v_x * cos_theta + v_y * sin_theta - DRIFT_DX_WEIGHT * dx.abs()
        # r = -|dx| - 0.25 (v - v_target)^2 - 0.25 max(0, |theta| - pi/2)^2
        speed = torch.hypot(v_x, v_y)
        heading_excess = (torch.atan2(sin_theta, cos_theta).abs() - 0.5 * math.pi).clamp_min(0.0)
        return (-dx.abs() - CIRCLE_SPEED_WEIGHT * (speed - self.target_speed) ** 2
                - CIRCLE_HEADING_WEIGHT * heading_excess ** 2)

    @property
    def obs_dim(self) -> int:
        """9, or 11 with ``observe_position``."""
        return OBS_DIM_WITH_POSITION if self.observe_position else OBS_DIM

    @property
    def default_constraints(self) -> PlanarConstraints:
        """The task's own constraint: the boundary circle, no keep-out zone."""
        return PlanarConstraints(self.boundary_radius)

    def observed_position(self) -> ObservedPosition:
        """Where an observation puts the car (up to a rotation without ``observe_position``)."""
        return ObservedPosition(position=partial(_position, radius=self.radius),
                                heading=partial(_heading, radius=self.radius),
                                absolute=self.observe_position, hint=POSITION_HINT)

    def check_constraints(self, constraints: PlanarConstraints) -> None:
        """ConstraintError when this task's observation cannot evaluate ``constraints``."""
        check_observable(constraints, self.observed_position())

    def cost(self, obs: torch.Tensor, action: torch.Tensor,
             next_obs: torch.Tensor) -> torch.Tensor:
        """1 where ``next_obs`` is outside the boundary circle (distance > boundary), else 0.

        The default constraints only; a planner's task uses a :class:`ConstraintCost`
        (:meth:`planner_task`), which run-time constraints replace.
        """
        return self._default_cost(obs, action, next_obs)

    @cached_property
    def _default_cost(self) -> ConstraintCost:
        return ConstraintCost(self.default_constraints, self.observed_position())

    def termination(self, next_obs: torch.Tensor) -> torch.Tensor:
        """True where ``next_obs`` is outside the arena or not finite."""
        outside = next_obs[..., OBS_DX] > self.arena_radius - self.radius
        return outside | ~torch.isfinite(next_obs).all(dim=-1)

    def reward_scalar(self, next_obs: tuple[float, ...]) -> float:
        """:meth:`reward` of one observation given as floats."""
        dx = next_obs[OBS_DX]
        v_x = next_obs[OBS_VX]
        v_y = next_obs[OBS_VY]
        if self.name == 'drift':
            return (v_x * next_obs[OBS_COS_THETA] + v_y * next_obs[OBS_SIN_THETA]
                    - DRIFT_DX_WEIGHT * abs(dx))
        heading_excess = max(0.0, abs(next_obs[OBS_THETA]) - 0.5 * math.pi)
        return (-abs(dx) - CIRCLE_SPEED_WEIGHT * (math.hypot(v_x, v_y) - self.target_speed) ** 2
                - CIRCLE_HEADING_WEIGHT * heading_excess ** 2)


    def terminated_scalar(self, next_obs: tuple[float, ...]) -> bool:
        """:meth:`termination` of one observation given as floats."""
        if not all(math.isfinite(value) for value in next_obs):
            return True
        return next_obs[OBS_DX] > self.arena_radius - self.radius

    def planner_task(self, start_steps: int = START_STEPS) -> Task:
        """The :class:`~loop_ros.core.tasks.Task` a planner registers for this task.

        Its cost is a :class:`ConstraintCost` starting from :attr:`default_constraints`
        (``own_constraint_cost`` gives each planner a copy it can change at run time).
        """
        cost = ConstraintCost(self.default_constraints, self.observed_position())
        return Task(termination=self.termination, reward=self.reward, cost=cost,
                    start_steps=start_steps,
                    body_twist_indices=(OBS_VX, OBS_VY, OBS_YAW_RATE))


# ----------------------------------------------------------------------------------------------
# Environment


class RCCarEnv(gym.Env[np.ndarray, np.ndarray]):
    """RC car around a 1 m circle (LOOP sec. 6 / spec sec. 9); see the module docstring.

    Args:
        task: 'circle' or 'drift'.
        target_speed: v_target of the circle reward (m/s); resets draw v_x ~ U(0, 2 v_target).
        radius: circle radius r (m).
        boundary_radius: cost 1 per step beyond it (m).
        arena_radius: terminate beyond it (m).
        dt: control period (s).
        substeps: fixed RK4 steps per control period.
        max_episode_steps: truncate after this many steps.
        params: vehicle parameters.
        render_mode: None or 'rgb_array' (a top-down frame of ``render_size`` pixels).
        render_size: side of the rendered square frame (pixels).
        observe_position: append the world position x, y to the observation (11 features).
    """

    metadata: dict[str, Any] = {'render_modes': ['rgb_array'], 'render_fps': 10}

    def __init__(self, task: str = 'circle', target_speed: float = 1.0, radius: float = 1.0,
                 boundary_radius: float = 1.2, arena_radius: float = math.inf, dt: float = 0.1,
                 substeps: int = 5, max_episode_steps: int = MAX_EPISODE_STEPS,
                 params: RCCarParams | None = None, render_mode: str | None = None,
                 render_size: int = 320, observe_position: bool = False) -> None:
        if dt <= 0.0 or substeps < 1 or max_episode_steps < 1:
            raise ValueError('need dt > 0, substeps >= 1 and max_episode_steps >= 1')
        if render_mode is not None and render_mode not in self.metadata['render_modes']:
            raise ValueError(f'render_mode must be None or one of '
                             f"{self.metadata['render_modes']}, got {render_mode!r}")
        self.task_spec = RCCarTask(task, radius, target_speed, boundary_radius, arena_radius,
                                   observe_position)
        self._constraints = self.task_spec.default_constraints
        self.params = params if params is not None else DEFAULT_PARAMS
        self.dt = float(dt)
        self.substeps = int(substeps)
        self.max_episode_steps = int(max_episode_steps)
        self.render_mode = render_mode
        self.render_size = int(render_size)
        self.metadata = {**self.metadata, 'render_fps': max(1, round(1.0 / self.dt))}
        self.action_space = spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        obs_dim = self.task_spec.obs_dim
        high = np.full(obs_dim, OBS_LIMIT, dtype=np.float32)
        high[OBS_THETA] = math.pi
        high[[OBS_SIN_THETA, OBS_COS_THETA]] = 1.0
        self.observation_space = spaces.Box(-high, high, (obs_dim,), np.float32)
        self._state: tuple[float, ...] = (-radius, 0.0, -0.5 * math.pi, 0.0, 0.0, 0.0)
        self._elapsed_steps = 0
        self._trail: list[tuple[float, ...]] = []

    @property
    def task(self) -> Task:
        """The planner task matching this env's configuration."""
        return self.task_spec.planner_task()

    @property
    def constraints(self) -> PlanarConstraints:
        """The constraints ``info['cost']`` counts violations of."""
        return self._constraints

    @property
    def default_constraints(self) -> PlanarConstraints:
        """The env's own: the boundary circle of ``boundary_radius``, no keep-out zone."""
        return self.task_spec.default_constraints

    def check_constraints(self, constraints: PlanarConstraints) -> None:
        """ConstraintError for keep-out zones when the observation has no world position (the
        planner could not see them either)."""
        self.task_spec.check_constraints(constraints)

    def set_constraints(self, constraints: PlanarConstraints) -> None:
        """Count violations of ``constraints`` from the next step on (a run-time change).

        Raises ConstraintError (:meth:`check_constraints`); nothing changes then.
        """
        self.check_constraints(constraints)
        self._constraints = constraints

    @property
    def state(self) -> np.ndarray:
        """``(x, y, yaw, v_x, v_y, yaw_rate)`` as float64 (6,), a copy."""
        return np.array(self._state, dtype=np.float64)

    def base_pose_twist(self) -> tuple[float, float, float, float, float, float]:
        """Pose and body twist for odometry: ``(x, y, yaw, v_x, v_y, yaw_rate)``.

        Position in the world frame (m), yaw in [-pi, pi) (rad), ``v_x, v_y`` in the body frame
        (m/s, x forward, y left), yaw rate (rad/s).
        """
        x, y, yaw, v_x, v_y, yaw_rate = self._state
        return float(x), float(y), float(yaw), float(v_x), float(v_y), float(yaw_rate)

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode from the randomised start of spec sec. 9.

        ``x = -r + U(-0.25, 0.25)``, ``y = 0``, ``yaw = 270 deg + U(-60, 60) deg``,
        ``v_x ~ U(0, 2 v_target)``, ``v_y ~ U(-0.6, 0.6)``, ``yaw_rate ~ U(-2, 2)``.
        ``options={'state': (6,)}`` starts from the given state instead.
        """
        super().reset(seed=seed)
        if options is not None and options.get('state') is not None:
            start = np.asarray(options['state'], dtype=np.float64).reshape(STATE_DIM)
            if not np.all(np.isfinite(start)):
                raise ValueError('options["state"] must be finite')
            state = [float(value) for value in start]
            state[2] = wrap_angle(state[2])
        else:
            rng = self.np_random
            spec = self.task_spec
            state = [-spec.radius + rng.uniform(-0.25, 0.25), 0.0,
                     wrap_angle(math.radians(270.0) + rng.uniform(-math.pi / 3, math.pi / 3)),
                     rng.uniform(0.0, 2.0 * spec.target_speed), rng.uniform(-0.6, 0.6),
                     rng.uniform(-2.0, 2.0)]
        self._state = tuple(state)
        self._elapsed_steps = 0
        self._trail = [self._state] if self.render_mode is not None else []
        features = observation_scalar(self._state, self.task_spec.radius,
                                      self.task_spec.observe_position)
        return np.array(features, dtype=np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Advance one control period.

        Returns:
            ``(obs, reward, terminated, truncated, info)``; ``info`` holds ``cost`` (1 where the
            car breaks :attr:`constraints`: outside the boundary or inside a keep-out zone),
            ``speed`` (m/s), ``side_slip`` (atan2(v_y, v_x), rad) and ``dx``.
        """
        action0 = float(action[0])
        action1 = float(action[1])
        if not (math.isfinite(action0) and math.isfinite(action1)):
            raise ValueError(f'action must be finite, got {action!r}')
        v_wheel, delta = action_to_controls(action0, action1)
        self._state = step_scalar(self._state, v_wheel, delta, self.dt, self.substeps,
                                  self.params)
        self._elapsed_steps += 1
        if self.render_mode is not None:
            self._trail.append(self._state)
        spec = self.task_spec
        features = observation_scalar(self._state, spec.radius, spec.observe_position)
        terminated = spec.terminated_scalar(features)
        x, y, _, v_x, v_y, _ = self._state
        info = {'cost': self._constraints.cost(x, y), 'speed': math.hypot(v_x, v_y),
                'side_slip': math.atan2(v_y, v_x), 'dx': features[OBS_DX]}
        return (np.array(features, dtype=np.float32), spec.reward_scalar(features), terminated,
                self._elapsed_steps >= self.max_episode_steps, info)

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """A top-down uint8 (H, W, 3) frame in 'rgb_array' mode; None otherwise."""
        if self.render_mode != 'rgb_array':
            return None
        from loop_ros.sim.render import render_frame
        trail = np.array(self._trail if self._trail else [self._state], dtype=np.float64)
        spec = self.task_spec
        return render_frame(trail, size=self.render_size, radius=spec.radius,
                            boundary_radius=self._constraints.boundary_radius,
                            step=self._elapsed_steps, dt=self.dt)


def make_task(task: str = 'circle', target_speed: float = 1.0, radius: float = 1.0,
              boundary_radius: float = 1.2, arena_radius: float = math.inf,
              observe_position: bool = False, start_steps: int = START_STEPS) -> Task:
    """Planner task of an env built with the same arguments (for non-default configurations)."""
    return RCCarTask(task, radius, target_speed, boundary_radius, arena_radius,
                     observe_position).planner_task(start_steps)


def register() -> None:
    """Register the gymnasium ids and their planner tasks; safe to call more than once."""
    for env_id, kwargs in ENV_IDS.items():
        steps = int(kwargs.get('max_episode_steps', MAX_EPISODE_STEPS))
        if env_id not in gym.registry:
            gym.register(env_id, entry_point='loop_ros.sim.rc_car:RCCarEnv', kwargs=dict(kwargs),
                         max_episode_steps=steps)
        task_args = {k: v for k, v in kwargs.items() if k not in SIM_ONLY_ARGUMENTS}
        # random start steps: five episodes, whatever their length
        register_task(env_id, make_task(**task_args,
                                        start_steps=START_STEPS * steps // MAX_EPISODE_STEPS))
