"""Packaging: package.xml, executables, and a colcon build into a temporary workspace."""
from __future__ import annotations

import os
from pathlib import Path
import re
import shutil
import subprocess
import sys
import tomllib
import warnings

import pytest

from loop_ros import graph

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PYVER = f'python{sys.version_info.major}.{sys.version_info.minor}'


def cmake_executables() -> dict[str, str]:
    """``LOOP_ROS_EXECUTABLES`` of CMakeLists.txt as ``{exe: 'module:function'}``."""
    text = (ROOT / 'CMakeLists.txt').read_text()
    block = re.search(r'set\(LOOP_ROS_EXECUTABLES\s+(.*?)\)', text, re.S)
    assert block, 'LOOP_ROS_EXECUTABLES not found in CMakeLists.txt'
    entries = re.findall(r'"([^"]+)"', block.group(1))
    return {e.split(':', 1)[0]: e.split(':', 1)[1] for e in entries}


def test_package_xml_valid() -> None:
    catkin_pkg = pytest.importorskip('catkin_pkg.package')
    found: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        package = catkin_pkg.parse_package(str(ROOT), warnings=found)
        package.validate(warnings=found)
    assert not found and not [str(w.message) for w in caught]
    assert package.name == 'loop_ros' and package.get_build_type() == 'ament_cmake'
    assert 'rosidl_interface_packages' in [g.name for g in package.member_of_groups]
    version = tomllib.loads((ROOT / 'pyproject.toml').read_text())
    assert version['tool']['scikit-build']['metadata']['version']['input'] == 'package.xml'
    deps = {d.name for d in package.exec_depends + package.build_depends
            + package.buildtool_depends}
    assert {'rclpy', 'std_msgs', 'nav_msgs', 'rosgraph_msgs', 'launch', 'launch_ros'} <= deps


def test_executables_match_project_scripts() -> None:
    scripts = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']['scripts']
    assert cmake_executables() == scripts
    for exe, module in graph.EXECUTABLES.items():   # the graph runs what the package installs
        assert scripts[exe] == f'{module}:main'
    assert (ROOT / 'scripts' / 'executable.in').is_file()


def test_messages_listed() -> None:
    text = (ROOT / 'CMakeLists.txt').read_text()
    listed = set(re.findall(r'"(msg/\w+\.msg)"', text))
    assert listed == {f'msg/{p.name}' for p in (ROOT / 'msg').glob('*.msg')}


@pytest.mark.slow
def test_colcon_build(tmp_path: Path) -> None:
    """colcon builds the repo into a temporary workspace; the install imports and is complete."""
    colcon = shutil.which('colcon', path=str(VENV_BIN))
    if colcon is None:
        pytest.skip('colcon is not installed (pip install colcon-common-extensions)')
    before = {p.name for p in ROOT.iterdir()}
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'AMENT_PREFIX_PATH',
                                                            'CMAKE_PREFIX_PATH')}
    env.update(PATH=f'{VENV_BIN}{os.pathsep}{env.get("PATH", "")}',
               VIRTUAL_ENV=str(VENV_BIN.parent), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    out = subprocess.run(
        [colcon, '--log-base', str(tmp_path / 'log'), 'build', '--base-paths', str(ROOT),
         '--build-base', str(tmp_path / 'build'), '--install-base', str(tmp_path / 'install')],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert '1 package finished' in out.stdout

    prefix = tmp_path / 'install' / 'loop_ros'
    share = prefix / 'share' / 'loop_ros'
    site = prefix / 'lib' / PYVER / 'site-packages'
    for rel in ('package.xml', 'launch/rccar.launch.py', 'launch/mujoco.launch.py',
                'config/rccar.yaml', 'config/mujoco.yaml', 'msg/Transition.msg',
                'msg/Observation.msg', 'msg/Action.msg'):
        assert (share / rel).is_file(), rel
    for exe in cmake_executables():
        path = prefix / 'lib' / 'loop_ros' / exe
        assert path.is_file() and os.access(path, os.X_OK), exe
        assert path.read_text().startswith(f'#!{VENV_BIN}'), exe
    for rel in ('loop_ros/__init__.py', 'loop_ros/msg/__init__.py', 'loop_ros/graph.py',
                'loop_ros/launcher.py', 'loop_ros/nodes/sim_bridge_node.py',
                'loop_ros/ros/params.py', 'loop_ros/core/node_config.py'):
        assert (site / rel).is_file(), rel
    assert (prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'loop_ros').exists()

    code = ('import loop_ros, loop_ros.msg\n'
            'from loop_ros.msg import Observation, Transition\n'
            'from rclpy.serialization import serialize_message\n'
            'from ament_index_python.packages import get_package_share_directory\n'
            'assert serialize_message(Observation(data=[1.0, 2.0]))\n'
            'assert serialize_message(Transition(obs=[1.0]))\n'
            'print(loop_ros.msg.__file__)\n'
            'print(loop_ros.__version__)\n'
            "print(get_package_share_directory('loop_ros'))\n")
    run_env = {**env, 'PYTHONPATH': str(site), 'AMENT_PREFIX_PATH': str(prefix),
               'LD_LIBRARY_PATH': os.pathsep.join(
                   filter(None, [str(prefix / 'lib'), env.get('LD_LIBRARY_PATH')]))}
    res = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, env=run_env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    msg_file, version, share_dir = res.stdout.split()
    assert msg_file.startswith(str(site)) and version == '0.1.0'
    assert share_dir == str(share)

    # nothing written into the repo
    created = {p.name for p in ROOT.iterdir()} - before
    assert not created & {'log', 'install', 'build'}, created
    assert not [*ROOT.glob('*.egg-info'), *(ROOT / 'loop_ros').glob('**/*.egg-info')]
