"""config/*.yaml and docs/ros.md agree with the config dataclasses (PyYAML only, no ROS).

Each node section of each params file (``/**/<node>: ros__parameters:``) must hold exactly the
parameters its node declares (``NODE_PARAMETERS``: node config + ``LoopConfig`` groups), except
those a task preset sets (``Task.hyperparameters``), which it may leave to the env, with
YAML types that rcl parses into the declared ROS type (``1.0`` not ``1`` for a float), and values
that pass the dataclasses' checks. The generated tables in ``docs/ros.md`` must be current:
regenerate them with ``python test/test_config_consistency.py``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
import re
import sys
from typing import Any, Iterator

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # when run as a script to regenerate the docs
    sys.path.insert(0, str(ROOT))

from loop_ros import graph  # noqa: E402
from loop_ros.core.config import ConfigError  # noqa: E402
from loop_ros.core.config import from_dict  # noqa: E402
from loop_ros.core.node_config import LOOP_GROUPS  # noqa: E402
from loop_ros.core.node_config import NODE_PARAMETERS  # noqa: E402
from loop_ros.core.tasks import get_task  # noqa: E402
from loop_ros.core.tasks import registered_tasks  # noqa: E402

CONFIG_FILES = sorted((ROOT / 'config').glob('*.yaml'))
SHARED_KEYS = {'use_sim_time'}
"""Keys allowed in the ``/**`` section (shared by every node)."""
DOCS = ROOT / 'docs' / 'ros.md'
PRESET_KEYS = {key for env in registered_tasks() for key in get_task(env).hyperparameters}
"""Parameters a params file may leave out so that the env's task preset applies."""


def leaves(cfg_type: type, prefix: str = '') -> Iterator[tuple[str, dataclasses.Field]]:
    for f in dataclasses.fields(cfg_type):
        name = f'{prefix}.{f.name}' if prefix else f.name
        factory = f.default_factory
        if isinstance(factory, type) and dataclasses.is_dataclass(factory):
            yield from leaves(factory, name)
        else:
            yield name, f


def flatten(data: dict[str, Any], prefix: str = '') -> dict[str, Any]:
    """Nested YAML mappings -> dotted parameter names, as rcl's parser does."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f'{prefix}.{key}' if prefix else str(key)
        if isinstance(value, dict):
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


EMPTY_TUPLE_ITEMS = {'tuple[str,...]': str, 'tuple[float,...]': float, 'tuple[int,...]': int,
                     'tuple[bool,...]': bool}
"""Item type of a field whose default is the empty tuple, by its annotation (no spaces)."""


def item_example(f: dataclasses.Field) -> Any:
    """A value of the field's array item type (its annotation when the default is empty)."""
    if f.default:
        return f.default[0]
    return EMPTY_TUPLE_ITEMS.get(str(f.type).replace(' ', ''), str)()


def yaml_type_ok(default: Any, value: Any, f: dataclasses.Field | None = None) -> bool:
    """Would rcl give ``value`` the ROS type declared from ``default`` (field ``f``)?"""
    if isinstance(default, tuple) and not default and f is not None and value:
        return isinstance(value, list) and all(yaml_type_ok(item_example(f), v) for v in value)
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, float)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, tuple) and not default:   # tuple[str, ...] = (): a list of strings
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if isinstance(default, tuple):
        return (isinstance(value, list) and len(value) > 0
                and all(yaml_type_ok(default[0], v) for v in value))
    return False


def node_sections(path: Path) -> dict[str, dict[str, Any]]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f'{path.name}: not a mapping'
    sections: dict[str, dict[str, Any]] = {}
    for key, body in data.items():
        assert isinstance(body, dict) and set(body) == {'ros__parameters'}, \
            f'{path.name}: section {key!r} must hold exactly ros__parameters'
        sections[key] = flatten(body['ros__parameters'] or {})
    return sections


def node_name(key: str) -> str:
    return key.removeprefix('/**/').lstrip('/')


