"""ROS parameters from the config dataclasses: declare, read back, validate on set.

One generic function set walks any (nested) config dataclass of ``loop_ros.core`` (nav2 MPPI's
namespaced getters, with descriptors and an on-set validation callback as rclpy documents):

* :func:`declare_config` declares ``<prefix>.<field>`` for every field, with a
  ``ParameterDescriptor`` carrying the description, the ``FloatingPointRange`` /
  ``IntegerRange`` of ``metadata['range']``, the allowed strings in ``additional_constraints``
  and ``read_only`` for static fields (and, given the node's ``live`` names, for the fields it
  does not apply at run time: ``loop_ros.core.live_config``). Nested groups nest the prefix:
  ``LoopConfig`` declares ``sac.*``, ``ensemble.*``, ``arc.*`` and ``train.*``.
* :func:`read_config` rebuilds the dataclass from the node's current values.
* :func:`add_validation` registers a pre-set callback (an integer given for a float parameter
  becomes a float) and an on-set callback that only *validates*: type, range, allowed strings
  and the dataclass' cross-field ``validate()``, rejecting with ``SetParametersResult(
  successful=False, reason=...)``. Applying accepted values is the node's job, in a post-set
  callback (``node.add_post_set_parameters_callback``) or at the start of its next tick.

rclpy checks read-only and ranges itself before the on-set callback runs; its range reasons name
the parameter and the bounds ('Parameter arc.temperature out of range Min: ..., Max: ...,
value: ...'), and its read-only reason is replaced by one that says why and what to do
(:func:`read_only_reason`: "arc.horizon is static (...): restart the node to change it"), so
every rejection says which parameter and why.

Typical node code (planner)::

    groups = NODE_PARAMETERS['planner']           # {'': PlannerNodeConfig, 'sac': SacConfig, ...}
    declare_groups(self, groups)                   # declare_config() per group + add_validation()
    node_cfg = read_config(self, PlannerNodeConfig)
    loop_cfg = read_config(self, LoopConfig)       # sac.*, ensemble.*, arc.*, train.*
"""
from __future__ import annotations

import array
import dataclasses
import difflib
import math
from typing import Any, Callable, Collection, Iterator, Mapping

from rcl_interfaces.msg import FloatingPointRange
from rcl_interfaces.msg import IntegerRange
from rcl_interfaces.msg import ParameterDescriptor
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.exceptions import InvalidParameterValueException
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

from loop_ros.core.config import _check_value
from loop_ros.core.config import ConfigError
from loop_ros.core.config import from_dict

__all__ = [
    'add_validation', 'declare_config', 'declare_groups', 'describe', 'explain_read_only',
    'is_static', 'iter_parameters', 'join', 'parameter_table', 'parameter_type', 'read_config',
    'read_only_reason',
]


def join(prefix: str, name: str) -> str:
    """``'arc', 'horizon'`` -> ``'arc.horizon'``; an empty prefix gives the bare name."""
    return f'{prefix}.{name}' if prefix else name


def _is_group(f: dataclasses.Field) -> bool:
    factory = f.default_factory
    return isinstance(factory, type) and dataclasses.is_dataclass(factory)


def iter_parameters(cfg_type: type, prefix: str = '') -> Iterator[tuple[str, dataclasses.Field]]:
    """``(parameter name, field)`` of every leaf field of a (nested) config dataclass."""
    for f in dataclasses.fields(cfg_type):
        if _is_group(f):
            yield from iter_parameters(f.default_factory, join(prefix, f.name))  # type: ignore
        else:
            yield join(prefix, f.name), f


_EMPTY_TUPLE_TYPES = {
    'tuple[str,...]': Parameter.Type.STRING_ARRAY,
    'tuple[int,...]': Parameter.Type.INTEGER_ARRAY,
    'tuple[float,...]': Parameter.Type.DOUBLE_ARRAY,
    'tuple[bool,...]': Parameter.Type.BOOL_ARRAY,
}
"""Array type of a field whose default is the empty tuple, by its annotation (no spaces)."""


