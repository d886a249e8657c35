"""The recorder: ``loop-ros bag record`` (SIGKILL, clean stop) and ``record:=`` through the
launcher. Every bag is generated here."""
from __future__ import annotations

import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from loop_ros.io.bags import bag_info  # noqa: E402
from loop_ros.io.bags import read_transitions  # noqa: E402

pytestmark = pytest.mark.ros
ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    return {**os.environ, 'PYTHONPATH': str(ROOT), 'PYTHONUNBUFFERED': '1',
            'MUJOCO_GL': os.environ.get('MUJOCO_GL', 'egl'), 'OMP_NUM_THREADS': '1'}


class Output:
    """Collects a child's output lines in a thread."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(
            target=lambda: self.lines.extend(iter(proc.stdout.readline, '')), daemon=True)
        self.thread.start()

    @property
    def text(self) -> str:
        return ''.join(self.lines)

    def wait_for(self, pattern: str, proc: subprocess.Popen, timeout_s: float = 40.0) -> None:
        end = time.monotonic() + timeout_s
        while not re.search(pattern, self.text):
            assert proc.poll() is None, f'exited early:\n{self.text}'
            assert time.monotonic() < end, f'no {pattern!r} in:\n{self.text}'
            time.sleep(0.05)


@pytest.mark.parametrize('stop, storage', [(signal.SIGKILL, 'sqlite3'),
                                           (signal.SIGINT, 'mcap')])
def test_recorder_cli(tmp_path: Path, stop: signal.Signals, storage: str) -> None:
    """SIGKILL leaves a sqlite3 bag readable up to its last flush; SIGINT closes the bag."""
    from builtin_interfaces.msg import Time
    from rclpy.node import Node
    from std_msgs.msg import String

    from loop_ros.msg import Transition
    from loop_ros.ros import qos
    from loop_ros.ros.conversions import transition_msg

    out = tmp_path / 'rec'
    ns = f'/rec{os.getpid()}'
    proc = subprocess.Popen(
        [sys.executable, '-m', 'loop_ros.cli', 'bag', 'record', str(out), '--storage', storage,
         '--flush-period', '0.2', '--topics', f'{ns}/chatter'],
        cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = Output(proc)
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = Node('publisher', context=ctx)
    try:
        pub = node.create_publisher(Transition, f'{ns}/transition', qos.TRANSITION)
        chatter = node.create_publisher(String, f'{ns}/chatter', 100)   # keeps all 50
        end = time.monotonic() + 40.0
        while pub.get_subscription_count() == 0 or chatter.get_subscription_count() == 0:
            assert proc.poll() is None, output.text
            assert time.monotonic() < end, f'the recorder never subscribed:\n{output.text}'
            time.sleep(0.05)
        for i in range(50):
            pub.publish(transition_msg(np.full(3, float(i)), [0.1, -0.2], np.full(3, i + 1.0),
                                       1.0, 0.0, False, i == 49, Time(sec=i), 'robot', 0, i))
            msg = String()
            msg.data = f'hello {i}'
            chatter.publish(msg)
            time.sleep(0.005)
        time.sleep(1.0)   # several flush periods
        proc.send_signal(stop)
        code = proc.wait(timeout=30)
    finally:
        node.destroy_node()
        rclpy.shutdown(context=ctx)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output.thread.join(timeout=5)
    assert code == (-signal.SIGKILL if stop == signal.SIGKILL else 0), output.text
    assert (out / 'metadata.yaml').exists() == (stop != signal.SIGKILL)
    data = read_transitions(out)
    assert data.obs[:, 0].tolist() == list(range(50)) and data.truncated[-1]
    info = bag_info(out)
    assert {t.name: t.count for t in info.topics} == {f'{ns}/transition': 50,
                                                     f'{ns}/chatter': 50}
    assert bool(info.recovered) == (stop == signal.SIGKILL)


def test_record_cli_refuses_an_existing_bag(tmp_path: Path, capsys) -> None:
    from loop_ros.cli import main
    (tmp_path / 'rec').mkdir()
    assert main(['bag', 'record', str(tmp_path / 'rec')]) == 2
    err = capsys.readouterr().err
    assert err.startswith('loop-ros: error:') and 'exists already' in err


@pytest.mark.slow
def test_record_through_the_launcher(tmp_path: Path) -> None:
    """record:=PATH adds a recorder to the graph; SIGINT stops all and closes the bag."""
    out = tmp_path / 'graph_bag'
    ns = f'/gr{os.getpid()}'
    proc = subprocess.Popen(
        [sys.executable, '-m', 'loop_ros.launcher', 'mujoco', 'nodes:=sim_bridge',
         'env:=InvertedPendulum-v5', 'real_time_factor:=20', f'namespace:={ns}',
         f'record:={out}'],
        cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        process_group=0)
    output = Output(proc)
    try:
        output.wait_for(rf'recording {ns}/transition \(loop_ros/msg/Transition', proc)
        output.wait_for(r'episode [1-9][0-9]*:', proc)   # the log is throttled
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for m in re.finditer(r'\[launcher\] started \S+ \(pid (\d+)\)', output.text):
            try:
                os.killpg(int(m.group(1)), signal.SIGKILL)
            except ProcessLookupError:
                pass
    output.thread.join(timeout=5)
    assert code == 0, output.text
    assert output.text.count('exited with code 0') == 2, output.text
    data = read_transitions(out, obs_dim=4, act_dim=1)
    assert len(data) >= 3 and (data.episode[:3] == 0).all()
    assert data.step[:3].tolist() == [0, 1, 2]   # from the first step: nothing was lost
    assert (out / 'metadata.yaml').is_file()
