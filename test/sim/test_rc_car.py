"""RC-car simulator: gymnasium API, vehicle physics, batched twin, tasks, resets and rendering."""
from __future__ import annotations

import importlib
import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from PIL import Image

import loop_ros.sim
from loop_ros.core.tasks import get_task
from loop_ros.sim import rc_car
from loop_ros.sim.rc_car import (make_task, OBS_DIM, OBS_DTHETA, OBS_DX, OBS_THETA, RCCarEnv,
                                 RCCarTask,
                                 observation_torch)
from loop_ros.sim.rc_car_dynamics import (DEFAULT_PARAMS, RCCarDynamicsTorch, action_to_controls,
                                          derivatives_torch,
                                          scalar_derivative, step_batch, step_scalar,
                                          tyre_forces_torch)
from loop_ros.sim.render import render_episode, render_frame

ENV_IDS = ('loop_ros/RCCarCircle-v0', 'loop_ros/RCCarDrift-v0')


def _wheel_action(v_wheel: float) -> float:
    """Normalised a[0] commanding ``v_wheel`` m/s."""
    return v_wheel / 5.0 - 1.0


def _steer_action(delta: float) -> float:
    return delta / (math.pi / 6)


def _angle_diff(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor):
    return (a - b + math.pi) % (2 * math.pi) - math.pi


def _rollout(env: gym.Env, actions: np.ndarray) -> list[tuple]:
    """(obs, action, next_obs, reward, terminated, truncated, info) until the episode ends."""
    obs, _ = env.reset(seed=3)
    rows = []
    for action in actions:
        next_obs, reward, terminated, truncated, info = env.step(action)
        rows.append((obs, action, next_obs, reward, terminated, truncated, info))
        obs = next_obs
        if terminated or truncated:
            break
    return rows


# ----------------------------------------------------------------------------------------------
# gymnasium API and registration


@pytest.mark.parametrize('env_id', ENV_IDS)
def test_make_and_check_env(env_id: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # a warning from the checker is a failure
        env = gym.make(env_id)
        check_env(env.unwrapped)
        check_env(gym.make(env_id, render_mode='rgb_array').unwrapped)
    assert env.spec is not None and env.spec.max_episode_steps == 100
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    assert env.observation_space.shape == (OBS_DIM,)
    assert env.observation_space.dtype == np.float32
    task = get_task(env_id, warn=False)
    assert task.reward is not None and task.cost is not None and task.termination is not None
    assert task.start_steps == rc_car.START_STEPS


def test_registration_is_idempotent() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        importlib.reload(loop_ros.sim)
        rc_car.register()
        rc_car.register()
    for env_id in ENV_IDS:
        assert env_id in gym.registry
        assert gym.registry[env_id].entry_point == 'loop_ros.sim.rc_car:RCCarEnv'


def test_the_20_hz_circle_is_the_circle_task_in_half_steps() -> None:
    """RCCarCircle20Hz-v0: 0.05 s steps, the same 10 s episodes (200 steps), five random
    episodes (1000 steps), and the 10 Hz task's reward, cost and termination."""
    env = gym.make('loop_ros/RCCarCircle20Hz-v0')
    assert env.unwrapped.dt == 0.05 and env.spec.max_episode_steps == 200
    fast, slow = get_task('loop_ros/RCCarCircle20Hz-v0'), get_task('loop_ros/RCCarCircle-v0')
    assert fast.start_steps == 2 * slow.start_steps == 1000
    obs = torch.as_tensor(np.stack([env.observation_space.sample() for _ in range(64)]))
    act = torch.zeros(64, 2)
    assert torch.equal(fast.reward(obs, act, obs), slow.reward(obs, act, obs))
    assert torch.equal(fast.cost(obs, act, obs), slow.cost(obs, act, obs))
    # half a 0.1 s step: one 20 Hz step moves the car about half as far
    start = {'state': (0.0, -1.0, 0.0, 2.0, 0.0, 0.0)}
    moved = []
    for env_id in ('loop_ros/RCCarCircle20Hz-v0', 'loop_ros/RCCarCircle-v0'):
        e = gym.make(env_id)
        e.reset(seed=0, options=start)
        e.step(np.array([-0.6, 0.0], np.float32))
        moved.append(float(e.unwrapped.state[0]))
    assert moved[0] == pytest.approx(moved[1] / 2, rel=0.15)


def test_truncates_exactly_at_step_100() -> None:
    env = gym.make('loop_ros/RCCarCircle-v0')
    env.reset(seed=0)
    truncations = []
    for _ in range(100):  # slow, gentle left turn: stays well inside the 3 m arena
        _, _, terminated, truncated, _ = env.step(np.array([-0.8, 0.4], np.float32))
        assert not terminated
        truncations.append(truncated)
    assert truncations == [False] * 99 + [True]


def test_terminates_when_leaving_the_arena() -> None:
    env = gym.make('loop_ros/RCCarCircle-v0', arena_radius=3.0)
    env.reset(seed=0, options={'state': (-1.0, 0.0, math.pi, 3.0, 0.0, 0.0)})  # heading out
    for step in range(1, 101):
        obs, _, terminated, truncated, info = env.step(np.array([1.0, 0.0], np.float32))
        if terminated:
            break
    assert terminated and not truncated and step < 100
    assert obs[OBS_DX] > 2.0 and info['cost'] == 1.0
    x, y = env.unwrapped.state[:2]
    assert math.hypot(x, y) > 3.0


def test_non_finite_action_is_rejected() -> None:
    env = RCCarEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match='finite'):
        env.step(np.array([np.nan, 0.0], np.float32))


