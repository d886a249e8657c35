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


@pytest.fixture(scope='module')
def colcon_ws(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, str]]:
    """``colcon build`` of the repo into a temporary workspace: (workspace, colcon, env)."""
    colcon = shutil.which('colcon', path=str(VENV_BIN))
    if colcon is None:
        pytest.skip('colcon is not installed (pip install colcon-common-extensions)')
    tmp_path = tmp_path_factory.mktemp('colcon_ws')
    before = {p.name for p in ROOT.iterdir()}
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'AMENT_PREFIX_PATH',
                                                            'CMAKE_PREFIX_PATH',
                                                            'PYTEST_ADDOPTS')}
    env.update(PATH=f'{VENV_BIN}{os.pathsep}{env.get("PATH", "")}',
               VIRTUAL_ENV=str(VENV_BIN.parent), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    out = subprocess.run(
        [colcon, '--log-base', str(tmp_path / 'log'), 'build', '--base-paths', str(ROOT),
         '--build-base', str(tmp_path / 'build'), '--install-base', str(tmp_path / 'install')],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert '1 package finished' in out.stdout
    created = {p.name for p in ROOT.iterdir()} - before
    assert not created & {'log', 'install', 'build'}, created
    return tmp_path, colcon, env


@pytest.mark.slow
def test_colcon_build(colcon_ws: tuple[Path, str, dict[str, str]]) -> None:
    """colcon builds the repo into a temporary workspace; the install imports and is complete."""
    tmp_path, _, env = colcon_ws

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

    # nothing written into the repo (the fixture checks log/, install/, build/)
    assert not [*ROOT.glob('*.egg-info'), *(ROOT / 'loop_ros').glob('**/*.egg-info')]


# --- dependencies ---------------------------------------------------------------------------

ROS_RUN_DEPENDS = {
    'rclpy', 'rcl_interfaces', 'ament_index_python', 'builtin_interfaces', 'std_msgs',
    'nav_msgs', 'geometry_msgs', 'std_srvs', 'diagnostic_msgs', 'visualization_msgs',
    'rosgraph_msgs', 'lifecycle_msgs', 'launch', 'launch_ros', 'rosidl_default_runtime',
}
"""ROS packages every install of loop_ros needs at run time (as package.xml keys)."""

PYTHON_IMPORT_KEYS = {
    'torch': 'python3-torch',            # ros/rosdistro#37485 (the distribution package)
    'numpy': 'python3-numpy',
    'yaml': 'python3-yaml',
    'transforms3d': 'python3-transforms3d',
    'matplotlib': 'python3-matplotlib',
    'PIL': 'python3-pil',
    'tqdm': 'python3-tqdm',
    'gymnasium': 'python3-gymnasium-pip',  # ros/rosdistro#37334 (PyPI only)
    'mujoco': 'python3-mujoco-pip',        # ros/rosdistro#46859 (PyPI only)
    'rosbags': 'python3-rosbags-pip',      # ros/rosdistro#37795 (PyPI only)
}
"""Top-level import -> the rosdep key that installs it (rosdistro's rosdep/python.yaml)."""


def _package():
    catkin_pkg = pytest.importorskip('catkin_pkg.package')
    return catkin_pkg.parse_package(str(ROOT))


def _depends(package) -> set[str]:
    return {d.name for d in package.exec_depends + package.build_depends
            + package.buildtool_depends}


def top_level_imports(root: Path) -> dict[str, set[str]]:
    """Absolute top-level imports of every module under ``root`` -> the files importing them."""
    import ast
    found: dict[str, set[str]] = {}
    for path in sorted(root.rglob('*.py')):
        rel = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                found.setdefault(name.split('.')[0], set()).add(rel)
    return found


def test_package_xml_lists_run_dependencies() -> None:
    package = _package()
    deps = _depends(package)
    assert ROS_RUN_DEPENDS <= deps, sorted(ROS_RUN_DEPENDS - deps)
    assert set(PYTHON_IMPORT_KEYS.values()) <= deps, sorted(set(PYTHON_IMPORT_KEYS.values())
                                                             - deps)
    tests = {d.name for d in package.test_depends}
    assert {'ament_cmake_pytest', 'python3-pytest'} <= tests
    for key in deps:   # rosdep keys: ROS package names or python3-* keys of python.yaml
        assert re.fullmatch(r'[a-z][a-z0-9_]*|python3-[a-z0-9.-]+', key), key


def undeclared_imports(root: Path, deps: set[str]) -> dict[str, list[str]]:
    """Non-stdlib top-level imports under ``root`` whose package.xml key is not in ``deps``."""
    undeclared = {}
    for module, files in top_level_imports(root).items():
        if module in sys.stdlib_module_names or module in ('loop_ros', '__future__'):
            continue
        key = PYTHON_IMPORT_KEYS.get(module, module)   # ROS packages import by their name
        if key not in deps:
            undeclared[module] = sorted(files)[:3]
    return undeclared


def test_python_imports_are_declared_dependencies() -> None:
    """Every non-stdlib module imported by loop_ros/ is a declared package or mapped to a key."""
    undeclared = undeclared_imports(ROOT / 'loop_ros', _depends(_package()))
    assert not undeclared, f'imports without a package.xml dependency: {undeclared}'


def test_import_check_catches_an_undeclared_module(tmp_path: Path) -> None:
    pkg = tmp_path / 'pkg'
    pkg.mkdir()
    (pkg / 'mod.py').write_text('import os\nimport scipy.linalg\nimport torch\n'
                                'from nav_msgs.msg import Path\nfrom . import sibling\n')
    assert set(top_level_imports(pkg)) == {'os', 'scipy', 'torch', 'nav_msgs'}
    assert set(undeclared_imports(pkg, {'nav_msgs', 'python3-torch'})) == {'scipy'}
    assert set(undeclared_imports(pkg, {'python3-torch'})) == {'scipy', 'nav_msgs'}


# --- colcon test ------------------------------------------------------------------------------

def test_colcon_test_registration() -> None:
    """BUILD_TESTING registers the pytest suite; the pip build turns it off."""
    text = (ROOT / 'CMakeLists.txt').read_text()
    block = re.search(r'if\(BUILD_TESTING\)(.*?)endif\(\)', text, re.S)
    assert block, 'no if(BUILD_TESTING) block in CMakeLists.txt'
    body = block.group(1)
    assert re.search(r'find_package\(ament_cmake_pytest REQUIRED\)', body)
    call = re.search(r'ament_add_pytest_test\((\w+)\s+(\S+)(.*?)\)\s*$', body, re.S | re.M)
    assert call and call.group(2) == 'test', body
    assert 'TIMEOUT' in call.group(3)   # the default (60 s) would kill the suite
    assert text.index('if(BUILD_TESTING)') < text.index('ament_package()')
    pyproject = tomllib.loads((ROOT / 'pyproject.toml').read_text())
    assert pyproject['tool']['scikit-build']['cmake']['define']['BUILD_TESTING'] == 'OFF'
    pins = (ROOT / 'requirements.txt').read_text()
    pin = re.search(r'^ros-ament-cmake-pytest==([\d.]+)', pins, re.M)
    assert pin, 'ros-ament-cmake-pytest is not pinned in requirements.txt'
    from importlib import metadata
    try:
        assert metadata.version('ros-ament-cmake-pytest') == pin.group(1)
    except metadata.PackageNotFoundError:
        pass   # a venv without the colcon extras: the pin is what counts


@pytest.mark.slow
def test_colcon_test_runs_the_pytest_suite(colcon_ws: tuple[Path, str, dict[str, str]]) -> None:
    """ctest holds the registered test; ``colcon test`` runs pytest on test/ (collection only).

    The whole suite would take too long here: ``PYTEST_ADDOPTS=--collect-only`` makes the
    registered command collect it, through colcon and ctest exactly as ``colcon test`` runs it,
    and the count must equal pytest's own collection of test/ from the source tree.
    """
    import json
    tmp_path, colcon, env = colcon_ws
    build = tmp_path / 'build' / 'loop_ros'
    listing = subprocess.run(['ctest', '--show-only=json-v1'], cwd=build, env=env,
                             capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0, listing.stderr
    tests = {t['name']: t['command'] for t in json.loads(listing.stdout)['tests']}
    assert set(tests) == {'loop_ros_pytest'}, tests
    command = tests['loop_ros_pytest']
    pytest_args = command[command.index('--command') + 1:]
    assert pytest_args[pytest_args.index('-m') + 1] == 'pytest'
    assert str(ROOT / 'test') in pytest_args

    out = subprocess.run(
        [colcon, '--log-base', str(tmp_path / 'log'), 'test', '--base-paths', str(ROOT),
         '--build-base', str(tmp_path / 'build'), '--install-base', str(tmp_path / 'install'),
         '--event-handlers', 'console_direct+'],
        cwd=tmp_path, env={**env, 'PYTEST_ADDOPTS': '--collect-only -q'},
        capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    collected = re.search(r'(\d+) tests? collected', out.stdout)
    assert collected and '1 package finished' in out.stdout, out.stdout[-4000:]
    assert '100% tests passed' in out.stdout
    assert (build / 'test_results' / 'loop_ros' / 'loop_ros_pytest.xunit.xml').is_file()

    here = subprocess.run([sys.executable, '-m', 'pytest', '--collect-only', '-q',
                           '-p', 'no:cacheprovider', str(ROOT / 'test')], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    mine = re.search(r'(\d+) tests? collected', here.stdout)
    assert mine, here.stdout[-2000:]
    assert int(collected.group(1)) == int(mine.group(1))
