"""The graph description, the launcher and the launch files start the same nodes.

Pure checks of the node specs and the launcher's commands, an in-process check that the exact
``--ros-args`` the launcher builds give each node the intended parameters, and a multi-process
run of two sim bridges through the launcher (fan-in, per-robot clocks, SIGINT -> exit code 0, no
orphans). The launch files are checked in ``test/test_launch_files.py``.
"""
from __future__ import annotations

import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from loop_ros import graph
from loop_ros import launcher

ROOT = Path(__file__).resolve().parents[2]
SHARE = str(ROOT)   # the source tree has the share layout (config/, launch/)


def by_fqn(specs: list[graph.NodeSpec]) -> dict[str, graph.NodeSpec]:
    return {s.fully_qualified_name: s for s in specs}


def test_rccar_two_robots() -> None:
    specs = by_fqn(graph.node_specs('rccar', {'robots': '2', 'namespace': 'loop', 'seed': '5',
                                               'real_time_factor': '2'}, SHARE))
    assert sorted(specs) == ['/loop/learner', '/loop/robot0/planner', '/loop/robot0/sim_bridge',
                             '/loop/robot1/planner', '/loop/robot1/sim_bridge']
    config = str(ROOT / 'config' / 'rccar.yaml')
    for s in specs.values():
        assert s.params_files == (config,) and s.required and not s.respawn
        assert s.parameters['use_sim_time'] is True
        assert s.parameters['env_id'] == 'loop_ros/RCCarCircle-v0'
        assert s.executable == f'{s.name}_node' and s.package == 'loop_ros'
        assert s.module == f'loop_ros.nodes.{s.name}_node' and s.log_level == 'info'
    for i in (0, 1):
        bridge, planner = specs[f'/loop/robot{i}/sim_bridge'], specs[f'/loop/robot{i}/planner']
        assert dict(bridge.remappings) == {'/clock': f'/loop/robot{i}/clock',
                                           'transition': '/loop/transition'}
        assert dict(planner.remappings) == {'/clock': f'/loop/robot{i}/clock',
                                            'policy_update': '/loop/policy_update',
                                            'policy_weights': '/loop/policy_weights'}
        assert bridge.parameters['seed'] == 5 + i and planner.parameters['train.seed'] == 5 + i
        assert bridge.parameters['real_time_factor'] == 2.0
        assert bridge.parameters['odom_frame_id'] == f'robot{i}/odom'
        assert planner.parameters['autostart'] is True
    learner = specs['/loop/learner']
    assert dict(learner.remappings) == {'/clock': '/loop/robot0/clock'}
    assert learner.parameters['train.seed'] == 5 and 'checkpoint_dir' not in learner.parameters


def test_single_robot_and_options() -> None:
    specs = by_fqn(graph.node_specs('mujoco', {'env': 'HalfCheetah-v5',
                                                'checkpoint_dir': '/tmp/ck',
                                                'use_sim_time': 'false', 'log_level': 'debug',
                                                'nodes': 'sim_bridge,learner'}, SHARE))
    assert sorted(specs) == ['/learner', '/sim_bridge']
    for s in specs.values():
        assert s.remappings == () and s.parameters['env_id'] == 'HalfCheetah-v5'
        assert s.parameters['use_sim_time'] is False and s.log_level == 'debug'
        assert s.params_files == (str(ROOT / 'config' / 'mujoco.yaml'),)
    assert specs['/learner'].parameters['checkpoint_dir'] == '/tmp/ck'
    custom = graph.node_specs('mujoco', {'params_file': '/x/p.yaml'}, SHARE)
    assert {s.params_files for s in custom} == {('/x/p.yaml',)}


@pytest.mark.parametrize('given, match', [
    ({'robots': '0'}, 'robots'), ({'robots': 'two'}, 'robots'), ({'robot': '2'}, 'no launch'),
    ({'use_sim_time': 'maybe'}, 'use_sim_time'), ({'namespace': '1bad'}, 'namespace'),
    ({'env': 'HalfCheetah-v5'}, 'one of'), ({'log_level': 'loud'}, 'log_level'),
    ({'nodes': 'planner,teacher'}, 'nodes'), ({'real_time_factor': '-1'}, 'real_time_factor'),
])
def test_bad_arguments(given: dict, match: str) -> None:
    with pytest.raises(graph.GraphError, match=match):
        graph.node_specs('rccar', given, SHARE)