# ----------------------------------------------------------------------------------------------
# Vehicle physics


@pytest.mark.parametrize('delta', [0.1, 0.2])
def test_steady_turn_radius_matches_bicycle_geometry(delta: float) -> None:
    p = DEFAULT_PARAMS
    state = (0.0, 0.0, 0.0, 1.0, 0.0, 0.0)
    for _ in range(80):  # 8 s: the transient is over within ~1 s
        state = step_scalar(state, 1.0, delta)
    speeds, yaw_rates = [], []
    for _ in range(20):
        state = step_scalar(state, 1.0, delta)
        speeds.append(math.hypot(state[3], state[4]))
        yaw_rates.append(state[5])
    assert np.std(yaw_rates) < 1e-6 * abs(np.mean(yaw_rates))  # steady state reached
    speed = float(np.mean(speeds))
    radius = speed / float(np.mean(yaw_rates))
    kinematic = p.wheelbase / math.tan(delta)
    # linear-tyre understeer gradient K_us = m / L (L_r / C_f - L_f / C_r) (< 0: oversteer)
    understeer = p.mass / p.wheelbase * (p.l_rear - p.l_front) / p.c_alpha
    corrected = (p.wheelbase + understeer * speed ** 2) / math.tan(delta)
    assert radius == pytest.approx(kinematic, rel=0.05)
    assert radius == pytest.approx(corrected, rel=0.02)
    assert abs(speed - 1.0) < 0.05


def _side_slip_and_rear_slip(v_wheel: float, delta: float, steps: int = 30):
    """Max |side slip| (deg) and max rear combined slip over a run from 2 m/s straight."""
    p = DEFAULT_PARAMS
    state = (0.0, 0.0, 0.0, min(v_wheel, 2.0), 0.0, 0.0)
    slips, gammas = [], []
    for _ in range(steps):
        state = step_scalar(state, v_wheel, delta)
        row = torch.tensor([state], dtype=torch.float64)
        gamma = tyre_forces_torch(row[:, 3], row[:, 4], row[:, 5],
                                  torch.tensor([v_wheel], dtype=torch.float64),
                                  torch.tensor([math.cos(delta)], dtype=torch.float64),
                                  torch.tensor([math.sin(delta)], dtype=torch.float64), p)[3]
        slips.append(abs(math.degrees(math.atan2(state[4], state[3]))))
        gammas.append(float(gamma))
    return max(slips), max(gammas)


