"""launch/*.launch.py start exactly the nodes of :mod:`loop_ros.graph`, as the own launcher does.

``launch``/``launch_ros`` are not on PyPI, so the first tests run every launch file against
minimal recording stand-ins for the part of the launch API that ``launch/*.launch.py`` and
:mod:`loop_ros.ros.launch_description` use (``LaunchDescription``, ``DeclareLaunchArgument``,
``OpaqueFunction``, ``Shutdown``, ``LaunchConfiguration(...).perform(context)``,
``launch_ros.actions.Node``, ``get_package_share_directory``). The opaque function is executed
with a fake launch context holding the launch configurations, so the argument values travel the
same way as under ``ros2 launch``; each ``Node`` must carry exactly the graph's node spec for
those values (package, executable, name, namespace, params files then inline parameters,
remappings, log level, respawn, environment, shutdown on exit), and the own launcher must pass
the same to its processes. These tests never skip.

The last test runs the launch files with the real ``launch_ros`` where a ROS 2 install provides
it, and skips (saying so) only where ``launch_ros`` is not installed at all.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
import sys
import types
from typing import Any

import pytest

from loop_ros import graph
from loop_ros.launcher import command

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((ROOT / 'launch').glob('*.launch.py'))
DESCRIPTION_MODULE = 'loop_ros.ros.launch_description'

# Non-default values for every argument a graph may declare (the ones a graph lacks are unused).
OVERRIDES = {
    'namespace': 'fleet', 'use_sim_time': 'false', 'params_file': '/etc/loop/params.yaml',
    'env': None,   # the second choice where the argument has choices, else a gymnasium id
    'robots': '2', 'seed': '7', 'real_time_factor': '2.5', 'autostart': 'false',
    'checkpoint_dir': '/var/ckpt', 'checkpoint': '/var/ckpt/final.pt', 'mode': 'learn',
    'log_level': 'debug', 'discovery_range': 'subnet', 'respawn': 'true', 'nodes': 'all',
    'record': '/tmp/bag1', 'odom_topic': '/base/odom', 'cmd_topic': 'base/cmd_vel',
    'task': None, 'task_module': 'my_robot.tasks',
}


def _graph_name(path: Path) -> str:
    return path.name[:-len('.launch.py')]


def _arguments(case: str, description: graph.GraphDescription) -> dict[str, str]:
    """The launch configurations of ``case``: 'defaults' or 'overrides' (every argument set)."""
    given = description.defaults()
    if case == 'overrides':
        for arg in description.arguments:
            value = OVERRIDES[arg.name] if arg.name in OVERRIDES else None
            if value is None:
                value = arg.choices[1] if len(arg.choices) > 1 else arg.default
            given[arg.name] = value
    return given


# --- stand-ins for the launch API ---------------------------------------------------------------

class _LaunchDescription:
    def __init__(self, initial_entities=None) -> None:
        self.entities = list(initial_entities or [])


class _DeclareLaunchArgument:
    def __init__(self, name, *, default_value=None, description=None, choices=None) -> None:
        self.name, self.default_value = name, default_value
        self.description, self.choices = description, choices


class _OpaqueFunction:
    def __init__(self, *, function, args=None, kwargs=None) -> None:
        self.function, self.args, self.kwargs = function, list(args or []), dict(kwargs or {})

    def execute(self, context):
        """As launch's: ``function(context, *args, **kwargs)``, the actions it returns."""
        return self.function(context, *self.args, **self.kwargs)


class _Shutdown:
    def __init__(self, *, reason='reason not given') -> None:
        self.reason = reason


class _LaunchConfiguration:
    def __init__(self, variable_name, *, default=None) -> None:
        self.variable_name, self.default = variable_name, default

    def perform(self, context) -> str:
        configs = context.launch_configurations
        if self.variable_name not in configs:   # launch raises SubstitutionFailure here
            raise LookupError(f'launch configuration {self.variable_name!r} does not exist')
        return configs[self.variable_name]


NODE_KEYWORDS = {
    # launch_ros.actions.Node
    'package', 'executable', 'name', 'namespace', 'exec_name', 'parameters', 'remappings',
    'ros_arguments', 'arguments',
    # launch.actions.ExecuteProcess (the keywords a Node passes on)
    'respawn', 'respawn_delay', 'respawn_max_retries', 'output', 'additional_env', 'on_exit',
    'env', 'cwd', 'shell', 'emulate_tty', 'sigterm_timeout', 'sigkill_timeout', 'prefix',
    'log_cmd', 'cached_output',
}