def test_launcher_command_line(tmp_path: Path) -> None:
    spec = by_fqn(graph.node_specs('rccar', {'robots': '2', 'namespace': 'loop'}, SHARE))[
        '/loop/robot1/sim_bridge']
    inline = launcher.write_inline_params(spec, tmp_path)
    cmd = launcher.command(spec, inline)
    assert cmd[:4] == [sys.executable, '-m', 'loop_ros.nodes.sim_bridge_node', '--ros-args']
    text = ' '.join(cmd[4:])
    assert ('-r __node:=sim_bridge -r __ns:=/loop/robot1 --params-file '
            f'{ROOT}/config/rccar.yaml --params-file {inline}') in text
    assert '-r /clock:=/loop/robot1/clock -r transition:=/loop/transition' in text
    assert text.endswith('--log-level info')
    yaml = pytest.importorskip('yaml')
    assert yaml.safe_load(Path(inline).read_text()) == {
        '/loop/robot1/sim_bridge': {'ros__parameters': dict(spec.parameters)}}


def test_launcher_main(capsys, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))
    assert launcher.main(['rccar', 'robots:=2', '--print']) == 0
    out = capsys.readouterr().out
    assert len(re.findall(r'^\S+python\S* -m loop_ros\.nodes\.', out, re.M)) == 5
    assert 'ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST' in out

    assert launcher.main(['mujoco', '--help']) == 0
    out = capsys.readouterr().out
    for arg in graph.GRAPHS['mujoco'].arguments:
        assert f'{arg.name}:={arg.default!r}' in out and arg.description in out

    for argv, match in ((['rccar', 'robots:=0'], 'robots'), (['nope'], 'unknown graph'),
                        (['rccar', 'extra'], 'unexpected'), (['rccar', '--fast'], 'option'),
                        ([], 'no graph'), (['mujoco', 'params_file:=/no/such.yaml'],
                                           'not found')):
        assert launcher.main(argv) == 2
        assert match in capsys.readouterr().err


def test_child_env() -> None:
    env = launcher.child_env({'AMENT_PREFIX_PATH': '/opt/x', 'ROS_AUTOMATIC_DISCOVERY_RANGE':
                              'SUBNET'})
    assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    assert env['AMENT_PREFIX_PATH'].split(os.pathsep) == ['/opt/x', sys.prefix]
    assert env['PYTHONPATH'].split(os.pathsep)[0] == str(ROOT)
    assert launcher.find_share_dir() == str(ROOT)


def test_inline_parameters_win(tmp_path: Path) -> None:
    """The launcher's exact --ros-args give the node the graph's values over the file's."""
    rclpy = pytest.importorskip('rclpy')
    from rclpy.node import Node

    from loop_ros.core.node_config import SimBridgeConfig
    from loop_ros.ros.params import declare_config
    from loop_ros.ros.params import read_config

    spec = by_fqn(graph.node_specs('rccar', {'robots': '2', 'namespace': 'loop', 'seed': '7',
                                               'real_time_factor': '3.5'}, SHARE))[
        '/loop/robot1/sim_bridge']
    args = launcher.command(spec, launcher.write_inline_params(spec, tmp_path))[3:]
    ctx = rclpy.Context()
    rclpy.init(args=args, context=ctx)
    try:
        node = Node('unnamed', context=ctx)
        assert node.get_fully_qualified_name() == '/loop/robot1/sim_bridge'
        declare_config(node, SimBridgeConfig)
        cfg = read_config(node, SimBridgeConfig)
        assert (cfg.seed, cfg.real_time_factor, cfg.odom_frame_id) == (8, 3.5, 'robot1/odom')
        assert cfg.action_timeout_s == 0.3   # from config/rccar.yaml
        assert node.get_parameter('use_sim_time').value is True
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)


# --- multi-process: the launcher starts real node processes ------------------------------------

