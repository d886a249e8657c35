"""Safety navigation: ``PointGoal1`` and ``CarGoal1`` in the spirit of Safety Gym level 1.

Native MuJoCo re-implementations of ``Safexp-PointGoal1-v0`` / ``Safexp-CarGoal1-v0`` with the
observation, action repeat, reward and cost that LOOP's safety wrapper used (spec sec. 6.3),
for the modern stack: safety-gymnasium 1.0.0 pins gymnasium 0.28.1 and mujoco 2.3.3, so it does
not install next to gymnasium 1.x (``docs/simulators.md``, "Safety navigation").

Layout (one model per env, built once; resets move bodies and never recompile the XML):

* goal: radius :data:`GOAL_RADIUS` 0.3; 8 hazards of radius :data:`HAZARD_RADIUS` 0.2; one vase
  (light movable box, present but unconstrained); placements sampled in [-1.5, 1.5]^2 with the
  safety-gym keep-outs (robot 0.4, goal 0.305, hazards 0.18, vase 0.15). When the goal is reached
  a new one is placed and the episode continues.
* physics: timestep 0.002 s, :data:`PHYSICS_STEPS` 10 physics steps per control step (safety-gym's
  frameskip), :data:`ACTION_REPEAT` 5 control steps per agent step (0.1 s), 200 agent steps.

Observation (26-d, float32, the same layout for both robots; all 2-D vectors in the robot frame,
x forward, y left):

=======  =============================================================
index    content
=======  =============================================================
0:2      velocimeter: body-frame linear velocity (v_x, v_y)
2        gyro: yaw rate
3:6      magnetometer: world field (0, -0.5, 0) in the body frame
6:8      goal position relative to the robot
8:10     vase position relative to the robot
10:26    hazard j position relative to the robot, j = 0..7 (fixed order)
=======  =============================================================

The reference ordered the Car's sensors velocimeter, magnetometer, gyro; here both robots use
the Point order above so one planner cost (:func:`hazard_cost`) serves both.

References:
    Sikchi et al., "Learning Off-Policy with Online Planning", CoRL 2021, sec. 5 (safe LOOP).
    Ray et al., "Benchmarking Safe Exploration in Deep RL" (Safety Gym), 2019.
"""
from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import torch

from loop_ros.core.tasks import Task, register_task

POINT_ID = 'loop_ros/PointGoal1-v0'
CAR_ID = 'loop_ros/CarGoal1-v0'

TIMESTEP_S = 0.002
PHYSICS_STEPS = 10
"""Physics steps per control step (safety-gym frameskip_binom_n=10, p=1)."""
ACTION_REPEAT = 5
"""Control steps per agent step (LOOP's safety wrapper)."""
MAX_EPISODE_STEPS = 200
"""Agent steps per episode (1000 control steps / repeat 5)."""
START_STEPS = 2000
"""Uniform-random agent steps before planning: 10 episodes (the reference used 10,000)."""

EXTENT = 1.5
GOAL_RADIUS = 0.3
HAZARD_RADIUS = 0.2
NUM_HAZARDS = 8
VASE_HALF_SIZE = 0.1
ROBOT_KEEPOUT = 0.4
GOAL_KEEPOUT = 0.305
HAZARD_KEEPOUT = 0.18
VASE_KEEPOUT = 0.15
MAGNETIC_FIELD = np.array([0.0, -0.5, 0.0])
OBS_DIM = 26
HAZARD_SLICE = slice(10, 26)
PLANNER_COST_SCALE = 10.0
"""Planner cost = 10 * total hazard penetration depth (spec sec. 6.3)."""

_GOAL_RGBA = '0.1 0.9 0.1 0.5'
_HAZARD_RGBA = '0.2 0.2 1 0.6'

