"""Behaviour tests of the PointGoal1 / CarGoal1 envs (loop_ros.sim.safety_nav)."""
from __future__ import annotations

import copy
import math
import os
import time

import gymnasium as gym
import mujoco
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from loop_ros.core.tasks import get_task
from loop_ros.sim import safety_nav as sn

ROBOTS = {'point': (sn.PointGoal1Env, sn.POINT_ID), 'car': (sn.CarGoal1Env, sn.CAR_ID)}
FORWARD = {'point': np.array([1.0, 0.0], np.float32), 'car': np.array([1.0, 1.0], np.float32)}
# Seven hazards well off the x axis; tests add the eighth.
FAR_HAZARDS = [(-1.3, 1.3), (-0.4, 1.3), (0.5, 1.3), (1.3, 1.3), (-1.3, -1.3), (-0.4, -1.3),
               (0.5, -1.3)]

MAX_STEP_OVERHEAD = 3.0
"""Most wall time an agent step may take, as a multiple of the bare physics it runs (measured
1.6 for the Point and 1.3-1.6 for the Car on the 2-core machines: about 2x slack)."""

pytestmark = pytest.mark.filterwarnings('ignore:.*Box observation space.*:UserWarning')


@pytest.fixture(autouse=True, scope='module')
def _registered() -> None:
    sn.register()


def _layout(goal_xy: tuple[float, float], hazard_xy: tuple[float, float]) -> dict:
    """Robot at the origin facing +x; hazards off the x axis but ``hazard_xy``."""
    return {'robot_xy': (0.0, 0.0), 'robot_yaw': 0.0, 'goal_xy': goal_xy,
            'vase_xy': (1.3, -0.6), 'hazards_xy': [hazard_xy] + FAR_HAZARDS}


def _ego(env: sn.SafetyNavEnv, world_xy: np.ndarray) -> np.ndarray:
    """World points (n, 2) in the robot frame from the pose alone: R(yaw)^T (p - p_robot)."""
    x, y, yaw, *_ = env.base_pose_twist()
    c, s = math.cos(yaw), math.sin(yaw)
    rel = np.asarray(world_xy) - (x, y)
    return np.stack([c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1]], axis=1)


def test_register_is_idempotent_and_sets_the_task() -> None:
    sn.register()
    sn.register()
    for _, env_id in ROBOTS.values():
        assert gym.spec(env_id).max_episode_steps == sn.MAX_EPISODE_STEPS == 200
        task = get_task(env_id, warn=False)
        assert task.cost is sn.hazard_cost and task.termination is None and task.reward is None
        assert task.start_steps == sn.START_STEPS


@pytest.mark.parametrize('robot', ROBOTS)
def test_make_and_env_checker(robot: str) -> None:
    env = gym.make(ROBOTS[robot][1])
    assert env.observation_space.shape == (26,)
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    check_env(env.unwrapped)
    obs, info = env.reset(seed=1)
    assert obs.dtype == np.float32 and obs.shape == (26,)
    assert info['cost'] == 0.0 and not info['goal_reached']
    env.close()


@pytest.mark.parametrize('robot', ROBOTS)
def test_observation_is_egocentric_world_geometry(robot: str) -> None:
    env = ROBOTS[robot][0]()
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(15):
        obs, *_ = env.step(rng.uniform(-1, 1, 2).astype(np.float32))
    x, y, yaw, v_x, v_y, yaw_rate = env.base_pose_twist()
    assert abs(yaw) > 1e-3  # a turned robot: the rotation matters
    tol = 1e-5 if robot == 'point' else 2e-3  # the car may pitch a little on its wheels
    np.testing.assert_allclose(obs[6:8], _ego(env, env.goal_xy[None])[0], atol=tol)
    np.testing.assert_allclose(obs[8:10], _ego(env, env.vase_xy()[None])[0], atol=tol)
    np.testing.assert_allclose(obs[10:26], _ego(env, env.hazards_xy).ravel(), atol=tol)
    np.testing.assert_allclose(obs[0:3], (v_x, v_y, yaw_rate), atol=1e-5)
    mag = (-0.5 * math.sin(yaw), -0.5 * math.cos(yaw))
    np.testing.assert_allclose(obs[3:5], mag, atol=tol)
    assert np.linalg.norm(obs[6:8]) == pytest.approx(env.goal_distance(), abs=tol)