@pytest.mark.slow
def test_launcher_runs_two_bridges() -> None:
    rclpy = pytest.importorskip('rclpy')
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile
    from rclpy.qos import ReliabilityPolicy
    from rosgraph_msgs.msg import Clock

    from loop_ros.msg import Observation
    from loop_ros.msg import Transition
    from loop_ros.ros import qos

    ns = f'/lt{os.getpid()}'
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'MUJOCO_GL': os.environ.get('MUJOCO_GL', 'egl')}
    proc = subprocess.Popen(
        [sys.executable, '-m', 'loop_ros.launcher', 'mujoco', 'nodes:=sim_bridge', 'robots:=2',
         'env:=InvertedPendulum-v5', 'real_time_factor:=10', f'namespace:={ns}'],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        process_group=0)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, '')),
                              daemon=True)
    reader.start()

    def child_pids() -> list[int]:
        return [int(m.group(1)) for line in list(lines)
                for m in [re.search(r'\[launcher\] started \S+ \(pid (\d+)\)', line)] if m]

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = Node('probe', context=ctx)
    got: dict[str, list] = {'transition': [], 'clock0': [], 'clock1': [], 'clock': [],
                            'obs': []}
    best_effort = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
    node.create_subscription(Transition, f'{ns}/transition', got['transition'].append,
                             qos.TRANSITION)
    node.create_subscription(Observation, f'{ns}/robot1/observation', got['obs'].append,
                             best_effort)
    for key, topic in (('clock0', f'{ns}/robot0/clock'), ('clock1', f'{ns}/robot1/clock'),
                       ('clock', '/clock')):
        node.create_subscription(Clock, topic, got[key].append, best_effort)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    try:
        frames: set[str] = set()
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline and proc.poll() is None:
            executor.spin_once(timeout_sec=0.1)
            frames = {m.source for m in got['transition']}
            if (len(frames) == 2 and len(got['transition']) >= 20 and got['obs']
                    and got['clock0'] and got['clock1']):
                break
        output = ''.join(lines)
        assert proc.poll() is None, f'launcher exited early:\n{output}'
        assert frames == {f'{ns}/robot0/sim_bridge', f'{ns}/robot1/sim_bridge'}, output
        assert got['obs'] and got['clock0'] and got['clock1']
        assert not got['clock'], 'with robots > 1 no bridge may publish the global /clock'
        assert 'real_time_factor 10' in output   # the inline value beat the params file
        assert f'[{ns.lstrip("/")}/robot0/sim_bridge]' in output   # prefixed output
        pids = child_pids()
        assert len(pids) == 2

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, ''.join(lines)
        reader.join(timeout=5)
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        assert ''.join(lines).count('exited with code 0') == 2
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=ctx)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in child_pids():
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass



def _start_launcher(args: list[str]) -> tuple[subprocess.Popen, list[str], threading.Thread]:
    """``loop_ros.launcher mujoco nodes:=sim_bridge *args`` in its own process group; its output
    lines are collected by the returned reader thread."""
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'MUJOCO_GL': os.environ.get('MUJOCO_GL', 'egl')}
    proc = subprocess.Popen([sys.executable, '-m', 'loop_ros.launcher', 'mujoco',
                             'nodes:=sim_bridge', *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            process_group=0)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, '')),
                              daemon=True)
    reader.start()
    return proc, lines, reader


def _run_launcher(args: list[str], stop: signal.Signals | None = None,
                  wait_for: str = 'episode 0:') -> tuple[int, str]:
    """Run the launcher; optionally send ``stop`` once ``wait_for`` shows up in its output."""
    proc, lines, reader = _start_launcher(args)
    try:
        if stop is not None:
            deadline = time.monotonic() + 60.0
            while wait_for not in ''.join(lines) and proc.poll() is None:
                assert time.monotonic() < deadline, ''.join(lines)
                time.sleep(0.05)
            proc.send_signal(stop)
        code = proc.wait(timeout=60)
        reader.join(timeout=5)
        return code, ''.join(lines)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for line in lines:
            m = re.search(r'\[launcher\] started \S+ \(pid (\d+)\)', line)
            if m:
                try:
                    os.killpg(int(m.group(1)), signal.SIGKILL)
                except ProcessLookupError:
                    pass