def graph_nodes(path: Path) -> set[str]:
    """The nodes the graphs using ``path`` can start (all of them, recorder included)."""
    names: set[str] = set()
    for g in graph.GRAPHS.values():
        if Path(g.config_file).name == path.name:
            names |= {s.name for s in g.nodes({'record': 'bag'}, str(ROOT))}
    return names


def test_config_files_exist() -> None:
    names = {p.name for p in CONFIG_FILES}
    for g in graph.GRAPHS.values():
        assert Path(g.config_file).name in names


@pytest.mark.parametrize('path', CONFIG_FILES, ids=lambda p: p.name)
def test_sections_match_dataclasses(path: Path) -> None:
    sections = node_sections(path)
    shared = sections.pop('/**', {})
    assert set(shared) <= SHARED_KEYS, f'{path.name}: /** may only hold {SHARED_KEYS}'
    for key in sections:
        assert key.startswith('/**/'), (f'{path.name}: use /**/{node_name(key)} so the section '
                                        'applies in any namespace (robot0, robot1, ...)')
    by_node = {node_name(k): v for k, v in sections.items()}
    assert set(by_node) <= set(NODE_PARAMETERS), f'{path.name}: sections {sorted(by_node)}'
    assert graph_nodes(path) <= set(by_node), (f'{path.name}: sections {sorted(by_node)} miss '
                                               f'nodes of its graph {sorted(graph_nodes(path))}')
    for node, values in by_node.items():
        groups = NODE_PARAMETERS[node]
        expected = {name: f for prefix, t in groups.items() for name, f in leaves(t, prefix)}
        missing = sorted(set(expected) - set(values) - PRESET_KEYS)
        extra = sorted(set(values) - set(expected))
        assert not missing and not extra, (f'{path.name} [{node}]: missing {missing}, '
                                           f'unknown {extra}')
        for name, value in values.items():
            assert yaml_type_ok(expected[name].default, value, expected[name]), (
                f'{path.name} [{node}] {name}: {value!r} has the wrong YAML type for a '
                f'{type(expected[name].default).__name__} parameter')
        for prefix, t in groups.items():
            sub = {n.removeprefix(f'{prefix}.') if prefix else n: v for n, v in values.items()
                   if (n.startswith(f'{prefix}.') if prefix else '.' not in n)}
            try:
                from_dict(t, sub, where=f'{path.name}[{node}]{"." + prefix if prefix else ""}')
            except ConfigError as exc:
                pytest.fail(str(exc))


@pytest.mark.parametrize('path', CONFIG_FILES, ids=lambda p: p.name)
def test_planner_and_learner_agree(path: Path) -> None:
    """Both build the same networks from the same env and share the checkpoint directory."""
    by_node = {node_name(k): v for k, v in node_sections(path).items()}
    planner, learner = by_node['planner'], by_node['learner']
    for name in planner:
        if name.split('.')[0] in ('sac', 'ensemble') or name in ('env_id', 'checkpoint_dir'):
            assert planner[name] == learner.get(name), f'{path.name}: {name} differs'
    for producer in ('sim_bridge', 'robot_adapter'):   # the robot the planner acts for
        if producer in by_node:
            assert by_node[producer]['env_id'] == planner['env_id'], f'{path.name}: env_id'
            if 'task_module' in by_node[producer]:
                assert by_node[producer]['task_module'] == planner['task_module']
    if 'sim_bridge' in by_node:   # the simulator counts violations of what the planner avoids
        for name in planner:
            if name.startswith('constraints.'):
                assert by_node['sim_bridge'][name] == planner[name], f'{path.name}: {name}'


# --- docs/ros.md generated tables -------------------------------------------------------------

def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (tuple, list)):
        return '[' + ', '.join(_fmt(v) for v in value) + ']'
    if isinstance(value, str):
        return f"'{value}'"
    return repr(value)


def _md(text: str) -> str:
    """Escape text for a markdown table cell."""
    return text.replace('|', '\\|').replace('<', '&lt;').replace('>', '&gt;')


def _type(default: Any, f: dataclasses.Field | None = None) -> str:
    if isinstance(default, tuple):
        return _type(item_example(f) if f is not None else (default[0] if default else '')) + '[]'
    return {bool: 'bool', int: 'int', float: 'double', str: 'string'}[type(default)]