class _Node:
    def __init__(self, **kwargs) -> None:   # keyword-only, as launch_ros.actions.Node
        unknown = set(kwargs) - NODE_KEYWORDS
        assert not unknown, f'launch_ros Node() takes no {sorted(unknown)}'
        self.kwargs = kwargs


def _stub_modules(share_dir: str) -> dict[str, types.ModuleType]:
    mods = {name: types.ModuleType(name) for name in (
        'launch', 'launch.actions', 'launch.substitutions', 'launch_ros', 'launch_ros.actions',
        'ament_index_python', 'ament_index_python.packages')}
    mods['launch'].LaunchDescription = _LaunchDescription
    mods['launch.actions'].DeclareLaunchArgument = _DeclareLaunchArgument
    mods['launch.actions'].OpaqueFunction = _OpaqueFunction
    mods['launch.actions'].Shutdown = _Shutdown
    mods['launch.substitutions'].LaunchConfiguration = _LaunchConfiguration
    mods['launch_ros.actions'].Node = _Node

    def get_package_share_directory(package: str) -> str:
        assert package == graph.PACKAGE, package
        return share_dir

    mods['ament_index_python.packages'].get_package_share_directory = get_package_share_directory
    for parent, child in (('launch', 'actions'), ('launch', 'substitutions'),
                          ('launch_ros', 'actions'), ('ament_index_python', 'packages')):
        setattr(mods[parent], child, mods[f'{parent}.{child}'])
    return mods


@pytest.fixture
def fresh_description_module():
    """Import loop_ros.ros.launch_description anew in the test and forget it afterwards.

    It binds the launch API at import; a copy bound to the stand-ins must not outlive the test.
    """
    import loop_ros.ros as ros_package
    saved = sys.modules.pop(DESCRIPTION_MODULE, None)
    saved_attr = ros_package.__dict__.pop('launch_description', None)
    yield
    sys.modules.pop(DESCRIPTION_MODULE, None)
    ros_package.__dict__.pop('launch_description', None)
    if saved is not None:
        sys.modules[DESCRIPTION_MODULE] = saved
    if saved_attr is not None:
        ros_package.launch_description = saved_attr


