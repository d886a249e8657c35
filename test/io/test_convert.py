"""``loop-ros bag convert``: Odometry/JointState + Twist/TwistStamped -> Transition bags.

The recordings are synthesised here with rosbags (a unicycle driving, odometry at 50 Hz,
commands at 10 Hz with a 3 ms latency); none is committed.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from rosbags.rosbag2 import Writer
from transforms3d.euler import euler2quat

from loop_ros.cli import main as cli_main
from loop_ros.io import bags
from loop_ros.io import odometry
from loop_ros.io.bags import BagError
from loop_ros.io.bags import read_metadata
from loop_ros.io.bags import read_transitions
from loop_ros.io.convert import convert_bags
from loop_ros.io.convert import ConvertConfig

T0 = 1_000_000_000          # receive time of the first message (ns)
ODOM_NS = 20_000_000        # 50 Hz
CMD_NS = 100_000_000        # 10 Hz
LATENCY_NS = 3_000_000
HEADER_OFFSET_NS = 5 * 10**9   # header stamps run on another clock than the receive times
STORE = bags.typestore()
TY = STORE.types


def _time(ns: int) -> object:
    return TY['builtin_interfaces/msg/Time'](sec=ns // 10**9, nanosec=ns % 10**9)


def _header(ns: int, frame: str) -> object:
    return TY['std_msgs/msg/Header'](stamp=_time(ns), frame_id=frame)


def _twist(vx: float, wz: float) -> object:
    v3 = TY['geometry_msgs/msg/Vector3']
    return TY['geometry_msgs/msg/Twist'](linear=v3(x=vx, y=0.0, z=0.0),
                                         angular=v3(x=0.0, y=0.0, z=wz))


def odometry_msg(stamp_ns: int, x: float, y: float, yaw: float, vx: float, wz: float) -> object:
    w, qx, qy, qz = euler2quat(0.0, 0.0, yaw)
    pose = TY['geometry_msgs/msg/Pose'](
        position=TY['geometry_msgs/msg/Point'](x=x, y=y, z=0.0),
        orientation=TY['geometry_msgs/msg/Quaternion'](x=qx, y=qy, z=qz, w=w))
    return TY['nav_msgs/msg/Odometry'](
        header=_header(stamp_ns, 'odom'), child_frame_id='base_link',
        pose=TY['geometry_msgs/msg/PoseWithCovariance'](pose=pose, covariance=np.zeros(36)),
        twist=TY['geometry_msgs/msg/TwistWithCovariance'](twist=_twist(vx, wz),
                                                          covariance=np.zeros(36)))


def command(i: int) -> tuple[float, float]:
    """Command i (sent at T0 + i * CMD_NS + LATENCY_NS): recognisable values."""
    return 0.5, round(-0.4 + 0.2 * (i % 5), 3)


def unicycle(t_ns: np.ndarray) -> np.ndarray:
    """(x, y, yaw, vx, wz) of a unicycle at 0.5 m/s turning at 0.5 rad/s, yaw from 3.0 rad."""
    t = (t_ns - T0) * 1e-9
    yaw = 3.0 + 0.5 * t
    x = (np.sin(yaw) - math.sin(3.0))
    y = -(np.cos(yaw) - math.cos(3.0))
    return np.stack([x, y, yaw, np.full_like(t, 0.5), np.full_like(t, 0.5)], axis=1)


def write_recording(path: Path, *, storage: str = 'mcap', seconds: float = 4.0,
                    stamped: bool = False, gap: tuple[float, float] | None = None,
                    command_stop: float | None = None, joint_state: bool = False,
                    big_command_at: int | None = None, odom_topic: str = '/odom',
                    early_command: bool = False) -> Path:
    """Odometry (or JointState) at 50 Hz and Twist (or TwistStamped) at 10 Hz.

    ``early_command``: one more command (angular.z 0.9) 50 ms before the first odometry.
    """
    n_odom = int(seconds * 1e9 / ODOM_NS)
    times = T0 + ODOM_NS * np.arange(n_odom)
    states = unicycle(times)
    cmd_type = 'geometry_msgs/msg/TwistStamped' if stamped else 'geometry_msgs/msg/Twist'
    state_type = 'sensor_msgs/msg/JointState' if joint_state else 'nav_msgs/msg/Odometry'
    with Writer(path, version=9, storage_plugin=bags.STORAGES[storage]) as w:
        c_state = w.add_connection(odom_topic, state_type, typestore=STORE)
        c_cmd = w.add_connection('/cmd_vel', cmd_type, typestore=STORE)
        w.add_connection('/rosout_dummy', 'std_msgs/msg/String', typestore=STORE)
        for t, (x, y, yaw, vx, wz) in zip(times, states):
            t = int(t)
            if gap and gap[0] <= (t - T0) * 1e-9 < gap[1]:
                continue
            if joint_state:
                msg = TY['sensor_msgs/msg/JointState'](
                    header=_header(t + HEADER_OFFSET_NS, ''), name=['left', 'right'],
                    position=np.array([x, y]), velocity=np.array([vx, wz]),
                    effort=np.zeros(0))
                w.write(c_state, t, STORE.serialize_cdr(msg, state_type))
            else:
                msg = odometry_msg(t + HEADER_OFFSET_NS, x, y, yaw, vx, wz)
                w.write(c_state, t, STORE.serialize_cdr(msg, state_type))
        if early_command:
            w.write(c_cmd, T0 - CMD_NS // 2, STORE.serialize_cdr(_twist(0.5, 0.9), cmd_type))
        for i in range(int(seconds * 1e9 / CMD_NS)):
            t = T0 + i * CMD_NS + LATENCY_NS
            if command_stop is not None and (t - T0) * 1e-9 >= command_stop:
                break
            vx, wz = command(i)
            if big_command_at == i:
                vx = 5.0
            twist = _twist(vx, wz)
            msg = TY[cmd_type](header=_header(t + HEADER_OFFSET_NS, 'base_link'),
                               twist=twist) if stamped else twist
            w.write(c_cmd, t, STORE.serialize_cdr(msg, cmd_type))
    return path


def grid_times(data: bags.TransitionData) -> np.ndarray:
    """t_k of each transition (its stamp is t_{k+1})."""
    return data.stamp_ns - CMD_NS


# --- the mapping ---------------------------------------------------------------------------------

def test_odometry_mapping_is_duck_typed() -> None:
    """rosbags messages and plain namespaces (as rclpy messages) map the same way."""
    msg = odometry_msg(0, 1.0, 2.0, 0.7, 0.3, -0.2)
    state = odometry.odometry_state(msg)
    assert np.allclose(state[[0, 1, 5, 6, 11]], [1.0, 2.0, 0.7, 0.3, -0.2])
    w, qx, qy, qz = euler2quat(0.0, 0.0, 0.7)
    ns = SimpleNamespace
    duck = ns(pose=ns(pose=ns(position=ns(x=1.0, y=2.0, z=0.0),
                              orientation=ns(x=qx, y=qy, z=qz, w=w))),
              twist=ns(twist=ns(linear=ns(x=0.3, y=0.0, z=0.0), angular=ns(x=0, y=0, z=-0.2))))
    obs = odometry.odometry_observation(duck)
    assert np.allclose(obs, [1.0, 2.0, math.sin(0.7), math.cos(0.7), 0.3, 0.0, -0.2], atol=1e-6)
    assert np.allclose(odometry.odometry_observation(msg), obs)
    rc = odometry.odometry_observation(msg, env_id='loop_ros/RCCarCircle-v0')
    from loop_ros.sim.rc_car import observation_scalar
    assert np.allclose(rc, observation_scalar((1.0, 2.0, 0.7, 0.3, 0.0, -0.2)), atol=1e-6)
    low, high = np.array([-0.5, -2.0]), np.array([1.5, 2.0])
    a, clipped = odometry.normalize_action(np.array([[1.5, 0.0], [-0.5, 3.0]]), low, high)
    assert a.tolist() == [[1.0, 0.0], [-1.0, 1.0]] and clipped.tolist() == [False, True]
    assert np.allclose(odometry.denormalize_action(a[:1], low, high), [[1.5, 0.0]])
    with pytest.raises(ValueError, match='not a rotation'):
        odometry.odometry_state(ns(pose=ns(pose=ns(position=ns(x=0, y=0, z=0),
                                                   orientation=ns(x=0, y=0, z=0, w=0))),
                                   twist=duck.twist))


# --- conversions ---------------------------------------------------------------------------------

@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_odometry_and_twist(tmp_path: Path, storage: str) -> None:
    src = write_recording(tmp_path / 'robot', storage=storage, early_command=True)
    result = convert_bags([src], tmp_path / 'out', ConvertConfig(rate_hz=10.0, storage=storage))
    data = read_transitions(result.path, obs_dim=7, act_dim=2)
    # receive times (Twist has no header): grid from the first odometry, 100 ms apart
    t = grid_times(data)
    assert t[0] == T0 and (np.diff(data.stamp_ns) == CMD_NS).all()
    assert len(data) == 39   # grid t_0 = 1.0 s .. t_39 = 4.9 s <= 4.98 s (the last odometry)
    expected = unicycle(t)
    assert np.allclose(data.obs[:, 0], expected[:, 0], atol=1e-4)
    assert np.allclose(data.obs[:, 2], np.sin(expected[:, 2]), atol=1e-4)
    assert np.allclose(data.obs[:, 3], np.cos(expected[:, 2]), atol=1e-4)
    assert np.allclose(data.obs[:, 4:], [[0.5, 0.0, 0.5]], atol=1e-6)
    assert np.array_equal(data.obs[1:], data.next_obs[:-1])
    # the command at the middle of each interval: command k (sent 3 ms after t_k), not the
    # one in force at t_k (command k - 1, or the early one)
    assert np.allclose(data.action, [[0.5, command(k)[1]] for k in range(len(data))])
    assert (data.reward == 0).all() and not data.terminated.any()
    assert data.truncated.tolist() == [False] * 38 + [True]
    assert (data.episode == 0).all() and data.step.tolist() == list(range(39))
    meta = read_metadata(result.path)
    assert meta['loop_ros.reward'] == 'unset' and meta['loop_ros.source'] == 'loop-ros bag convert'
    assert json.loads(meta['loop_ros.observation']) == list(odometry.DEFAULT_OBSERVATION)


def test_twist_stamped_uses_header_stamps(tmp_path: Path) -> None:
    src = write_recording(tmp_path / 'robot', stamped=True)
    data = convert_bags([src], tmp_path / 'out', ConvertConfig()).data
    assert grid_times(data)[0] == T0 + HEADER_OFFSET_NS + LATENCY_NS
    assert np.allclose(data.action[:, 1], [command(k)[1] for k in range(len(data))])
    forced = convert_bags([src], tmp_path / 'recv', ConvertConfig(time_source='receive')).data
    assert grid_times(forced)[0] == T0 + LATENCY_NS
    assert np.allclose(forced.obs, data.obs, atol=1e-5)


def test_gap_cuts_the_episode(tmp_path: Path) -> None:
    src = write_recording(tmp_path / 'robot', seconds=6.0, gap=(2.0, 3.0))
    result = convert_bags([src], tmp_path / 'out', ConvertConfig(max_gap_periods=3.0))
    data = result.data
    assert result.stats['gaps_cut'] == 1 and result.stats['episodes'] == 2
    first = data.episode == 0
    assert data.truncated[first][-1] and (data.stamp_ns[first] <= T0 + 2 * 10**9).all()
    second = data.stamp_ns[~first] - CMD_NS
    assert second[0] >= T0 + 3 * 10**9 and data.step[~first][0] == 0
    assert int((np.diff(data.stamp_ns) != CMD_NS).sum()) == 1   # only across the cut
    # bridging the 1 s gap instead (max_gap_periods above it): one episode
    bridged = convert_bags([src], tmp_path / 'bridged', ConvertConfig(max_gap_periods=20.0))
    assert bridged.stats['episodes'] == 1 and bridged.stats['gaps_cut'] == 0


def test_command_timeout_and_clipping(tmp_path: Path) -> None:
    src = write_recording(tmp_path / 'robot', command_stop=2.0, big_command_at=3)
    result = convert_bags([src], tmp_path / 'out', ConvertConfig(command_timeout_s=0.5))
    data = result.data
    mid = grid_times(data) + CMD_NS // 2
    last_cmd = T0 + 19 * CMD_NS + LATENCY_NS
    stale = mid - last_cmd > 0.5e9
    assert stale.sum() == result.stats['commands_timed_out'] > 0
    assert (data.action[stale] == 0).all()
    fresh = np.flatnonzero(~stale)
    assert data.action[3, 0] == 1.0 and result.stats['commands_clipped'] == 1   # 5 m/s > 1
    assert (data.action[fresh[fresh != 3], 0] == 0.5).all()
    held = convert_bags([src], tmp_path / 'held', ConvertConfig(command_timeout_s=0.0)).data
    assert (held.action[stale, 0] == 0.5).all()


def test_task_labels_rewards(tmp_path: Path) -> None:
    """The RC-car task brings its own observation mapping and reward, cost, termination."""
    import torch

    from loop_ros.core.tasks import get_task
    src = write_recording(tmp_path / 'robot', seconds=2.0)
    cfg = ConvertConfig(task='loop_ros/RCCarCircle-v0', action_low=(0.0, -0.5),
                        action_high=(10.0, 0.5))
    result = convert_bags([src], tmp_path / 'out', cfg)
    data = read_transitions(result.path, obs_dim=9, act_dim=2)
    task = get_task('loop_ros/RCCarCircle-v0')
    t = torch.as_tensor
    assert np.allclose(data.reward, task.reward(t(data.obs), t(data.action),
                                                t(data.next_obs)).numpy(), atol=1e-6)
    assert (data.reward != 0).all()
    assert read_metadata(result.path)['loop_ros.reward'] == 'task'
    assert json.loads(read_metadata(result.path)['loop_ros.observation']) == [
        'task:loop_ros/RCCarCircle-v0']


def test_joint_state_source(tmp_path: Path) -> None:
    src = write_recording(tmp_path / 'robot', joint_state=True, odom_topic='/joint_states')
    data = convert_bags([src], tmp_path / 'out', ConvertConfig(
        observation_topic='/joint_states', time_source='receive')).data
    expected = unicycle(grid_times(data))
    assert data.obs_dim == 4
    assert np.allclose(data.obs[:, :2], expected[:, :2], atol=1e-4)
    assert np.allclose(data.obs[:, 2:], 0.5)
    only = convert_bags([src], tmp_path / 'one', ConvertConfig(
        observation_topic='/joint_states', joints=('right',), time_source='receive')).data
    assert only.obs_dim == 2 and np.allclose(only.obs[:, 0], expected[:, 1], atol=1e-4)


def test_several_recordings_are_separate_streams(tmp_path: Path) -> None:
    a = write_recording(tmp_path / 'a', seconds=2.0)
    b = write_recording(tmp_path / 'b', seconds=2.0, storage='sqlite3')
    data = convert_bags([a, b], tmp_path / 'out', ConvertConfig()).data
    assert sorted(set(data.stream.tolist())) == [0, 1]
    assert data.episode.max() == 1


# --- bad inputs: one clear error, exit code 2, no output -----------------------------------------

def _cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str]:
    code = cli_main(['bag', *argv])
    return code, capsys.readouterr().err


def test_bad_inputs_exit_2_without_output(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = write_recording(tmp_path / 'robot', seconds=1.0)
    out = tmp_path / 'out'
    cases = [
        (['--observation-topic', '/imu'], r'no topic /imu in the bag; it has: /cmd_vel '
         r'\(geometry_msgs/msg/Twist, 10 messages\), /odom \(nav_msgs/msg/Odometry, 50 '
         r'messages\), /rosout_dummy \(std_msgs/msg/String, 0 messages\)'),
        (['--action-topic', '/odom'], 'topic /odom has type nav_msgs/msg/Odometry, expected '
         'geometry_msgs/msg/Twist or geometry_msgs/msg/TwistStamped'),
        (['--time-source', 'header'], "time_source 'header' needs stamped messages"),
        (['--action-fields', 'linear.x'], 'one low and one high per field'),
        (['--observation-fields', 'x', 'heading'], r"unknown observation field\(s\) "
         r"\['heading'\]"),
        (['--task', 'NoSuchTask-v0'], "unknown task 'NoSuchTask-v0'"),
        (['--task', 'HalfCheetah-v5'], 'has no reward function'),
        (['--rate', '0'], r'rate_hz must be in \[0.01'),
    ]
    import re
    for extra, pattern in cases:
        code, err = _cli(capsys, 'convert', str(src), '--out', str(out), *extra)
        assert code == 2, (extra, err)
        assert err.startswith('loop-ros: error: ') and re.search(pattern, err), (extra, err)
        assert 'Traceback' not in err and not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['robot']


def test_bad_bags_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / 'out'
    with Writer(tmp_path / 'empty', version=9, storage_plugin=bags.STORAGES['mcap']) as w:
        w.add_connection('/odom', 'nav_msgs/msg/Odometry', typestore=STORE)
    code, err = _cli(capsys, 'convert', str(tmp_path / 'empty'), '--out', str(out))
    assert code == 2 and 'the bag is empty' in err
    src = write_recording(tmp_path / 'robot', seconds=2.0)
    storage_file = src / 'robot.mcap'
    with open(storage_file, 'r+b') as f:
        f.truncate(storage_file.stat().st_size - 100)
    code, err = _cli(capsys, 'convert', str(src), '--out', str(out))
    assert code == 2 and str(storage_file) in err and 'Traceback' not in err
    code, err = _cli(capsys, 'info', str(src))
    assert code == 2 and str(storage_file) in err
    code, err = _cli(capsys, 'convert', str(tmp_path / 'nope'), '--out', str(out))
    assert code == 2 and 'no such bag' in err
    assert not out.exists()
    good = write_recording(tmp_path / 'good', seconds=1.0)
    out.mkdir()
    code, err = _cli(capsys, 'convert', str(good), '--out', str(out))
    assert code == 2 and 'exists already' in err


def test_info_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = write_recording(tmp_path / 'robot', seconds=1.0, storage='sqlite3')
    assert cli_main(['bag', 'info', str(src)]) == 0
    out = capsys.readouterr().out
    assert 'Storage id:        sqlite3' in out and 'Messages:          60' in out
    assert 'Topic: /odom         | Type: nav_msgs/msg/Odometry' in out
    assert cli_main(['bag', 'info', '--json', str(src)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {t['name']: t['count'] for t in info['topics']} == {
        '/cmd_vel': 10, '/odom': 50, '/rosout_dummy': 0}
    with pytest.raises(BagError):
        bags.bag_info(tmp_path)