def parameter_table(cfg_type: type, prefix: str = '') -> str:
    rows = ['| Parameter | Type | Default | Range | Description |', '|---|---|---|---|---|']
    for name, f in leaves(cfg_type, prefix):
        rng = f.metadata.get('range')
        if rng is None:
            rng_text = ''
        elif isinstance(f.default, str):
            rng_text = ' \\| '.join(f'`{r}`' for r in rng)
        else:
            rng_text = f'[{rng[0]}, {rng[1]}]'
        static = ' (static)' if f.metadata.get('static') else ''
        desc = _md(str(f.metadata.get('description', '')))
        rows.append(f'| `{name}` | {_type(f.default, f)}{static} | `{_fmt(f.default)}` | '
                    f'{rng_text} | {desc} |')
    return '\n'.join(rows)


def argument_groups() -> list[list[str]]:
    """Graphs with the same declared arguments share one table (rccar and mujoco)."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for name, g in graph.GRAPHS.items():
        groups.setdefault(tuple(a.name for a in g.arguments), []).append(name)
    return list(groups.values())


def arguments_table(names: list[str] | None = None) -> str:
    names = list(names or graph.GRAPHS)
    rows = ['| Argument | ' + ' | '.join(f'Default ({n})' for n in names) + ' | Description |',
            '|---|' + '---|' * len(names) + '---|']
    first = graph.GRAPHS[names[0]]
    chosen = [graph.GRAPHS[n] for n in names]
    for arg in first.arguments:
        per_graph = [g.argument(arg.name) for g in chosen]
        defaults = [f'`{a.default or chr(39) * 2}`' for a in per_graph]
        descriptions = sorted({a.description for a in per_graph})
        choices = sorted({a.choices for a in per_graph})
        if len(choices) == 1 and choices[0]:
            extra = f' One of: {", ".join(f"`{c}`" for c in choices[0])}.'
        else:
            extra = ''.join(f' {g.name}: one of {", ".join(f"`{c}`" for c in a.choices)}.'
                            for g, a in zip(chosen, per_graph) if a.choices)
        desc = _md('; '.join(descriptions))
        rows.append(f'| `{arg.name}` | ' + ' | '.join(defaults) + f' | {desc}.{extra} |')
    return '\n'.join(rows)


def generated_blocks() -> dict[str, str]:
    blocks = {f'{node} parameters': parameter_table(groups[''])
              for node, groups in NODE_PARAMETERS.items()}
    for groups in NODE_PARAMETERS.values():   # groups of their own: one table each (constraints)
        for prefix, cfg_type in groups.items():
            if prefix and prefix not in LOOP_GROUPS:
                blocks[f'{prefix} parameters'] = parameter_table(cfg_type, prefix)
    first, *others = argument_groups()
    blocks['launch arguments'] = arguments_table(first)
    for names in others:   # e.g. 'robot launch arguments'
        blocks[f'{names[0]} launch arguments'] = arguments_table(names)
    return blocks


_BLOCK = re.compile(r'(<!-- BEGIN GENERATED: (?P<name>[^>]+?) -->\n)(?P<body>.*?)'
                    r'(<!-- END GENERATED -->)', re.S)


def render_docs(text: str) -> str:
    blocks = generated_blocks()
    return _BLOCK.sub(lambda m: m.group(1) + blocks[m.group('name')] + '\n' + m.group(4), text)


def test_docs_tables_current() -> None:
    text = DOCS.read_text()
    found = {m.group('name') for m in _BLOCK.finditer(text)}
    assert found == set(generated_blocks()), f'docs/ros.md generated blocks: {sorted(found)}'
    assert render_docs(text) == text, ('docs/ros.md tables are stale: run '
                                       '`.venv/bin/python test/test_config_consistency.py`')


def test_graph_defaults_resolve() -> None:
    for g in graph.GRAPHS.values():
        g.resolve({})


if __name__ == '__main__':
    DOCS.write_text(render_docs(DOCS.read_text()))
    print(f'updated {DOCS}')