def test_beyond_the_grip_limit_the_rear_slides_and_the_car_drifts() -> None:
    p = DEFAULT_PARAMS
    delta = math.pi / 6
    kinematic_slip = math.degrees(math.atan(p.l_rear / p.wheelbase * math.tan(delta)))  # ~15
    slow_slip, slow_gamma = _side_slip_and_rear_slip(0.5, delta)
    assert slow_gamma < p.rear_slide_gamma
    assert abs(slow_slip - kinematic_slip) < 3.0  # rolling: slip angle of the geometry only
    fast_slip, fast_gamma = _side_slip_and_rear_slip(6.0, delta)
    assert fast_gamma > p.rear_slide_gamma  # rear axle saturated
    assert fast_slip > 10.0 and fast_slip > kinematic_slip + 10.0


def test_zero_wheel_command_brakes_to_rest_without_gaining_energy() -> None:
    p = DEFAULT_PARAMS
    rng = np.random.default_rng(0)
    for _ in range(6):
        state = (0.0, 0.0, rng.uniform(-3, 3), rng.uniform(0.0, 6.0), rng.uniform(-1, 1),
                 rng.uniform(-3, 3))
        steer = rng.uniform(-1, 1)
        v_wheel, delta = action_to_controls(-1.0, steer)
        assert v_wheel == 0.0
        energies = []
        for _ in range(30):
            energies.append(0.5 * p.mass * (state[3] ** 2 + state[4] ** 2)
                            + 0.5 * p.i_z * state[5] ** 2)
            state = step_scalar(state, v_wheel, delta)
            assert all(math.isfinite(value) for value in state)
        assert np.all(np.diff(energies) <= 1e-12 * energies[0])
        assert math.hypot(state[3], state[4]) < 1e-3 and abs(state[5]) < 1e-3


def test_dynamics_stay_finite_at_and_near_standstill() -> None:
    derivative = scalar_derivative(DEFAULT_PARAMS)
    for v_x in (0.0, 1e-12, -1e-12, 1e-3, -0.3):
        for v_y, yaw_rate in ((0.0, 0.0), (0.5, -3.0), (-2.0, 8.0)):
            for v_wheel, delta in ((0.0, 0.0), (10.0, math.pi / 6), (v_x, -math.pi / 6)):
                rates = derivative(0.3, v_x, v_y, yaw_rate, v_wheel, math.cos(delta),
                                   math.sin(delta))
                assert all(math.isfinite(value) for value in rates)
    state = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    state = step_scalar(state, 10.0, math.pi / 6)  # full throttle from rest: it moves forward
    assert all(math.isfinite(value) for value in state) and state[3] > 0.1


def test_batched_dynamics_match_the_single_env(device: torch.device) -> None:
    rng = np.random.default_rng(1)
    envs = [RCCarEnv() for _ in range(8)]
    for seed, env in enumerate(envs):
        env.reset(seed=seed)
    model = RCCarDynamicsTorch()
    start = np.array([env.state for env in envs])
    rollout = torch.tensor(start, dtype=torch.float64, device=device)
    worst_one_step = worst_rollout = 0.0
    for _ in range(100):
        actions = rng.uniform(-1.2, 1.2, (len(envs), 2))  # beyond the bounds: both clip
        before = torch.tensor(np.array([env.state for env in envs]), device=device)
        for env, action in zip(envs, actions):
            env.step(action)
        after = torch.tensor(np.array([env.state for env in envs]), device=device)
        action_t = torch.tensor(actions, device=device)
        one_step = model(before, action_t)
        rollout = model(rollout, action_t)
        assert one_step.device == before.device and one_step.dtype == torch.float64
        for predicted, errors in ((one_step, 'one'), (rollout, 'roll')):
            diff = (predicted - after).abs()
            diff[:, 2] = _angle_diff(predicted[:, 2], after[:, 2]).abs()
            if errors == 'one':
                worst_one_step = max(worst_one_step, float(diff.max()))
            else:
                worst_rollout = max(worst_rollout, float(diff.max()))
    speeds = np.hypot(after[:, 3].cpu().numpy(), after[:, 4].cpu().numpy())
    assert speeds.max() > 1.0  # the cars did move
    assert worst_one_step < 1e-10
    assert worst_rollout < 1e-7
    observations = observation_torch(after)
    expected = np.array([rc_car.observation_scalar(env._state) for env in envs])
    np.testing.assert_allclose(observations.cpu().numpy(), expected, atol=1e-10)


