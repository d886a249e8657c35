"""Test environment: set before anything imports rclpy or mujoco; child processes inherit it."""
from __future__ import annotations

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
