"""The planner's view for RViz/Foxglove: imagined planar poses of candidates and members (no ROS).

:func:`plan_view` turns :meth:`ArcPlanner.visualise` (states on the planner device) into planar
poses by integrating the imagined body twist (``Task.body_twist_indices``, the same integration
as ``LoopPolicy.imagined_poses``), all on the device, and moves the result to the host in one
transfer. ``loop_ros.ros.markers`` draws it as a ``visualization_msgs/MarkerArray``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from loop_ros.core.agent import LoopPolicy


@dataclass(frozen=True)
class PlanPoses:
    """Host arrays of one plan, poses ``(x, y, yaw)`` in the frame of the observation planned on.

    Shapes (K shown candidates, M scored members, H horizon):
        candidate_poses: (K, H+1, 3), best candidates first, then the worst
        candidate_scores: (K,)
        member_poses: (M, H+1, 3), the executed plan as each member imagines it
    """

    candidate_poses: np.ndarray
    candidate_scores: np.ndarray
    member_poses: np.ndarray


def integrate_body_twist(states: torch.Tensor, indices: tuple[int, int, int], dt: float
                         ) -> torch.Tensor:
    """Planar poses from imagined body twists, starting at the origin (on ``states.device``).

    pose_0 = 0; yaw_t = yaw_{t-1} + w_{t-1} dt; (x, y)_t = (x, y)_{t-1} + R(yaw_{t-1}) v_{t-1} dt,
    with (v_x, v_y, w) the entries ``indices`` of state t-1.

    Shapes:
        states: (..., T, O) -> poses (..., T, 3)
    """
    ix, iy, ir = indices
    vx, vy, rate = states[..., :-1, ix], states[..., :-1, iy], states[..., :-1, ir]
    zero = torch.zeros_like(states[..., :1, 0])
    yaw = torch.cat([zero, torch.cumsum(rate * dt, dim=-1)], dim=-1)       # (..., T)
    heading = yaw[..., :-1]
    dx = (vx * torch.cos(heading) - vy * torch.sin(heading)) * dt
    dy = (vx * torch.sin(heading) + vy * torch.cos(heading)) * dt
    x = torch.cat([zero, torch.cumsum(dx, dim=-1)], dim=-1)
    y = torch.cat([zero, torch.cumsum(dy, dim=-1)], dim=-1)
    return torch.stack([x, y, yaw], dim=-1)


@torch.no_grad()
def plan_view(policy: LoopPolicy, obs: np.ndarray, dt: float, num_best: int = 3,
              num_worst: int = 3) -> PlanPoses | None:
    """Poses of the last plan's best and worst candidates and of the members' executed plan.

    None when the task has no planar base (``body_twist_indices``), the policy has no planner
    (``algo='sac'``) or nothing was planned yet. Call it between plans (the planner node does,
    right after its tick's plan).
    """
    planner, indices = policy.planner, policy.task.body_twist_indices
    if planner is None or indices is None:
        return None
    obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=planner.device)
    view = planner.visualise(obs_t, num_best, num_worst)
    if view is None:
        return None
    candidates = integrate_body_twist(view.candidate_states, indices, dt)   # (K, H+1, 3)
    members = integrate_body_twist(view.member_states, indices, dt)         # (M, H+1, 3)
    packed = torch.cat([candidates.reshape(-1), members.reshape(-1),
                        view.candidate_scores.to(candidates.dtype)]).cpu().numpy()
    n_cand, n_mem = candidates.numel(), members.numel()
    return PlanPoses(
        candidate_poses=packed[:n_cand].reshape(tuple(candidates.shape)).astype(np.float64),
        candidate_scores=packed[n_cand + n_mem:].astype(np.float64),
        member_poses=packed[n_cand:n_cand + n_mem].reshape(tuple(members.shape)
                                                           ).astype(np.float64))