def parameter_type(f: dataclasses.Field) -> Parameter.Type:
    """The ROS parameter type of a config field, from its default value.

    An empty tuple default takes the array type from the annotation (``tuple[str, ...]``):
    such a parameter is declared without a value when nothing overrides it (rcl gives an empty
    YAML list no type), and reads back as the empty tuple.
    """
    default = f.default
    if isinstance(default, bool):
        return Parameter.Type.BOOL
    if isinstance(default, int):
        return Parameter.Type.INTEGER
    if isinstance(default, float):
        return Parameter.Type.DOUBLE
    if isinstance(default, str):
        return Parameter.Type.STRING
    if isinstance(default, (tuple, list)) and default:
        if all(isinstance(v, bool) for v in default):
            return Parameter.Type.BOOL_ARRAY
        if all(isinstance(v, int) for v in default):
            return Parameter.Type.INTEGER_ARRAY
        if all(isinstance(v, (int, float)) for v in default):
            return Parameter.Type.DOUBLE_ARRAY
        if all(isinstance(v, str) for v in default):
            return Parameter.Type.STRING_ARRAY
    if isinstance(default, tuple):
        array_type = _EMPTY_TUPLE_TYPES.get(str(f.type).replace(' ', ''))
        if array_type is not None:
            return array_type
    raise TypeError(f'config field {f.name!r} has a default ({default!r}) that maps to no ROS '
                    'parameter type (use bool, int, float, str, a non-empty tuple of them, or '
                    'an empty tuple annotated tuple[str, ...])')


STATIC_NOTE = 'static: read-only at run time, restart the node to change it (params file or -p)'
"""``additional_constraints`` of a static parameter (``ros2 param describe`` shows it)."""
NOT_LIVE_NOTE = ('read-only at run time on this node, which does not use it while running: set it '
                 'at start-up (params file or -p)')
"""``additional_constraints`` of a dynamic parameter the node does not apply at run time."""


def is_static(name: str, f: dataclasses.Field, live: Collection[str] | None = None) -> bool:
    """Read-only at run time: a static field, or one outside the node's ``live`` names."""
    return bool(f.metadata.get('static', False)) or (live is not None and name not in live)


def describe(name: str, f: dataclasses.Field,
             live: Collection[str] | None = None) -> ParameterDescriptor:
    """The ``ParameterDescriptor`` of a config field: description, range, read_only.

    ``live``: the names the node applies at run time (``loop_ros.core.live_config``); a
    dynamic field outside them is read-only on this node too. None: only static fields are.
    """
    meta = f.metadata
    ptype = parameter_type(f)
    desc = ParameterDescriptor(name=name, type=ptype.value,
                               description=str(meta.get('description', '')),
                               read_only=is_static(name, f, live))
    rng = meta.get('range')
    if rng is not None:
        if ptype == Parameter.Type.STRING:
            desc.additional_constraints = 'one of: ' + ', '.join(repr(s) for s in rng)
        elif ptype == Parameter.Type.INTEGER:
            desc.integer_range = [IntegerRange(from_value=int(rng[0]), to_value=int(rng[1]),
                                               step=1)]
        elif ptype == Parameter.Type.DOUBLE:
            desc.floating_point_range = [FloatingPointRange(
                from_value=float(rng[0]), to_value=float(rng[1]), step=0.0)]
    if desc.read_only:
        note = STATIC_NOTE if meta.get('static', False) else NOT_LIVE_NOTE
        desc.additional_constraints = '; '.join(filter(None, [desc.additional_constraints,
                                                              note]))
    return desc


def _to_ros(value: Any) -> Any:
    """A config value as rclpy wants it (tuples become lists)."""
    return list(value) if isinstance(value, tuple) else value


def _from_ros(value: Any) -> Any:
    """A parameter value as the dataclasses want it (arrays become lists)."""
    if isinstance(value, (array.array, tuple)):
        return list(value)
    if hasattr(value, 'tolist'):  # numpy arrays from some rclpy paths
        return value.tolist()
    return value


def _coerce(ptype: Parameter.Type, param: Parameter) -> Any:
    """Int -> float for float fields (``-p lr:=1`` or YAML ``1``); None when nothing to do."""
    if ptype == Parameter.Type.DOUBLE and param.type_ == Parameter.Type.INTEGER:
        return float(param.value)
    if ptype == Parameter.Type.DOUBLE_ARRAY and param.type_ == Parameter.Type.INTEGER_ARRAY:
        return [float(v) for v in param.value]
    return None


