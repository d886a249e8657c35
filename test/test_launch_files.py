"""launch/*.launch.py and the own launcher start the same nodes, with stand-ins for ``launch``.

``launch``/``launch_ros`` are not on PyPI, so ``test/ros/test_graph.py`` runs the real launch
files only where a ROS 2 install provides them. This test runs everywhere: it loads each launch
file with minimal recording stand-ins for the launch API and checks that the Node actions it
builds carry exactly the names, namespaces, executables, parameter files, inline parameters and
remappings the own launcher passes on its command lines.
"""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

from loop_ros import graph
from loop_ros.launcher import command

ROOT = Path(__file__).resolve().parents[1]


class _Recorder:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration:
    def __init__(self, name):
        self.name = name

    def perform(self, context):
        return context[self.name]


class _OpaqueFunction:
    def __init__(self, function, args=()):
        self.function, self.args = function, list(args)


class _DeclareLaunchArgument:
    def __init__(self, name, default_value=None, description=None, choices=None):
        self.name, self.default_value, self.description = name, default_value, description


def _stub_modules(share_dir: str) -> dict[str, types.ModuleType]:
    mods = {}
    for name in ('launch', 'launch.actions', 'launch.substitutions', 'launch_ros',
                 'launch_ros.actions', 'ament_index_python', 'ament_index_python.packages'):
        mods[name] = types.ModuleType(name)
    mods['launch'].LaunchDescription = lambda entities: list(entities)
    mods['launch.actions'].DeclareLaunchArgument = _DeclareLaunchArgument
    mods['launch.actions'].OpaqueFunction = _OpaqueFunction
    mods['launch.actions'].Shutdown = _Recorder
    mods['launch.substitutions'].LaunchConfiguration = _LaunchConfiguration
    mods['launch_ros.actions'].Node = _Recorder
    mods['ament_index_python.packages'].get_package_share_directory = lambda pkg: share_dir
    return mods


@pytest.mark.parametrize('graph_name', sorted(graph.GRAPHS))
def test_launch_file_and_launcher_start_the_same_nodes(graph_name, monkeypatch, tmp_path):
    share = str(ROOT)
    for name, module in _stub_modules(share).items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.delitem(sys.modules, 'loop_ros.ros.launch_description', raising=False)
    spec = importlib.util.spec_from_file_location(f'_{graph_name}_launch',
                                                  ROOT / 'launch' / f'{graph_name}.launch.py')
    launch_file = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launch_file)

    entities = launch_file.generate_launch_description()
    description = graph.get_graph(graph_name)
    declared = [e for e in entities if isinstance(e, _DeclareLaunchArgument)]
    assert [(d.name, d.default_value) for d in declared] == \
        [(a.name, a.default) for a in description.arguments]

    given = {**description.defaults(), 'robots': '2', 'namespace': 'fleet', 'seed': '7'}
    opaque = next(e for e in entities if isinstance(e, _OpaqueFunction))
    nodes = opaque.function(given, *opaque.args)
    specs = description.nodes(given, share)
    assert len(nodes) == len(specs) == 5  # one learner, two bridges, two planners
    for node, node_spec in zip(nodes, specs):
        kw = node.kwargs
        argv = command(node_spec, inline_file='INLINE')
        assert (kw['executable'], kw['name'], kw['namespace']) == \
            (node_spec.executable, node_spec.name, node_spec.namespace)
        assert f'__node:={node_spec.name}' in argv and f'__ns:={node_spec.namespace}' in argv
        files, inline = kw['parameters'][:-1], kw['parameters'][-1]
        assert [argv[i + 1] for i, a in enumerate(argv) if a == '--params-file'] == \
            [*files, 'INLINE']
        assert inline == dict(node_spec.parameters)
        for src, dst in kw['remappings']:
            assert f'{src}:={dst}' in argv
        assert ('on_exit' in kw) and (kw['on_exit'] is not None) == node_spec.required