def _load_launch_file(path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(f'_launch_{_graph_name(path)}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- tests --------------------------------------------------------------------------------------

def test_one_launch_file_per_graph() -> None:
    assert sorted(_graph_name(p) for p in LAUNCH_FILES) == sorted(graph.GRAPHS)


@pytest.mark.parametrize('case', ['defaults', 'overrides'])
@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_nodes_are_the_graph_node_specs(path, case, monkeypatch,
                                                    fresh_description_module) -> None:
    share = str(ROOT)   # the source tree has the share layout (config/, launch/)
    for name, module in _stub_modules(share).items():
        monkeypatch.setitem(sys.modules, name, module)
    description = graph.get_graph(_graph_name(path))

    launch_description = _load_launch_file(path).generate_launch_description()
    assert isinstance(launch_description, _LaunchDescription)
    entities = launch_description.entities
    declared = [e for e in entities if isinstance(e, _DeclareLaunchArgument)]
    opaque = [e for e in entities if isinstance(e, _OpaqueFunction)]
    assert len(declared) + len(opaque) == len(entities) and len(opaque) == 1
    assert [(d.name, d.default_value, d.description, d.choices) for d in declared] == \
        [(a.name, a.default, a.description, list(a.choices) or None)
         for a in description.arguments]

    given = _arguments(case, description)
    context = types.SimpleNamespace(launch_configurations=dict(given))
    nodes = opaque[0].execute(context)
    specs = description.nodes(given, share)
    assert specs and len(nodes) == len(specs)
    for node, spec in zip(nodes, specs):
        kw = dict(node.kwargs)
        on_exit = kw.pop('on_exit')
        assert kw == {
            'package': spec.package, 'executable': spec.executable, 'name': spec.name,
            'namespace': spec.namespace,
            'parameters': [*spec.params_files, dict(spec.parameters)],
            'remappings': list(spec.remappings), 'ros_arguments': ['--log-level', spec.log_level],
            'respawn': spec.respawn, 'respawn_delay': spec.respawn_delay_s, 'output': 'screen',
            'additional_env': dict(spec.env)}, spec.label
        if spec.required:
            assert isinstance(on_exit, _Shutdown) and spec.label in on_exit.reason
        else:
            assert on_exit is None
        # the own launcher passes the same to its process
        argv = command(spec, inline_file='INLINE')
        assert argv[argv.index('--ros-args') + 1:] == [
            '-r', f'__node:={kw["name"]}', '-r', f'__ns:={kw["namespace"]}',
            *[a for f in [*kw['parameters'][:-1], 'INLINE'] for a in ('--params-file', f)],
            *[a for src, dst in kw['remappings'] for a in ('-r', f'{src}:={dst}')],
            *kw['ros_arguments']]

    # The launch configurations reached the nodes (not the defaults); names follow the graph.
    by_name = {s.fully_qualified_name: s for s in specs}
    files = {f for s in specs for f in s.params_files}
    if case == 'defaults':
        assert files == {str(ROOT / description.config_file)}
        assert (ROOT / description.config_file).is_file()
        assert all(s.env.get(graph.DISCOVERY_ENV) == 'LOCALHOST' for s in specs)
        assert not any(s.respawn for s in specs) and all(s.required for s in specs)
        assert all(s.namespace == '/' for s in specs)
    else:
        assert files == {'/etc/loop/params.yaml'}
        assert all(s.env.get(graph.DISCOVERY_ENV) == 'SUBNET' for s in specs)
        assert all(s.log_level == 'debug' for s in specs)
        assert all(s.namespace.startswith('/fleet') for s in specs)
        assert '/fleet/recorder' in by_name
        assert by_name['/fleet/recorder'].parameters['output'] == '/tmp/bag1'
        if 'robots' in given:   # two robots, one learner; respawn:=true restarts the workers
            assert sorted(by_name) == ['/fleet/learner', '/fleet/recorder',
                                       '/fleet/robot0/planner', '/fleet/robot0/sim_bridge',
                                       '/fleet/robot1/planner', '/fleet/robot1/sim_bridge']
            respawned = {n for n, s in by_name.items() if s.respawn}
            assert respawned == set(by_name) - {'/fleet/recorder'}
            assert all(not by_name[n].required for n in respawned)
            assert by_name['/fleet/robot1/sim_bridge'].parameters['seed'] == 8
        else:
            assert ('odom', '/base/odom') in by_name['/fleet/robot_adapter'].remappings


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_with_real_launch_ros(path, fresh_description_module) -> None:
    """The same launch file under the real launch_ros (a ROS 2 install; not on PyPI)."""
    # find_spec, not importorskip: a launch_ros that is installed but fails to import must
    # fail here, not skip. (Look for launch_ros, not launch: with the repo root on sys.path the
    # repo's launch/ directory would be found as a namespace package.)
    if importlib.util.find_spec('launch_ros') is None:
        pytest.skip('launch_ros is not installed (ROS 2 launch is not on PyPI; a ROS 2 install '
                    'provides it). The stand-in tests above check the launch files.')
    from ament_index_python.packages import get_package_share_directory
    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument
    from launch.actions import OpaqueFunction

    description = graph.get_graph(_graph_name(path))
    entities: list[Any] = _load_launch_file(path).generate_launch_description().entities
    declared = [e for e in entities if isinstance(e, DeclareLaunchArgument)]
    assert [d.name for d in declared] == [a.name for a in description.arguments]
    context = LaunchContext()
    given = _arguments('overrides', description)
    given['params_file'] = str(ROOT / description.config_file)   # launch_ros drops missing files
    context.launch_configurations.update(given)
    opaque = next(e for e in entities if isinstance(e, OpaqueFunction))
    nodes = opaque.execute(context)
    got = []
    for node in nodes:
        node._perform_substitutions(context)
        got.append((node.node_package, node.node_executable, node.node_name,
                    node.expanded_node_namespace, tuple(node.expanded_remapping_rules or ())))
    specs = description.nodes(given, get_package_share_directory(graph.PACKAGE))
    assert got == [(s.package, s.executable, s.fully_qualified_name, s.namespace, s.remappings)
                   for s in specs]