# Contact bits: 1 = floor, 2 = objects. The point and the vase slide on joints and skip the
# floor; the car's wheels and caster touch it.
_COMMON_XML = """
<mujoco model="{name}">
  <option timestep="{timestep}"/>
  <visual><global offwidth="256" offheight="256"/></visual>
  <default>
    <geom contype="2" conaffinity="2" condim="3" friction="1 0.005 0.0001"/>
  </default>
  <asset>
    <texture name="grid" type="2d" builtin="checker" rgb1=".85 .85 .85" rgb2=".75 .75 .75"
             width="64" height="64"/>
    <material name="grid" texture="grid" texrepeat="8 8"/>
  </asset>
  <worldbody>
    <light pos="0 0 5" dir="0 0 -1" directional="true"/>
    <geom name="floor" type="plane" size="4 4 0.1" material="grid" contype="1" conaffinity="1"/>
    <body name="goal" mocap="true" pos="0 0 0.002">
      <geom type="cylinder" size="{goal_radius} 0.002" rgba="{goal_rgba}" contype="0"
            conaffinity="0"/>
    </body>
    {hazards}
    {robot}
    <body name="vase" pos="0 0 {vase_size}">
      <joint name="vase_x" type="slide" axis="1 0 0" damping="0.1"/>
      <joint name="vase_y" type="slide" axis="0 1 0" damping="0.1"/>
      <joint name="vase_yaw" type="hinge" axis="0 0 1" damping="0.001"/>
      <geom type="box" size="{vase_size} {vase_size} {vase_size}" mass="0.05"
            rgba="0 0.8 0.8 1"/>
    </body>
  </worldbody>
  <actuator>
    {actuators}
  </actuator>
</mujoco>
"""

_HAZARD_XML = """<body name="hazard{i}" mocap="true" pos="0 0 0.003">
      <geom type="cylinder" size="{r} 0.003" rgba="{rgba}" contype="0" conaffinity="0"/>
    </body>"""

# Point: a 1 kg sphere on planar joints (x, y, yaw); a force along the heading and a yaw torque.
# Terminal speed 4 N / 4 N s/m = 1 m/s (time constant 0.25 s), yaw rate 0.06 / 0.02 = 3 rad/s.
_POINT_ROBOT = """<body name="robot" pos="0 0 0.1">
      <joint name="robot_x" type="slide" axis="1 0 0" damping="4"/>
      <joint name="robot_y" type="slide" axis="0 1 0" damping="4"/>
      <joint name="robot_yaw" type="hinge" axis="0 0 1" damping="0.02"/>
      <inertial pos="0 0 0" mass="1" diaginertia="0.004 0.004 0.004"/>
      <geom name="robot" type="sphere" size="0.1" rgba="0.9 0.1 0.1 1"/>
      <geom name="arrow" type="box" pos="0.1 0 0" size="0.04 0.04 0.04" rgba="0.9 0.5 0.1 1"/>
      <site name="robot" size="0.02"/>
    </body>"""
_POINT_ACTUATORS = """<motor name="forward" site="robot" gear="4 0 0 0 0 0" ctrlrange="-1 1"
           ctrllimited="true"/>
    <motor name="turn" site="robot" gear="0 0 0 0 0 0.06" ctrlrange="-1 1" ctrllimited="true"/>"""

# Car: a free chassis on two independently driven rear wheels and a frictionless front ball.
_CAR_ROBOT = """<body name="robot" pos="0 0 0.04">
      <freejoint name="robot"/>
      <geom name="chassis" type="box" pos="0 0 0.02" size="0.1 0.06 0.025" mass="1"
            contype="3" conaffinity="3" rgba="0.9 0.1 0.1 1"/>
      <geom name="caster" type="sphere" pos="0.08 0 -0.02" size="0.02" mass="0.01" condim="1"
            priority="1"
            contype="3" conaffinity="3" rgba="0.3 0.3 0.3 1"/>
      <site name="robot" size="0.02"/>
      <body name="wheel_left" pos="-0.05 0.08 0">
        <joint name="wheel_left" type="hinge" axis="0 1 0" damping="0.0025"/>
        <geom type="cylinder" size="0.04 0.01" zaxis="0 1 0" mass="0.05" contype="3"
              conaffinity="3" rgba="0.1 0.1 0.1 1"/>
      </body>
      <body name="wheel_right" pos="-0.05 -0.08 0">
        <joint name="wheel_right" type="hinge" axis="0 1 0" damping="0.0025"/>
        <geom type="cylinder" size="0.04 0.01" zaxis="0 1 0" mass="0.05" contype="3"
              conaffinity="3" rgba="0.1 0.1 0.1 1"/>
      </body>
    </body>"""
