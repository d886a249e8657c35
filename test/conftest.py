"""Test environment: set before anything imports rclpy or mujoco; child processes inherit it."""
from __future__ import annotations

import ctypes.util
import os
import random

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('ROS_DOMAIN_ID', str(random.Random(os.getpid()).randint(1, 100)))
os.environ.setdefault('MUJOCO_GL', 'egl')
os.environ.setdefault('OMP_NUM_THREADS', '2')

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)


def pytest_configure(config: pytest.Config) -> None:
    """MUJOCO_GL=egl needs libEGL: without it mujoco fails to import, deep inside PyOpenGL."""
    if os.environ['MUJOCO_GL'] == 'egl' and ctypes.util.find_library('EGL') is None:
        raise pytest.UsageError(
            'MUJOCO_GL=egl (headless MuJoCo rendering) but libEGL is not installed: '
            'apt-get install -y libegl1 libegl-mesa0 libgl1-mesa-dri (.ci/run does this as root)')


def _devices() -> list[str]:
    devices = ['cpu']
    if torch.cuda.is_available():
        devices.append('cuda')
    return devices


@pytest.fixture(params=_devices())
def device(request: pytest.FixtureRequest) -> torch.device:
    """CPU always, CUDA where present: every GPU code path also runs on CPU."""
    return torch.device(request.param)


@pytest.fixture(autouse=True)
def _ros_log_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('ROS_LOG_DIR', str(tmp_path_factory.getbasetemp() / 'ros_log'))


def random_action_bag(path, env_id: str, n: int, seed: int = 0):
    """``n`` uniform-random-action transitions of ``env_id`` (costs from ``info``), as a bag."""
    import numpy as np
    from loop_ros.envs import make_env
    from loop_ros.io import TransitionData, write_transitions
    env = make_env(env_id, seed=seed)
    rng = np.random.default_rng(seed)
    rows = []
    obs, _ = env.reset(seed=seed)
    dt = float(getattr(env.unwrapped, 'dt', 0.05))
    for _ in range(n):
        action = rng.uniform(-1, 1, env.action_space.shape[0])
        nxt, reward, term, trunc, info = env.step(action)
        rows.append((obs, action, reward, nxt, info.get('cost', 0.0), term, trunc))
        obs = env.reset()[0] if term or trunc else nxt
    env.close()
    c = [np.array(col) for col in zip(*rows)]
    return write_transitions(path, TransitionData.from_arrays(
        c[0], c[1], c[2], c[3], cost=c[4], terminated=c[5], truncated=c[6],
        stamp_ns=np.arange(n) * int(dt * 1e9)))


@pytest.fixture
def make_random_bag():
    """``make_random_bag(path, env_id, n, seed=0)``: see :func:`random_action_bag`."""
    return random_action_bag