def test_batched_dynamics_keep_dtype_shape_and_gradients(device: torch.device) -> None:
    state = torch.zeros(3, 4, 6, device=device)
    state[..., 3] = 1.0
    # 1.5 m/s wheel speed at 1 m/s: the rear tyre grips, so its force grows with wheel speed
    action = torch.full((3, 4, 2), -0.7, device=device, requires_grad=True)
    next_state = step_batch(state, action)
    assert next_state.shape == (3, 4, 6) and next_state.dtype == torch.float32
    assert next_state.device == state.device
    next_state[..., 3].sum().backward()  # more wheel speed -> more forward speed
    assert action.grad is not None and bool((action.grad[..., 0] > 0).all())


# ----------------------------------------------------------------------------------------------
# Observations, rewards, costs, terminations


def test_observation_geometry() -> None:
    # on the circle at (0, -1), heading east (the CCW tangent) at 1 m/s, turning at 1 rad/s
    obs = rc_car.observation_scalar((0.0, -1.0, 0.0, 1.0, 0.0, 1.0))
    np.testing.assert_allclose(obs, (0, 0, 0, 0, 1, 0, 1, 0, 1), atol=1e-12)
    # 0.5 m outside, heading straight out (theta = -pi/2) at 2 m/s: d(dx)/dt = 2
    obs = rc_car.observation_scalar((1.5, 0.0, 0.0, 2.0, 0.0, 0.0))
    assert obs[OBS_DX] == pytest.approx(0.5) and obs[OBS_THETA] == pytest.approx(math.pi / 2)
    assert obs[2] == pytest.approx(2.0) and obs[OBS_DTHETA] == pytest.approx(0.0)


@pytest.mark.parametrize('env_id', ENV_IDS)
def test_task_functions_match_the_env_on_real_observations(env_id: str) -> None:
    env = gym.make(env_id, arena_radius=3.0)
    rng = np.random.default_rng(0)
    rows = []
    for episode in range(4):  # random play, then drives that cross the boundary and the arena
        if episode < 2:
            actions = rng.uniform(-1, 1, (100, 2)).astype(np.float32)
        else:
            actions = np.tile(np.array([0.2 + 0.3 * episode, 0.1], np.float32), (100, 1))
        rows += _rollout(env, actions)
    obs, action, next_obs = (torch.tensor(np.array([row[i] for row in rows])) for i in range(3))
    rewards = np.array([row[3] for row in rows])
    terminated = np.array([row[4] for row in rows])
    costs = np.array([row[6]['cost'] for row in rows])
    assert costs.sum() > 0 and (costs == 0).sum() > 0 and terminated.sum() > 0
    task = make_task('drift' if 'Drift' in env_id else 'circle', arena_radius=3.0)
    np.testing.assert_allclose(task.reward(obs, action, next_obs).numpy(), rewards, atol=1e-4)
    np.testing.assert_array_equal(task.cost(obs, action, next_obs).numpy(), costs)
    np.testing.assert_array_equal(task.terminated(next_obs).numpy(), terminated)
    # the registered task has no arena: only non-finite states terminate
    assert not get_task(env_id, warn=False).terminated(next_obs).any()


