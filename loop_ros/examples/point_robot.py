"""A robot task without a gymnasium env: a planar point robot that should reach the origin.

This is what an integrator writes for their own robot (docs/integration.md). The planner and
learner import it through their ``task_module`` parameter and look the task up by ``env_id``::

    ros2 run loop_ros planner_node --ros-args -p env_id:=example/PointRobot-v0 \\
        -p task_module:=loop_ros.examples.point_robot -r observation:=/my_robot/state ...

Observation (4): position x, y (m) and velocity v_x, v_y (m/s), in the odometry frame.
Action (2): normalised acceleration command in [-1, 1]^2 (the robot driver scales it).
Reward (learned by the ensemble from the driver's transitions, so not given here); cost: 1 when
the robot is more than 1.5 m from the origin (for safe LOOP); the episode never terminates
on its own.
"""
from __future__ import annotations

import torch

from loop_ros.core.tasks import Task, register_task

ENV_ID = 'example/PointRobot-v0'
SAFE_RADIUS_M = 1.5


def outside_safe_radius(obs: torch.Tensor, action: torch.Tensor,
                        next_obs: torch.Tensor) -> torch.Tensor:
    """c(s, a, s') = 1[|p'| > 1.5 m], batched over any leading shape."""
    return (next_obs[..., :2].norm(dim=-1) > SAFE_RADIUS_M).to(next_obs.dtype)


register_task(ENV_ID, Task(cost=outside_safe_radius, start_steps=200, obs_dim=4, act_dim=2,
                           dt=0.1))
