"""Dependency rules: ROS-free layers import no ROS; ``loop_ros/core`` imports only torch, numpy.

The layers are derived from the package: every module under ``loop_ros/`` is either ROS-side
(``ROS_SIDE``: the nodes, ``loop_ros/ros`` and the front ends that start them) or ROS-free, so a
new module is checked without being listed, and a listed path that does not exist fails the
test. Each ROS-free module is parsed with ``ast``; any import (top level or inside a function,
absolute or relative, or a constant ``importlib.import_module``/``__import__`` call) of rclpy, a
message package, launch, ament_index_python, rosidl or the ROS-side parts of loop_ros fails.
``loop_ros/core`` may import only the standard library, torch, numpy and itself (README).
"""
from __future__ import annotations

import ast
from pathlib import Path
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'loop_ros'
ROS_SIDE = ('loop_ros/nodes', 'loop_ros/ros', 'loop_ros/launcher.py', 'loop_ros/cli.py',
            'loop_ros/bag_cli.py', 'loop_ros/demo.py',
            'loop_ros/examples/fake_base.py')   # a stand-in base driver node
"""The ROS side (directories or modules): the nodes and what starts them; the rest of loop_ros is
ROS-free and must not import these either."""
MUST_BE_ROS_FREE = ('loop_ros/core', 'loop_ros/sim', 'loop_ros/io', 'loop_ros/offline',
                    'loop_ros/graph.py', 'loop_ros/train.py', 'loop_ros/envs.py')
"""Layers the README and the docs promise to run without ROS (they must exist)."""
CORE_ALLOWED = ('torch', 'numpy', 'loop_ros.core')
FORBIDDEN_EXACT = ('launch', 'launch_ros', 'launch_testing', 'ament_index_python',
                   'loop_ros.msg',
                   *(entry.removesuffix('.py').replace('/', '.') for entry in ROS_SIDE))
FORBIDDEN_PREFIX = ('rcl', 'rosidl')   # rclpy, rcl_interfaces, rclpy.*, rosidl_*
FORBIDDEN_SUFFIX = ('_msgs', '_interfaces')   # std_msgs, nav_msgs, builtin_interfaces, ...


def is_forbidden(module: str) -> bool:
    """True when importing ``module`` would pull ROS into a ROS-free layer."""
    top = module.split('.')[0]
    if any(module == f or module.startswith(f + '.') for f in FORBIDDEN_EXACT):
        return True
    return top.startswith(FORBIDDEN_PREFIX) or top.endswith(FORBIDDEN_SUFFIX)


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix('')
    parts = list(rel.parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """``(line, absolute module)`` of every import in ``source`` (module ``module``)."""
    package = module if is_package else module.rpartition('.')[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - (node.level - 1)]
                target = '.'.join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ''
            found.append((node.lineno, target))
            found += [(node.lineno, f'{target}.{alias.name}') for alias in node.names]
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, 'id', '')
            if name in ('import_module', '__import__'):
                found.append((node.lineno, node.args[0].value))
    return found


def package_modules() -> list[Path]:
    """Every Python module of the package, from the source tree."""
    return sorted(p for p in PACKAGE.rglob('*.py') if '__pycache__' not in p.parts)


def _under(path: Path, entries: tuple[str, ...]) -> bool:
    rel = path.relative_to(ROOT).as_posix()
    return any(rel == e or rel.startswith(e + '/') for e in entries)


def layer_modules() -> list[Path]:
    """The ROS-free modules: all of the package but ``ROS_SIDE``."""
    return [p for p in package_modules() if not _under(p, ROS_SIDE)]


def test_listed_layers_exist_and_cover_modules() -> None:
    missing = [e for e in (*ROS_SIDE, *MUST_BE_ROS_FREE) if not (ROOT / e).exists()]
    assert not missing, f'listed in test_layering.py but not in the repository: {missing}'
    modules = layer_modules()
    names = {module_name(p) for p in modules}
    for entry in MUST_BE_ROS_FREE:   # each promised layer is checked, with every module in it
        in_entry = [p for p in package_modules() if _under(p, (entry,))]
        assert in_entry and all(p in modules for p in in_entry), entry
    assert {'loop_ros.graph', 'loop_ros.core.config', 'loop_ros.core.node_config',
            'loop_ros.core.arc', 'loop_ros.sim.rc_car'} <= names
    assert not names & {'loop_ros.ros.qos', 'loop_ros.nodes.planner_node', 'loop_ros.launcher'}


@pytest.mark.parametrize('path', layer_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_ros_imports(path: Path) -> None:
    bad = [f'{path.relative_to(ROOT)}:{line}: imports {mod}'
           for line, mod in imported_modules(path.read_text(), module_name(path),
                                             path.name == '__init__.py')
           if is_forbidden(mod)]
    assert not bad, 'ROS-free layer imports ROS:\n' + '\n'.join(bad)


@pytest.mark.parametrize('path', sorted((PACKAGE / 'core').rglob('*.py')),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_core_imports_only_torch_and_numpy(path: Path) -> None:
    bad = [f'{path.relative_to(ROOT)}:{line}: imports {mod}'
           for line, mod in imported_modules(path.read_text(), module_name(path),
                                             path.name == '__init__.py')
           if mod and mod.split('.')[0] not in sys.stdlib_module_names
           and not any(mod == a or mod.startswith(a + '.') for a in CORE_ALLOWED)]
    assert not bad, 'loop_ros/core imports more than the standard library, torch and numpy:\n' \
        + '\n'.join(bad)


def test_checker_catches_violations() -> None:
    src = ('import rclpy\nfrom std_msgs.msg import Float32\nfrom ..msg import Transition\n'
           'from .. import ros\nimport importlib\nimportlib.import_module("launch_ros")\n'
           'def f():\n    from builtin_interfaces.msg import Time\n'
           'import numpy\nfrom loop_ros.core import config\n')
    mods = [m for _, m in imported_modules(src, 'loop_ros.core.x')]
    flagged = sorted({m for m in mods if is_forbidden(m)})
    assert flagged == ['builtin_interfaces.msg', 'builtin_interfaces.msg.Time', 'launch_ros',
                       'loop_ros.msg', 'loop_ros.msg.Transition', 'loop_ros.ros', 'rclpy',
                       'std_msgs.msg', 'std_msgs.msg.Float32']
    assert not is_forbidden('numpy') and not is_forbidden('loop_ros.core.config')


def test_imports_without_ros() -> None:
    """graph.py and the config modules import in an interpreter where ROS cannot be imported."""
    code = ('import sys\n'
            'for m in ("rclpy", "launch", "launch_ros", "ament_index_python", "std_msgs",\n'
            '          "rosidl_runtime_py", "builtin_interfaces", "loop_ros.msg"):\n'
            '    sys.modules[m] = None\n'
            'import loop_ros.graph, loop_ros.core.config, loop_ros.core.node_config\n'
            'print("ok")\n')
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and 'ok' in out.stdout, out.stderr