@pytest.mark.slow
def test_launcher_shutdown_paths(tmp_path: Path) -> None:
    """SIGTERM -> clean exit 0; a required node exiting stops the rest; failures propagate."""
    pytest.importorskip('rclpy')
    ns = f'/ls{os.getpid()}'
    code, out = _run_launcher([f'namespace:={ns}', 'real_time_factor:=10'], signal.SIGTERM)
    assert code == 0 and 'exited with code 0' in out, out

    # robot0 stops after one episode (max_episodes); the launcher then stops robot1
    params = tmp_path / 'params.yaml'
    params.write_text(f'{ns}/robot0/sim_bridge:\n  ros__parameters:\n    max_episodes: 1\n')
    code, out = _run_launcher([f'namespace:={ns}', 'robots:=2', 'real_time_factor:=0',
                               f'params_file:={params}'])
    assert code == 0, out
    assert f'required node {ns.lstrip("/")}/robot0/sim_bridge exited: shutting down' in out
    assert out.count('exited with code 0') == 2

    # a node failing at start-up: its exit code becomes the launcher's
    code, out = _run_launcher([f'namespace:={ns}', 'env:=NoSuchEnv-v0'])
    assert code == 1 and 'NoSuchEnv-v0' in out, out


def test_checkpoint_argument_reaches_only_the_planners() -> None:
    specs = by_fqn(graph.node_specs('rccar', {'robots': '2', 'checkpoint': '/x/final.pt'},
                                    SHARE))
    for fqn, spec in specs.items():
        assert (spec.parameters.get('checkpoint') == '/x/final.pt') == fqn.endswith('planner')
    assert all('checkpoint' not in s.parameters
               for s in graph.node_specs('rccar', {}, SHARE))


@pytest.mark.parametrize('given, awaited', [
    ({}, True), ({'mode': 'deploy'}, False), ({'mode': 'deploy', 'record': '/x/bag'}, True),
    ({'nodes': 'sim_bridge'}, True)])   # a learner elsewhere (another machine) is awaited
def test_a_deployed_bridge_does_not_wait_for_a_learner(given: dict, awaited: bool) -> None:
    """mode:=deploy starts no learner: the bridge waits for the planner alone, unless a
    recorder (record:=) will subscribe to the transitions."""
    for graph_name in ('rccar', 'mujoco'):
        bridges = [s for s in graph.node_specs(graph_name, given, SHARE)
                   if s.name == 'sim_bridge']
        assert bridges and all(s.parameters['wait_for_transition_subscriber'] is awaited
                               for s in bridges)


def test_algo_argument_reaches_planner_and_learner() -> None:
    """``algo:=safe-loop`` sets train.algo of every planner and the learner (they must agree),
    in the sim graphs and the robot graph; '' leaves the params file's; a typo is refused."""
    for name, args in (('rccar', {'robots': '2'}), ('mujoco', {}), ('robot', {})):
        specs = graph.node_specs(name, {**args, 'algo': 'safe-loop'}, SHARE)
        planners_and_learner = [s for s in specs if s.name in ('planner', 'learner')]
        assert len(planners_and_learner) == (3 if name == 'rccar' else 2)
        assert all(s.parameters['train.algo'] == 'safe-loop' for s in planners_and_learner)
        assert all('train.algo' not in s.parameters for s in specs
                   if s.name not in ('planner', 'learner'))
        assert all('train.algo' not in s.parameters
                   for s in graph.node_specs(name, args, SHARE))
    with pytest.raises(graph.GraphError, match="algo:='safe_loop'"):
        graph.node_specs('rccar', {'algo': 'safe_loop'}, SHARE)


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        status = Path(f'/proc/{pid}/status').read_text()
    except OSError:
        return False
    return not re.search(r'^State:\s+Z', status, re.M)


def test_nodes_stop_when_the_launcher_is_killed() -> None:
    """SIGKILL to the launcher (or a script around it ended by ``timeout``): its nodes, in their
    own process groups, notice the launcher is gone and stop instead of running on (a stray
    sim bridge publishes /clock to the next graph on the machine)."""
    pytest.importorskip('rclpy')
    proc, lines, _ = _start_launcher([f'namespace:=/kill{os.getpid()}', 'real_time_factor:=10'])
    child = None
    try:
        deadline = time.monotonic() + 60.0
        while 'episode 0:' not in ''.join(lines):
            assert proc.poll() is None and time.monotonic() < deadline, ''.join(lines)
            time.sleep(0.05)
        child = int(re.search(r'\[launcher\] started \S+ \(pid (\d+)\)', ''.join(lines)).group(1))
        proc.kill()
        proc.wait(timeout=10)
        deadline = time.monotonic() + 20.0
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(child), 'the sim bridge outlived its launcher by 20 s'
    finally:
        if proc.poll() is None:
            proc.kill()
        if child is not None and _alive(child):
            os.killpg(child, signal.SIGKILL)