@pytest.mark.parametrize('robot', ROBOTS)
def test_driving_forward_moves_along_the_heading(robot: str) -> None:
    env = ROBOTS[robot][0]()
    env.reset(seed=0, options=_layout((-1.3, 0.0), (0.0, 1.0)))
    for _ in range(10):
        env.step(FORWARD[robot])
    x, y, yaw, v_x, v_y, yaw_rate = env.base_pose_twist()
    assert x > 0.5 and abs(y) < 1e-3 and abs(yaw) < 1e-3
    assert v_x > 0.5 and abs(v_y) < 1e-3 and abs(yaw_rate) < 1e-3


@pytest.mark.parametrize('robot', ROBOTS)
def test_cost_exactly_while_inside_a_hazard(robot: str) -> None:
    layout = _layout((-1.3, 0.0), (0.6, 0.0))
    # Reference run with action repeat 1: one indicator per control step.
    fine = ROBOTS[robot][0](action_repeat=1, max_episode_steps=1000)
    fine.reset(seed=0, options=layout)
    inside, fine_costs = [], []
    for _ in range(100):
        _, _, _, _, info = fine.step(FORWARD[robot])
        inside.append(fine.in_hazard())
        fine_costs.append(info['cost'])
    assert fine_costs == [float(i) for i in inside]
    assert 0 < sum(inside) < 100 and not inside[0] and not inside[-1]

    env = ROBOTS[robot][0]()
    env.reset(seed=0, options=layout)
    planner_cost = get_task(ROBOTS[robot][1], warn=False).cost
    for k in range(20):
        obs, _, _, _, info = env.step(FORWARD[robot])
        assert info['cost'] == info['cost_hazards'] == sum(inside[5 * k:5 * k + 5])
        depth = sn.HAZARD_RADIUS - np.linalg.norm(env.hazards_xy - env.base_pose_twist()[:2],
                                                  axis=1)
        expected = 10.0 * np.clip(depth, 0.0, None).sum()
        c = planner_cost(torch.zeros(26), torch.zeros(2), torch.from_numpy(obs)).item()
        assert c == pytest.approx(expected, abs=1e-4)
        assert (c > 0) == inside[5 * k + 4]
        if not inside[5 * k + 4]:
            assert c == 0.0
    assert any(sum(inside[5 * k:5 * k + 5]) == 5 for k in range(20))  # a step fully inside


def test_planner_cost_is_batched_and_exact(device: torch.device) -> None:
    obs = torch.zeros(3, 4, 26, device=device)
    obs[..., 10:26] = 5.0  # every hazard far away
    obs[0, 0, 10:12] = torch.tensor([0.05, 0.0])  # 0.15 inside hazard 0
    obs[1, 2, 12:14] = torch.tensor([0.0, -0.12])  # 0.08 inside hazard 1
    obs[1, 2, 24:26] = torch.tensor([0.2, 0.0])  # exactly on the rim of hazard 7: no cost
    cost = sn.hazard_cost(obs, torch.zeros(3, 4, 2, device=device), obs)
    assert cost.shape == (3, 4) and cost.device == obs.device
    expected = torch.zeros(3, 4)
    expected[0, 0], expected[1, 2] = 1.5, 0.8
    torch.testing.assert_close(cost.cpu(), expected)