def test_circle_reward_formula() -> None:
    task = RCCarTask('circle', target_speed=1.5)
    # dx = 0.1, speed 2 (v_x, v_y = 1.2, 1.6), theta = 3 pi / 4: heading beyond pi / 2
    theta = 0.75 * math.pi
    obs = torch.tensor([[0.1, theta, 0, 0, 1.2, 1.6, 0, math.sin(theta), math.cos(theta)]],
                       dtype=torch.float64)
    expected = -0.1 - 0.25 * 0.5 ** 2 - 0.25 * (math.pi / 4) ** 2
    assert float(task.reward(obs, torch.zeros(1, 2), obs)) == pytest.approx(expected)
    assert task.reward_scalar(tuple(obs[0].tolist())) == pytest.approx(expected)


def test_fastest_steady_motion_on_the_circle_needs_side_slip() -> None:
    """Beyond every gripping steady state on the circle, a steady slide still exists.

    The drift reward is the speed along the circle, so its optimum slides: large side slip, rear
    axle fully sliding, counter-steer.
    """
    p = DEFAULT_PARAMS
    speed = 3.8  # m/s on the 1 m circle

    def residual(z: torch.Tensor) -> torch.Tensor:  # body accelerations of steady circling
        beta, delta, v_wheel = z.unbind(-1)
        v_x, v_y = speed * torch.cos(beta), speed * torch.sin(beta)
        yaw_rate = torch.full_like(v_x, speed)
        rates = derivatives_torch(
            torch.zeros_like(v_x), v_x, v_y, yaw_rate, v_wheel, torch.cos(delta),
            torch.sin(delta), p)
        return torch.stack((rates[3], rates[4], 0.2 * rates[5]), dim=-1)

    def grid(max_slip_deg: float, num_slip: int) -> torch.Tensor:
        axes = (torch.linspace(-math.radians(max_slip_deg), math.radians(max_slip_deg),
                               num_slip, dtype=torch.float64),
                torch.linspace(-math.pi / 6, math.pi / 6, 41, dtype=torch.float64),
                torch.linspace(0.0, 10.0, 51, dtype=torch.float64))
        return torch.stack(torch.meshgrid(*axes, indexing='ij'), dim=-1).reshape(-1, 3)

    gripping = grid(10.0, 11)
    assert float(residual(gripping).norm(dim=-1).min()) > 1.0  # no steady state with |beta|<10
    candidates = grid(70.0, 41)
    z = candidates[residual(candidates).norm(dim=-1).argmin()]
    for _ in range(30):  # Newton on (beta, delta, v_wheel)
        jacobian = torch.autograd.functional.jacobian(residual, z)
        z = z + torch.linalg.lstsq(jacobian, -residual(z)).solution
    beta, delta, v_wheel = (float(value) for value in z)
    assert float(residual(z).norm()) < 1e-9
    assert abs(beta) > math.radians(30) and abs(delta) <= math.pi / 6 and 0 <= v_wheel <= 10
    assert delta * speed < 0.0  # counter-steer: steering against the yaw rate
    v_x, v_y = speed * math.cos(beta), speed * math.sin(beta)
    gamma = tyre_forces_torch(*(torch.tensor([value], dtype=torch.float64)
                                for value in (v_x, v_y, speed, v_wheel, math.cos(delta),
                                              math.sin(delta))), p)[3]
    assert float(gamma) > p.rear_slide_gamma
    # on the circle at (1, 0) moving CCW: the drift reward is the full speed, not v cos(beta)
    state = torch.tensor([[1.0, 0.0, math.pi / 2 - beta, v_x, v_y, speed]], dtype=torch.float64)
    obs = observation_torch(state)
    task = RCCarTask('drift')
    assert float(obs[0, OBS_THETA]) == pytest.approx(beta)
    assert float(task.reward(obs, torch.zeros(1, 2), obs)) == pytest.approx(speed)


# ----------------------------------------------------------------------------------------------
# Resets, seeding, pose