_CAR_ACTUATORS = """<motor name="left" joint="wheel_left" gear="0.06" ctrlrange="-1 1"
           ctrllimited="true"/>
    <motor name="right" joint="wheel_right" gear="0.06" ctrlrange="-1 1" ctrllimited="true"/>"""


def build_xml(robot: str) -> str:
    """The MJCF of one arena with ``robot`` in ``('point', 'car')``."""
    if robot == 'point':
        body, actuators = _POINT_ROBOT, _POINT_ACTUATORS
    elif robot == 'car':
        body, actuators = _CAR_ROBOT, _CAR_ACTUATORS
    else:
        raise ValueError(f'unknown robot {robot!r} (point or car)')
    hazards = '\n    '.join(_HAZARD_XML.format(i=i, r=HAZARD_RADIUS, rgba=_HAZARD_RGBA)
                             for i in range(NUM_HAZARDS))
    return _COMMON_XML.format(name=f'{robot}_goal1', timestep=TIMESTEP_S, goal_radius=GOAL_RADIUS,
                              goal_rgba=_GOAL_RGBA, hazards=hazards, vase_size=VASE_HALF_SIZE,
                              robot=body, actuators=actuators)


def hazard_cost(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """Planner cost of a (model-predicted) observation: scaled hazard penetration depth.

    c = 10 * sum_j max(0, 0.2 - |h_j|), h_j = egocentric xy of hazard j in ``next_obs``.

    Args:
        obs: observation before the step (unused).
        action: action (unused).
        next_obs: observation after the step; hazards at indices 10:26.

    Returns:
        Non-negative cost per batch element.

    Shapes:
        obs, next_obs: (..., 26); action: (..., 2); returns (...).
    """
    hazards = next_obs[..., HAZARD_SLICE].unflatten(-1, (NUM_HAZARDS, 2))
    depth = (HAZARD_RADIUS - torch.linalg.vector_norm(hazards, dim=-1)).clamp_min(0.0)
    return PLANNER_COST_SCALE * depth.sum(dim=-1)


class SafetyNavEnv(gym.Env):
    """Goal-reaching with hazards (Safety Gym Goal1-like); subclasses pick the robot.

    Per agent step the action is held for :data:`ACTION_REPEAT` control steps of
    :data:`PHYSICS_STEPS` physics steps. After each control step:
    cost += 1 if the robot centre is within :data:`HAZARD_RADIUS` of any hazard;
    reward += (previous goal distance - goal distance), and + 1 with an early end of the block
    and a new goal once the distance is <= :data:`GOAL_RADIUS`.

    ``info``: ``cost`` and ``cost_hazards`` (0..5, the same here), ``goal_reached`` (bool),
    ``substeps`` (control steps run, < 5 only when the goal was reached).

    ``reset(options=...)`` accepts fixed placements for tests and demos: ``robot_xy``,
    ``robot_yaw``, ``goal_xy``, ``vase_xy``, ``hazards_xy`` (8, 2); the rest are sampled.

    Shapes:
        observation: (26,) float32, see the module docstring; action: (2,) float32 in [-1, 1].
    """

    metadata = {'render_modes': ['rgb_array'], 'render_fps': 10}
    robot = 'point'

    def __init__(self, render_mode: str | None = None, action_repeat: int = ACTION_REPEAT,
                 max_episode_steps: int = MAX_EPISODE_STEPS, render_size: int = 256) -> None:
        if render_mode not in (None, 'rgb_array'):
            raise ValueError(f'unsupported render_mode {render_mode!r}')
        self.render_mode = render_mode
        self.action_repeat = int(action_repeat)
        self.max_episode_steps = int(max_episode_steps)
        self.render_size = int(render_size)
        self.dt = TIMESTEP_S * PHYSICS_STEPS * self.action_repeat
        """Seconds per agent step (0.1 with the defaults)."""
        self.model = mujoco.MjModel.from_xml_string(build_xml(self.robot))
        self.data = mujoco.MjData(self.model)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        m = self.model
        self._goal_mocap = m.body_mocapid[m.body('goal').id]
        self._hazard_mocap = [m.body_mocapid[m.body(f'hazard{i}').id] for i in range(NUM_HAZARDS)]
        # The robot's joints come first: qpos[0:2] is its world xy for both robots.
        assert m.jnt_qposadr[m.body('robot').jntadr[0]] == 0
        self._vase_qadr = m.jnt_qposadr[m.joint('vase_x').id]
        self._vase_home = m.body('vase').pos[:2].copy()
        self.goal_xy = np.zeros(2)
        self.hazards_xy = np.zeros((NUM_HAZARDS, 2))
        self._last_goal_dist = 0.0
        self._steps = 0
        self._renderer: mujoco.Renderer | None = None
        self._camera: mujoco.MjvCamera | None = None

    # ---------------------------------------------------------------- robot-specific state

    def _robot_xy(self) -> np.ndarray:
        """World xy of the robot centre."""
        return self.data.qpos[0:2].copy()

    def _robot_rot(self) -> np.ndarray:
        """Body-to-world rotation matrix (3, 3)."""
        raise NotImplementedError

    def _robot_yaw(self) -> float:
        """Heading (rad)."""
        rot = self._robot_rot()
        return math.atan2(rot[1, 0], rot[0, 0])

    def _robot_vel(self) -> tuple[np.ndarray, float]:
        """Body-frame linear velocity (3,) and yaw rate."""
        raise NotImplementedError

    def _set_robot(self, xy: np.ndarray, yaw: float) -> None:
        """Put the robot at rest at ``xy`` with heading ``yaw``."""
        raise NotImplementedError

    # ---------------------------------------------------------------- public helpers

    def vase_xy(self) -> np.ndarray:
        """World xy of the vase."""
        q = self.data.qpos[self._vase_qadr:self._vase_qadr + 2]
        return self._vase_home + q

    def base_pose_twist(self) -> tuple[float, float, float, float, float, float]:
        """(x, y, yaw, v_x, v_y, yaw_rate): world pose, body-frame velocities (for the bridge)."""
        x, y = self._robot_xy()
        vel, yaw_rate = self._robot_vel()
        return (float(x), float(y), self._robot_yaw(), float(vel[0]), float(vel[1]),
                float(yaw_rate))

    def goal_distance(self) -> float:
        """Planar distance from the robot centre to the goal centre."""
        return float(np.linalg.norm(self._robot_xy() - self.goal_xy))

    def in_hazard(self) -> bool:
        """Robot centre within :data:`HAZARD_RADIUS` of any hazard."""
        d2 = ((self.hazards_xy - self._robot_xy()) ** 2).sum(axis=1)
        return bool((d2 <= HAZARD_RADIUS ** 2).any())

    # ---------------------------------------------------------------- gymnasium API

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Sample a new layout (fixed entries from ``options``) and return the first obs."""
        super().reset(seed=seed)
        options = options or {}
        mujoco.mj_resetData(self.model, self.data)
        robot_xy, robot_yaw, goal_xy, vase_xy, hazards_xy = self._sample_layout(options)
        self._set_robot(robot_xy, robot_yaw)
        self.data.qpos[self._vase_qadr:self._vase_qadr + 2] = vase_xy - self._vase_home
        self.data.qpos[self._vase_qadr + 2] = self.np_random.uniform(-math.pi, math.pi)
        self.hazards_xy = hazards_xy
        for mocap, xy in zip(self._hazard_mocap, hazards_xy):
            self.data.mocap_pos[mocap, :2] = xy
        self._set_goal(goal_xy)
        self._steps = 0
        info = {'cost': 0.0, 'cost_hazards': 0.0, 'goal_reached': False, 'substeps': 0}
        return self._observation(), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Hold ``action`` for up to ``action_repeat`` control steps; see the class docstring."""
        self.data.ctrl[:] = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        reward, cost, goal_reached, substeps = 0.0, 0, False, 0
        for _ in range(self.action_repeat):
            mujoco.mj_step(self.model, self.data, nstep=PHYSICS_STEPS)
            substeps += 1
            robot_xy = self.data.qpos[0:2]
            d2 = ((self.hazards_xy - robot_xy) ** 2).sum(axis=1)
            cost += int((d2 <= HAZARD_RADIUS ** 2).any())
            dist = math.hypot(robot_xy[0] - self.goal_xy[0], robot_xy[1] - self.goal_xy[1])
            reward += self._last_goal_dist - dist
            self._last_goal_dist = dist
            if dist <= GOAL_RADIUS:
                reward += 1.0
                goal_reached = True
                self._set_goal(self._sample_goal(robot_xy.copy(), self.vase_xy()))
                break
        self._steps += 1
        truncated = self._steps >= self.max_episode_steps
        info = {'cost': float(cost), 'cost_hazards': float(cost), 'goal_reached': goal_reached,
                'substeps': substeps}
        return self._observation(), float(reward), False, truncated, info

    def render(self) -> np.ndarray | None:
        """Top-down RGB frame (render_size x render_size x 3, uint8) in 'rgb_array' mode."""
        if self.render_mode != 'rgb_array':
            return None
        if self._renderer is None:
            vis = self.model.vis.global_
            vis.offwidth = max(vis.offwidth, self.render_size)
            vis.offheight = max(vis.offheight, self.render_size)
            self._renderer = mujoco.Renderer(self.model, self.render_size, self.render_size)
            self._camera = mujoco.MjvCamera()
            self._camera.lookat[:] = (0.0, 0.0, 0.0)
            self._camera.distance = 5.0
            self._camera.elevation = -70.0
            self._camera.azimuth = 90.0
        mujoco.mj_kinematics(self.model, self.data)
        self._renderer.update_scene(self.data, camera=self._camera)
        return self._renderer.render()

    def close(self) -> None:
        """Free the renderer (its GL context)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        super().close()

    # ---------------------------------------------------------------- internals

    def _observation(self) -> np.ndarray:
        """The 26-d egocentric observation (module docstring)."""
        rot = self._robot_rot()
        vel, yaw_rate = self._robot_vel()
        rel = np.empty((2 + NUM_HAZARDS, 3))
        rel[0, :2] = self.goal_xy
        rel[1, :2] = self.vase_xy()
        rel[2:, :2] = self.hazards_xy
        rel[:, :2] -= self._robot_xy()
        rel[:, 2] = 0.0
        ego = rel @ rot  # world -> body: v_body = R^T v = (v^T R)^T
        obs = np.empty(OBS_DIM, dtype=np.float32)
        obs[0:2] = vel[:2]
        obs[2] = yaw_rate
        obs[3:6] = MAGNETIC_FIELD @ rot
        obs[6:] = ego[:, :2].ravel()
        return obs

    def _set_goal(self, xy: np.ndarray) -> None:
        """Place the goal and restart the distance baseline of the reward."""
        self.goal_xy = np.asarray(xy, dtype=np.float64).copy()
        self.data.mocap_pos[self._goal_mocap, :2] = self.goal_xy
        self._last_goal_dist = self.goal_distance()

    def _draw(self, keepout: float, placed: list[tuple[np.ndarray, float]]) -> np.ndarray:
        """One placement in the shrunk extents respecting the keep-outs of ``placed``."""
        lim = EXTENT - keepout
        centres = np.array([p for p, _ in placed]).reshape(-1, 2)
        radii = np.array([k for _, k in placed]) + keepout
        for _ in range(100):
            xy = self.np_random.uniform(-lim, lim, size=(16, 2))
            if len(placed):
                d2 = ((xy[:, None, :] - centres[None]) ** 2).sum(-1)
                ok = (d2 >= radii[None] ** 2).all(axis=1)
            else:
                ok = np.ones(len(xy), dtype=bool)
            if ok.any():
                choice = xy[int(np.argmax(ok))]
                placed.append((choice, keepout))
                return choice
        raise RuntimeError('could not place an object: keep-outs too large for the extents')

    def _sample_layout(self, options: dict[str, Any]) -> tuple[
            np.ndarray, float, np.ndarray, np.ndarray, np.ndarray]:
        """Robot, goal, vase and hazards with safety-gym keep-outs (fixed ones first)."""
        placed: list[tuple[np.ndarray, float]] = []
        fixed_hazards = options.get('hazards_xy')
        # Fixed placements first, so sampled ones avoid them.
        for key, keepout in (('robot_xy', ROBOT_KEEPOUT), ('goal_xy', GOAL_KEEPOUT),
                             ('vase_xy', VASE_KEEPOUT)):
            if options.get(key) is not None:
                placed.append((np.asarray(options[key], dtype=np.float64).reshape(2), keepout))
        if fixed_hazards is not None:
            hazards = np.asarray(fixed_hazards, dtype=np.float64).reshape(NUM_HAZARDS, 2).copy()
            for xy in hazards:
                placed.append((xy, HAZARD_KEEPOUT))
        robot = self._fixed_or_draw(options, 'robot_xy', ROBOT_KEEPOUT, placed)
        goal = self._fixed_or_draw(options, 'goal_xy', GOAL_KEEPOUT, placed)
        if fixed_hazards is None:
            hazards = np.stack([self._draw(HAZARD_KEEPOUT, placed) for _ in range(NUM_HAZARDS)])
        vase = self._fixed_or_draw(options, 'vase_xy', VASE_KEEPOUT, placed)
        yaw = options.get('robot_yaw')
        if yaw is None:
            yaw = self.np_random.uniform(-math.pi, math.pi)
        return robot, float(yaw), goal, vase, hazards

    def _fixed_or_draw(self, options: dict[str, Any], key: str, keepout: float,
                       placed: list[tuple[np.ndarray, float]]) -> np.ndarray:
        """``options[key]`` when given (already in ``placed``), else a fresh draw."""
        if options.get(key) is not None:
            return np.asarray(options[key], dtype=np.float64).reshape(2).copy()
        return self._draw(keepout, placed)

    def _sample_goal(self, robot_xy: np.ndarray, vase_xy: np.ndarray) -> np.ndarray:
        """A new goal clear of the robot, the hazards and the vase (safety-gym keep-outs)."""
        placed = [(robot_xy, ROBOT_KEEPOUT), (vase_xy, VASE_KEEPOUT)]
        placed += [(xy, HAZARD_KEEPOUT) for xy in self.hazards_xy]
        return self._draw(GOAL_KEEPOUT, placed)


class PointGoal1Env(SafetyNavEnv):
    """PointGoal1: planar point robot; action = (forward force, yaw torque), both in [-1, 1]."""

    robot = 'point'

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        assert self.model.nq == 6  # robot x, y, yaw + vase x, y, yaw

    def _robot_yaw(self) -> float:
        return float(self.data.qpos[2])

    def _robot_rot(self) -> np.ndarray:
        c, s = math.cos(self.data.qpos[2]), math.sin(self.data.qpos[2])
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])

    def _robot_vel(self) -> tuple[np.ndarray, float]:
        v = self.data.qvel
        c, s = math.cos(self.data.qpos[2]), math.sin(self.data.qpos[2])
        return np.array([c * v[0] + s * v[1], -s * v[0] + c * v[1], 0.0]), float(v[2])

    def _set_robot(self, xy: np.ndarray, yaw: float) -> None:
        self.data.qpos[0:2] = xy
        self.data.qpos[2] = yaw
        self.data.qvel[0:3] = 0.0


class CarGoal1Env(SafetyNavEnv):
    """CarGoal1: differential drive; action = (left, right) rear-wheel torques in [-1, 1]."""

    robot = 'car'

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._z0 = float(self.model.body('robot').pos[2])
        self._rot = np.empty(9)

    def _robot_rot(self) -> np.ndarray:
        mujoco.mju_quat2Mat(self._rot, self.data.qpos[3:7])
        return self._rot.reshape(3, 3).copy()

    def _robot_vel(self) -> tuple[np.ndarray, float]:
        # free joint: linear velocity in the world frame, angular velocity in the body frame
        v_body = self.data.qvel[0:3] @ self._robot_rot()
        return v_body, float(self.data.qvel[5])

    def _set_robot(self, xy: np.ndarray, yaw: float) -> None:
        self.data.qpos[0:3] = (xy[0], xy[1], self._z0)
        self.data.qpos[3:7] = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))
        self.data.qvel[:] = 0.0


_REGISTERED = False


def register() -> None:
    """Register the gymnasium ids and the planner tasks (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    for env_id, cls in ((POINT_ID, 'PointGoal1Env'), (CAR_ID, 'CarGoal1Env')):
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=f'{__name__}:{cls}',
                         max_episode_steps=MAX_EPISODE_STEPS)
        register_task(env_id, Task(termination=None, reward=None, cost=hazard_cost,
                                   start_steps=START_STEPS, body_twist_indices=(0, 1, 2)))
    _REGISTERED = True