@pytest.mark.parametrize('robot', ROBOTS)
def test_reward_toward_goal_bonus_and_new_goal(robot: str) -> None:
    env = ROBOTS[robot][0]()
    env.reset(seed=0, options=_layout((1.2, 0.0), (0.0, 1.0)))
    old_goal = env.goal_xy.copy()
    for _ in range(40):
        dist_before = env.goal_distance()
        obs, reward, terminated, truncated, info = env.step(FORWARD[robot])
        assert not terminated and not truncated
        if info['goal_reached']:
            break
        assert reward > 0.0
        assert reward == pytest.approx(dist_before - env.goal_distance(), abs=1e-9)
    else:
        pytest.fail('the goal was never reached')
    robot_xy = np.array(env.base_pose_twist()[:2])
    reached_dist = np.linalg.norm(robot_xy - old_goal)
    assert reached_dist <= sn.GOAL_RADIUS
    assert reward == pytest.approx(dist_before - reached_dist + 1.0, abs=1e-9)
    # a new goal, clear of the robot, the hazards and the vase, inside the extents
    assert not np.allclose(env.goal_xy, old_goal)
    assert env.goal_distance() >= sn.ROBOT_KEEPOUT + sn.GOAL_KEEPOUT
    assert np.all(np.abs(env.goal_xy) <= sn.EXTENT - sn.GOAL_KEEPOUT)
    assert np.all(np.linalg.norm(env.hazards_xy - env.goal_xy, axis=1)
                  >= sn.HAZARD_KEEPOUT + sn.GOAL_KEEPOUT)
    np.testing.assert_allclose(obs[6:8], _ego(env, env.goal_xy[None])[0], atol=2e-3)
    # the episode goes on and the reward now tracks the new goal
    dist_before = env.goal_distance()
    _, reward, terminated, _, info = env.step(np.zeros(2, np.float32))
    assert not terminated and info['substeps'] == 5
    assert reward == pytest.approx(dist_before - env.goal_distance(), abs=1e-9)


@pytest.mark.parametrize('robot', ROBOTS)
def test_layout_respects_keepouts(robot: str) -> None:
    env = ROBOTS[robot][0]()
    for seed in range(30):
        env.reset(seed=seed)
        objects = ([(np.array(env.base_pose_twist()[:2]), sn.ROBOT_KEEPOUT),
                    (env.goal_xy, sn.GOAL_KEEPOUT), (env.vase_xy(), sn.VASE_KEEPOUT)]
                   + [(h, sn.HAZARD_KEEPOUT) for h in env.hazards_xy])
        for i, (p, k) in enumerate(objects):
            assert np.all(np.abs(p) <= sn.EXTENT - k + 1e-9)
            for q, k2 in objects[i + 1:]:
                assert np.linalg.norm(p - q) >= k + k2 - 1e-9


def test_vase_is_movable_and_costs_nothing() -> None:
    env = sn.PointGoal1Env()
    layout = _layout((-1.3, 0.0), (0.0, 1.0))
    layout['vase_xy'] = (0.5, 0.0)
    env.reset(seed=0, options=layout)
    vase0 = env.vase_xy().copy()
    for _ in range(15):
        _, _, _, _, info = env.step(FORWARD['point'])
        assert info['cost'] == 0.0
    assert env.vase_xy()[0] > vase0[0] + 0.3


@pytest.mark.parametrize('robot', ROBOTS)
def test_random_episode_lasts_200_steps(robot: str) -> None:
    env = gym.make(ROBOTS[robot][1])
    env.reset(seed=5)
    env.action_space.seed(5)
    for t in range(1, 201):
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert not terminated and np.isfinite(reward)
        assert info['cost'] in {0.0, 1.0, 2.0, 3.0, 4.0, 5.0}
        assert truncated == (t == 200)
    env.close()


@pytest.mark.parametrize('robot', ROBOTS)
def test_seeding_is_reproducible(robot: str) -> None:
    def rollout(seed: int) -> tuple[np.ndarray, list[float]]:
        env = ROBOTS[robot][0]()
        model = env.model
        obs_list, rewards = [], []
        for episode in range(2):  # resets reuse the compiled model
            obs, _ = env.reset(seed=seed if episode == 0 else None)
            obs_list.append(obs)
            rng = np.random.default_rng(0)
            for _ in range(30):
                obs, reward, _, _, info = env.step(rng.uniform(-1, 1, 2).astype(np.float32))
                obs_list.append(obs)
                rewards += [reward, info['cost']]
        assert env.model is model
        return np.stack(obs_list), rewards

    obs_a, rew_a = rollout(7)
    obs_b, rew_b = rollout(7)
    obs_c, _ = rollout(8)
    np.testing.assert_array_equal(obs_a, obs_b)
    assert rew_a == rew_b
    assert not np.allclose(obs_a[0], obs_c[0])