def test_reset_randomisation_ranges_and_seeding() -> None:
    env = gym.make('loop_ros/RCCarCircle-v0', target_speed=1.5)
    starts = []
    for seed in range(300):
        env.reset(seed=seed)
        starts.append(env.unwrapped.state)
    starts = np.array(starts)
    yaw_offset = np.degrees(_angle_diff(starts[:, 2], math.radians(270.0)))
    columns = {'x + r': (starts[:, 0] + 1.0, -0.25, 0.25), 'yaw - 270deg': (yaw_offset, -60, 60),
               'v_x': (starts[:, 3], 0.0, 3.0), 'v_y': (starts[:, 4], -0.6, 0.6),
               'yaw_rate': (starts[:, 5], -2.0, 2.0)}
    for name, (values, low, high) in columns.items():
        assert values.min() >= low and values.max() <= high, name
        assert values.max() - values.min() > 0.9 * (high - low), name  # spread over the range
    assert np.all(starts[:, 1] == 0.0)
    first, _ = env.reset(seed=7)
    state = env.unwrapped.state
    trajectory = [env.step(np.array([0.3, -0.2], np.float32))[0] for _ in range(5)]
    again, _ = env.reset(seed=7)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(state, env.unwrapped.state)
    np.testing.assert_array_equal(trajectory,
                                  [env.step(np.array([0.3, -0.2], np.float32))[0]
                                   for _ in range(5)])
    other, _ = env.reset(seed=8)
    assert not np.array_equal(first, other)


def test_base_pose_twist_is_the_state_with_body_frame_velocity() -> None:
    env = RCCarEnv(dt=0.01, substeps=1)
    env.reset(seed=0)
    for _ in range(50):
        before = env.base_pose_twist()
        env.step(np.array([0.0, 0.8], np.float32))
        after = env.base_pose_twist()
        np.testing.assert_array_equal(after, env.state)
        assert -math.pi <= after[2] < math.pi
        # world displacement = R(yaw) (v_x, v_y) dt, to first order
        yaw = before[2] + 0.5 * _angle_diff(after[2], before[2])
        v_x, v_y = 0.5 * (before[3] + after[3]), 0.5 * (before[4] + after[4])
        expected = np.array([v_x * math.cos(yaw) - v_y * math.sin(yaw),
                             v_x * math.sin(yaw) + v_y * math.cos(yaw)]) * 0.01
        np.testing.assert_allclose(np.subtract(after[:2], before[:2]), expected, atol=2e-4)


# ----------------------------------------------------------------------------------------------
# Rendering


def test_render_rgb_array_frames_show_the_car_moving() -> None:
    env = gym.make('loop_ros/RCCarDrift-v0', render_mode='rgb_array')
    env.reset(seed=0)
    first = env.render()
    for _ in range(10):
        env.step(np.array([0.0, 0.5], np.float32))
    later = env.render()
    assert first.shape == later.shape == (320, 320, 3) and first.dtype == np.uint8
    assert np.any(first != later)
    assert RCCarEnv().render() is None


def test_render_episode_writes_png_and_gif(tmp_path) -> None:
    env = RCCarEnv()
    env.reset(seed=0)
    states = [env.state]
    for _ in range(100):
        env.step(np.array([-0.4, 0.6], np.float32))
        states.append(env.state)
    states = np.array(states)
    png = render_episode(states, tmp_path / 'episode.png', title='RCCarCircle-v0')
    gif = render_episode(states, tmp_path / 'out' / 'episode.gif', fps=10)
    with Image.open(png) as image:
        image.verify()
    with Image.open(png) as image:
        assert image.format == 'PNG' and image.size == (320, 320)
        pixels = np.asarray(image.convert('RGB'))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 4  # circles, path, car, text
    with Image.open(gif) as image:
        assert image.format == 'GIF' and image.n_frames == len(states)
        image.seek(0)
        start = np.asarray(image.convert('RGB'))
        image.seek(len(states) - 1)
        end = np.asarray(image.convert('RGB'))
    assert np.any(start != end)
    frame = render_frame(states[:1], size=64)
    assert frame.shape == (64, 64, 3)
    with pytest.raises(ValueError, match='png or .gif'):
        render_episode(states, tmp_path / 'episode.jpg')