def declare_config(node: Node, cfg_type: type, prefix: str = '',
                   defaults: Mapping[str, Any] | None = None,
                   live: Collection[str] | None = None) -> None:
    """Declare ``<prefix>.<field>`` for every field of ``cfg_type`` (nested groups nest).

    ``defaults`` (parameter name -> value, e.g. a task's ``hyperparameters``) replaces the
    dataclass default of the names it holds; overrides still win. Names already declared are
    skipped, so a node can declare ``env_id`` first and the groups that depend on it later.

    Overrides (``--params-file``, ``-p``, ``parameter_overrides``) take effect as usual; an
    integer override of a float parameter is accepted as a float. A wrongly typed or out-of-range
    override raises :class:`ConfigError` naming the parameter. ``live``: see :func:`describe`.
    """
    overrides: Mapping[str, Parameter] = getattr(node, '_parameter_overrides', {})
    for name, f in iter_parameters(cfg_type, prefix):
        if node.has_parameter(name):
            continue
        desc = describe(name, f, live)
        value = _to_ros(defaults[name] if defaults and name in defaults else f.default)
        ignore_override = False
        if name in overrides:
            coerced = _coerce(parameter_type(f), overrides[name])
            if coerced is not None:
                value, ignore_override = coerced, True
        if value == [] and not ignore_override:
            value = parameter_type(f)   # typed, without a value: an override may give one
        try:
            node.declare_parameter(name, value, desc, ignore_override=ignore_override)
        except InvalidParameterTypeException:
            given = overrides[name].value if name in overrides else value
            raise ConfigError(
                f"parameter '{name}' of node '{node.get_fully_qualified_name()}' must be of "
                f'type {parameter_type(f).name.lower()}, got {given!r}') from None
        except InvalidParameterValueException as exc:
            detail = str(exc).removesuffix(f': {name}')   # rclpy appends the name
            raise ConfigError(
                f"parameter '{name}' of node '{node.get_fully_qualified_name()}': "
                f'{detail}') from None


def declare_groups(node: Node, groups: Mapping[str, type],
                   defaults: Mapping[str, Any] | None = None,
                   live: Collection[str] | None = None) -> None:
    """:func:`declare_config` for each ``prefix -> dataclass``, then :func:`add_validation`.

    ``live``: the parameters the node applies at run time (``live_parameters(node_name)``);
    the others become read-only. None: the static flags of the dataclasses alone decide.
    """
    for prefix, cfg_type in groups.items():
        declare_config(node, cfg_type, prefix, defaults, live)
    check_overrides(node)
    add_validation(node, groups, live)


OVERRIDE_PREFIXES_ALLOWED = ('qos_overrides.',)
"""Overrides rclpy itself reads without declaring them (QoS overrides of publishers)."""


def _graph_parameter_names() -> set[str]:
    """Every parameter some loop_ros node declares (a ``/**`` section may hold any of them)."""
    from loop_ros.core.node_config import NODE_PARAMETERS
    return {name for groups in NODE_PARAMETERS.values() for prefix, cfg_type in groups.items()
            for name, _ in iter_parameters(cfg_type, prefix)}


def check_overrides(node: Node) -> None:
    """Every parameter given to the node (params file, ``-p``, launch) must be a loop_ros one.

    A misspelt name (``arc.horizn``) would otherwise be ignored without a word and the node
    would run on the default. A name another loop_ros node declares is let through (a ``/**``
    section of a params file reaches every node). Raises :class:`ConfigError` naming each
    unknown parameter and the closest declared names.
    """
    overrides = getattr(node, '_parameter_overrides', {})
    declared = set(node._parameters)
    known = declared | _graph_parameter_names()
    unknown = sorted(name for name in overrides if name not in known
                     and not name.startswith(OVERRIDE_PREFIXES_ALLOWED))
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, declared, n=2, cutoff=0.75)
        hints.append(f"'{name}'" + (f" (did you mean {' or '.join(map(repr, close))}?)"
                                    if close else ''))
    raise ConfigError(f"node '{node.get_fully_qualified_name()}' has no parameter "
                      f"{', '.join(hints)}: fix the params file, -p or launch argument "
                      "(docs/parameters.md lists each node's parameters)")


