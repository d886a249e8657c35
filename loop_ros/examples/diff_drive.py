"""A differential-drive base that should drive a 1 m circle: the robot adapter's example task.

What a robot team writes for their own base (docs/integration.md). The robot adapter, planner
and learner import it through their ``task_module`` parameter and look the task up by
``env_id``::

    loop-ros launch robot odom_topic:=/odom cmd_topic:=/cmd_vel     # this task is the default

Observation (7): the robot adapter's default odometry fields
(``loop_ros.io.odometry.DEFAULT_OBSERVATION``): position ``x, y`` (m, odometry frame),
``sin(yaw), cos(yaw)``, body-frame velocities ``v_x, v_y`` (m/s) and yaw rate ``w_z`` (rad/s).
Action (2): ``(linear.x, angular.z)`` normalised to [-1, 1] (the adapter scales them to its
``action_low``/``action_high``).

Reward, as the RC-car circle task (``loop_ros/sim/rc_car.py``) on the circle of radius
``r`` = 1 m around the odometry origin, counter-clockwise, at ``v_target`` = 0.3 m/s::

    r(s') = -|rho - r| - 0.25 (v - v_target)^2 - 0.25 max(0, |theta| - pi/2)^2

with ``rho`` the distance to the origin, ``v = hypot(v_x, v_y)`` and ``theta`` the heading
error (direction of the CCW tangent minus yaw). Cost (safe LOOP): 1 beyond 1.5 m, as planar
constraints (:class:`~loop_ros.core.constraint_cost.ConstraintCost` on the observed ``x, y``),
so the planner also takes keep-out zones at run time (``constraints.*``, the ``constraints``
topic; docs/integration.md). The episode terminates beyond 3 m (or on a non-finite
observation): the adapter then stops the base until the next episode (``~/reset``).
"""
from __future__ import annotations

import math

import torch

from loop_ros.core.constraint_cost import ConstraintCost
from loop_ros.core.constraint_cost import ObservedPosition
from loop_ros.core.constraints import PlanarConstraints
from loop_ros.core.tasks import register_task
from loop_ros.core.tasks import Task

ENV_ID = 'example/DiffDriveCircle-v0'
OBS_X, OBS_Y, OBS_SIN_YAW, OBS_COS_YAW, OBS_VX, OBS_VY, OBS_WZ = range(7)
OBS_DIM = 7
ACT_DIM = 2
DT_S = 0.1
RADIUS_M = 1.0
TARGET_SPEED = 0.3
"""v_target (m/s): 0.3 rad/s of yaw rate on the 1 m circle."""
SPEED_WEIGHT = 0.25
HEADING_WEIGHT = 0.25
SAFE_RADIUS_M = 1.5
"""Cost 1 per step beyond this distance from the origin."""
ARENA_RADIUS_M = 3.0
"""The episode terminates beyond this distance from the origin."""
MIN_RHO = 0.01
START_STEPS = 200
"""Uniformly random actions first: 20 s at 10 Hz."""


def circle_reward(obs: torch.Tensor, action: torch.Tensor,
                  next_obs: torch.Tensor) -> torch.Tensor:
    """r = -|rho - r| - 0.25 (v - v_target)^2 - 0.25 max(0, |theta| - pi/2)^2 of ``next_obs``.

    Shapes: obs, next_obs (..., 7); action (..., 2); returns (...).
    """
    x, y = next_obs[..., OBS_X], next_obs[..., OBS_Y]
    sin_yaw, cos_yaw = next_obs[..., OBS_SIN_YAW], next_obs[..., OBS_COS_YAW]
    rho = torch.hypot(x, y)
    inv = 1.0 / rho.clamp_min(MIN_RHO)
    # theta = (atan2(y, x) + pi/2) - yaw: sin/cos of a difference, from the unit vectors
    sin_theta = (x * cos_yaw + y * sin_yaw) * inv
    cos_theta = (x * sin_yaw - y * cos_yaw) * inv
    heading_excess = (torch.atan2(sin_theta, cos_theta).abs() - 0.5 * math.pi).clamp_min(0.0)
    speed = torch.hypot(next_obs[..., OBS_VX], next_obs[..., OBS_VY])
    return (-(rho - RADIUS_M).abs() - SPEED_WEIGHT * (speed - TARGET_SPEED) ** 2
            - HEADING_WEIGHT * heading_excess ** 2)


def position(obs: torch.Tensor) -> torch.Tensor:
    """(..., 2): x, y in the odometry frame."""
    return obs[..., OBS_X:OBS_Y + 1]


def heading(obs: torch.Tensor) -> torch.Tensor:
    """(...): yaw in the odometry frame."""
    return torch.atan2(obs[..., OBS_SIN_YAW], obs[..., OBS_COS_YAW])


SAFE_AREA = ConstraintCost(PlanarConstraints(SAFE_RADIUS_M), ObservedPosition(position, heading))
"""c(s, a, s') = 1[rho' > 1.5 m], or inside a keep-out zone a planner was given at run time."""


def outside_arena(next_obs: torch.Tensor) -> torch.Tensor:
    """Terminated: beyond 3 m from the origin, or a non-finite observation."""
    rho = torch.hypot(next_obs[..., OBS_X], next_obs[..., OBS_Y])
    return (rho > ARENA_RADIUS_M) | ~torch.isfinite(next_obs).all(dim=-1)


TASK = Task(termination=outside_arena, reward=circle_reward, cost=SAFE_AREA,
            start_steps=START_STEPS, obs_dim=OBS_DIM, act_dim=ACT_DIM, dt=DT_S,
            body_twist_indices=(OBS_VX, OBS_VY, OBS_WZ))
register_task(ENV_ID, TASK)