@pytest.mark.parametrize('robot', ROBOTS)
def test_render_rgb_array(robot: str) -> None:
    """Offscreen rendering works headless (MUJOCO_GL=egl, as CI runs): a failure fails."""
    env = ROBOTS[robot][0](render_mode='rgb_array', render_size=64)
    env.reset(seed=0, options=_layout((1.2, 0.0), (0.0, 1.0)))
    try:
        frame = env.render()
    except Exception as exc:
        pytest.fail(f'offscreen rendering failed with MUJOCO_GL={os.environ.get("MUJOCO_GL")!r}: '
                    f'{type(exc).__name__}: {exc}. EGL rendering needs the Debian/Ubuntu packages '
                    'libegl1, libegl-mesa0 and libgl1-mesa-dri (apt-get install -y libegl1 '
                    'libegl-mesa0 libgl1-mesa-dri; .ci/run installs them)')
    for _ in range(5):
        env.step(FORWARD[robot])
    moved = env.render()
    env.close()
    assert env._renderer is None
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8 and frame.std() > 0
    assert not np.array_equal(frame, moved)   # the frame shows the current state


def _physics_only_step(env: sn.SafetyNavEnv, data, action: np.ndarray) -> None:
    """The physics an agent step must run, and nothing else: ctrl, then repeat x steps."""
    data.ctrl[:] = np.clip(action, -1.0, 1.0)
    mujoco.mj_step(env.model, data, nstep=sn.ACTION_REPEAT * sn.PHYSICS_STEPS)


@pytest.mark.parametrize('robot', ROBOTS)
def test_step_is_the_physics_plus_a_small_overhead(robot: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """One agent step = ACTION_REPEAT x PHYSICS_STEPS physics steps with the clipped action held,
    and its wall time stays within a small factor of that bare physics, timed in the same run.

    The reference is ``mj_step`` on a copy of the env's own state (same layout, same contacts),
    so the ratio measures what ``step`` adds (observation, reward, cost); alternating short
    blocks and taking each side's fastest block keeps the ratio robust to a loaded machine.
    """
    env = ROBOTS[robot][0]()
    env.reset(seed=0, options=_layout((-1.3, 0.0), (0.0, 1.0)))  # the goal stays out of reach
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1.5, 1.5, (100, 2)).astype(np.float32)  # some outside [-1, 1]
    ref = copy.copy(env.data)
    step_s, ref_s = [], []
    for block in actions.reshape(10, 10, 2):
        start = time.perf_counter()
        for action in block:
            env.step(action)
        step_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        for action in block:
            _physics_only_step(env, ref, action)
        ref_s.append(time.perf_counter() - start)
    # behaviour: exactly that physics (bit for bit), 0.1 s of simulated time per agent step
    np.testing.assert_array_equal(env.data.qpos, ref.qpos)
    np.testing.assert_array_equal(env.data.qvel, ref.qvel)
    assert env.data.time == pytest.approx(len(actions) * env.dt) and env.dt == pytest.approx(0.1)
    # speed: the step's own work is small next to its physics
    ratio = min(step_s) / min(ref_s)
    with capsys.disabled():
        print(f'\n{robot}: agent step {1e6 * min(step_s) / 10:.0f} us = {ratio:.2f} x its '
              f'{sn.ACTION_REPEAT * sn.PHYSICS_STEPS} physics steps')
    assert ratio < MAX_STEP_OVERHEAD, f'env.step costs {ratio:.2f}x its bare physics'