def _build_data(node: Node, cfg_type: type, prefix: str, changes: Mapping[str, Any],
                strict: bool) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for f in dataclasses.fields(cfg_type):
        name = join(prefix, f.name)
        if _is_group(f):
            data[f.name] = _build_data(node, f.default_factory, name, changes,  # type: ignore
                                       strict)
        elif name in changes:
            data[f.name] = _from_ros(changes[name])
        elif node.has_parameter(name):
            try:
                data[f.name] = _from_ros(node.get_parameter(name).value)
            except ParameterUninitializedException:   # an empty list (see parameter_type)
                data[f.name] = []
        elif strict:
            raise ConfigError(f"parameter '{name}' is not declared on node "
                              f"'{node.get_fully_qualified_name()}': call declare_config(node, "
                              f'{cfg_type.__name__}, {prefix!r}) first')
    return data


def read_config(node: Node, cfg_type: type, prefix: str = '',
                changes: Mapping[str, Any] | None = None) -> Any:
    """Rebuild a ``cfg_type`` instance from the node's current parameter values.

    ``changes`` (parameter name -> value) replace current values: the configuration a set
    would give, checked before it is applied.

    Raises:
        ConfigError: a parameter is undeclared, or the values fail the dataclass' checks (the
            message names the node and the prefix).
    """
    data = _build_data(node, cfg_type, prefix, changes or {}, strict=True)
    try:
        return from_dict(cfg_type, data, where=prefix or cfg_type.__name__)
    except ConfigError as exc:
        raise ConfigError(f"invalid parameters on node '{node.get_fully_qualified_name()}'"
                          f"{f' (prefix {prefix!r})' if prefix else ''}: {exc}") from None


def _leaf_groups(groups: Mapping[str, type]
                 ) -> dict[str, tuple[str, type, dataclasses.Field]]:
    """Parameter name -> (group prefix, group type, field) for every leaf of ``groups``."""
    out: dict[str, tuple[str, type, dataclasses.Field]] = {}
    for prefix, cfg_type in groups.items():
        for name, f in iter_parameters(cfg_type, prefix):
            out[name] = (prefix, cfg_type, f)
    return out


def add_validation(node: Node, cfg_types_by_prefix: Mapping[str, type],
                   live: Collection[str] | None = None) -> Callable:
    """Validate parameter sets of the given groups; reject bad values with a reason.

    Call it after :func:`declare_config`. ``cfg_types_by_prefix`` maps a prefix to a config
    dataclass, e.g. ``NODE_PARAMETERS['planner']`` or ``{'': LoopConfig}`` (nested groups are
    followed). Parameters outside these groups (``use_sim_time``, ...) are left alone.

    A set of a static parameter (see :func:`is_static`) after its declaration is refused with a
    reason that says why and what to do (:func:`read_only_reason`): rclpy refuses it first,
    since the descriptor is read-only, and its own reason ("Trying to set a read-only
    parameter: <name>.") is replaced by ours (:func:`explain_read_only`); the on-set check
    below keeps the rule should a descriptor have been replaced.

    Returns:
        The on-set callback (for ``node.remove_on_set_parameters_callback``).
    """
    leaves = _leaf_groups(cfg_types_by_prefix)

    def coerce(parameters: list[Parameter]) -> list[Parameter]:
        """Pre-set: an integer given for a float parameter becomes a float."""
        out = []
        for p in parameters:
            leaf = leaves.get(p.name)
            coerced = _coerce(parameter_type(leaf[2]), p) if leaf else None
            out.append(p if coerced is None else Parameter(p.name, value=coerced))
        return out

    def validate(parameters: list[Parameter]) -> SetParametersResult:
        """On-set: accept or reject (type, range, allowed strings, cross-field checks)."""
        touched: dict[tuple[str, type], dict[str, Any]] = {}
        declaring = False
        for p in parameters:
            leaf = leaves.get(p.name)
            if leaf is None:
                continue
            prefix, cfg_type, f = leaf
            value = _from_ros(p.value)
            if node.has_parameter(p.name) and is_static(p.name, f, live):
                return SetParametersResult(successful=False,
                                           reason=read_only_reason(p.name, f))
            expected = parameter_type(f)
            if p.type_ != expected and _coerce(expected, p) is None:
                return SetParametersResult(
                    successful=False, reason=f'{p.name}: expected a {expected.name.lower()} '
                    f'value, got {p.type_.name.lower()} {value!r}')
            if isinstance(value, float) and not math.isfinite(value):
                return SetParametersResult(successful=False,
                                           reason=f'{p.name}: must be finite, got {value!r}')
            try:
                _check_value('', f, value)
            except ConfigError as exc:  # '.<field> must be ...': name the parameter instead
                detail = str(exc).partition(' ')[2]
                return SetParametersResult(successful=False, reason=f'{p.name} {detail}')
            declaring = declaring or not node.has_parameter(p.name)
            touched.setdefault((prefix, cfg_type), {})[p.name] = value
        if declaring:  # during declare_parameter: siblings may not exist yet
            return SetParametersResult(successful=True)
        for (prefix, cfg_type), changes in touched.items():
            try:
                from_dict(cfg_type, _build_data(node, cfg_type, prefix, changes, strict=False),
                          where=prefix or cfg_type.__name__)
            except ConfigError as exc:
                names = ', '.join(sorted(changes))
                return SetParametersResult(successful=False, reason=f'{names}: {exc}')
        return SetParametersResult(successful=True)

    node.add_pre_set_parameters_callback(coerce)
    node.add_on_set_parameters_callback(validate)
    explain_read_only(node, {name: leaf[2] for name, leaf in leaves.items()})
    return validate


def read_only_reason(name: str, f: dataclasses.Field) -> str:
    """Why a set of ``name`` is refused at run time, and what to do instead."""
    if f.metadata.get('static', False):
        return (f'{name} is static (read-only at run time: the node builds its models, buffers, '
                'files or connections from it at start-up): restart the node to change it '
                '(params file or -p)')
    return (f'{name} is read-only at run time on this node, which does not use it while '
            'running: set it at start-up (params file or -p), or on the node that applies it '
            'live (docs/ros.md, "Parameters at run time")')


_RCLPY_READ_ONLY = 'Trying to set a read-only parameter'


def explain_read_only(node: Node, fields: Mapping[str, dataclasses.Field]) -> None:
    """Replace rclpy's read-only refusal of the ``fields`` parameters by :func:`read_only_reason`.

    rclpy checks ``read_only`` (in ``Node._apply_descriptor``) before any callback runs, so no
    callback can word that refusal. This wraps the node's ``_apply_descriptor`` (an instance
    attribute; the class is untouched) and rewrites only that reason; nodes of an rclpy without
    the method keep rclpy's wording. Several calls chain.
    """
    original = getattr(node, '_apply_descriptor', None)
    if original is None or not fields:
        return

    def apply_descriptor(parameter: Parameter, *args: Any, **kwargs: Any) -> SetParametersResult:
        result = original(parameter, *args, **kwargs)
        f = fields.get(parameter.name)
        if (f is not None and not result.successful
                and result.reason.startswith(_RCLPY_READ_ONLY)):
            return SetParametersResult(successful=False,
                                       reason=read_only_reason(parameter.name, f))
        return result

    node._apply_descriptor = apply_descriptor  # type: ignore[method-assign]


def parameter_table(cfg_type: type, prefix: str = '') -> list[tuple[str, str, Any, str, str]]:
    """Rows ``(name, type, default, range, description)`` for docs and ``--help`` texts."""
    rows = []
    for name, f in iter_parameters(cfg_type, prefix):
        rng = f.metadata.get('range')
        if rng is None:
            rng_text = ''
        elif isinstance(f.default, str):
            rng_text = ' | '.join(rng)
        else:
            rng_text = f'[{rng[0]}, {rng[1]}]'
        static = ' (static)' if f.metadata.get('static') else ''
        rows.append((name, parameter_type(f).name.lower() + static, _to_ros(f.default), rng_text,
                     str(f.metadata.get('description', ''))))
    return rows
