"""THE one description of the loop_ros ROS graphs (nodes, arguments, parameters, remappings).

Both front ends are built from it, so they start the same nodes with the same names,
namespaces, parameters and remappings:

* ``launch/<graph>.launch.py``: real ROS 2 launch files (``ros2 launch loop_ros rccar.launch.py``)
  that turn :class:`NodeSpec` s into ``launch_ros.actions.Node`` actions;
* :mod:`loop_ros.launcher`: the package's own launcher for pip venvs without ``ros2 launch``
  (``loop-ros launch rccar robots:=2``, ``python -m loop_ros.launcher rccar``).

This module imports neither rclpy nor launch (``test/test_layering.py``): it is plain data plus
one function per graph mapping resolved arguments to node specs.

Multi-robot (``robots:=N`` with N > 1): robot ``i`` runs a ``sim_bridge`` and a ``planner`` in
``<namespace>/robot<i>``; ONE ``learner`` runs in ``<namespace>``. Fan-in uses plain ROS
many-to-one topics: every bridge remaps its relative ``transition`` to the shared
``<namespace>/transition`` (each message names its producer in ``source``), and every
planner remaps ``policy_update`` and ``policy_weights`` to the learner's ``<namespace>/...``.
Each robot has its own simulated time: its bridge and planner remap ``/clock`` to
``<namespace>/robot<i>/clock`` (the learner follows robot 0's clock). With one robot nothing
is remapped and all nodes share ``<namespace>`` and ``/clock``.

Recording (``record:=PATH``): a ``recorder`` node in ``<namespace>`` (robot 0's clock, like the
learner) writes the shared ``transition`` topic, and any other Transition topic, to a new
rosbag2 bag at PATH (``loop_ros.nodes.recorder_node``, ``docs/bags.md``).

The ``robot`` graph drives a real base: a ``robot_adapter`` (``loop_ros.nodes.robot_adapter_node``)
takes the sim bridge's place, its ``odom`` and ``cmd_vel`` remapped to the base driver's topics
(``odom_topic:=``, ``cmd_topic:=``); planner and learner are the same nodes, on the wall clock
(``use_sim_time`` false) and the robot task of ``task:=`` (``docs/integration.md``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from dataclasses import field
import os
import re
from typing import Any, Callable, Mapping

from loop_ros.core.config import TrainConfig
from loop_ros.core.node_config import DEFAULT_ROBOT_TASK
from loop_ros.core.node_config import PLANNER_MODES

PACKAGE = 'loop_ros'

# --- topic names (relative: namespaces and remappings apply) ------------------------------------
OBSERVATION_TOPIC = 'observation'      # loop_ros/Observation, bridge -> planner
ACTION_TOPIC = 'action'                # loop_ros/Action, planner -> bridge
TRANSITION_TOPIC = 'transition'        # loop_ros/Transition, bridge(s) -> learner
POLICY_UPDATE_TOPIC = 'policy_update'  # loop_ros/PolicyUpdate, learner -> planner(s), latched
POLICY_WEIGHTS_TOPIC = 'policy_weights'  # loop_ros/PolicyWeights, learner -> planner(s), latched
EPISODE_STATS_TOPIC = 'episode_stats'  # loop_ros/EpisodeStats, bridge -> anyone
ODOM_TOPIC = 'odom'                    # nav_msgs/Odometry, bridge -> anyone
PLAN_STATS_TOPIC = '~/plan_stats'      # loop_ros/PlanStats, planner diagnostics
PLAN_PATH_TOPIC = '~/plan'             # nav_msgs/Path, planner (publish_path)
PLAN_MARKERS_TOPIC = '~/plan_markers'  # visualization_msgs/MarkerArray, planner (publish_markers)
CONSTRAINTS_TOPIC = 'constraints'      # loop_ros/Constraints, anyone -> planner, sim_bridge
TRAIN_STATS_TOPIC = '~/train_stats'    # learner diagnostics
CLOCK_TOPIC = '/clock'                 # rosgraph_msgs/Clock, bridge -> all (absolute)

NODE_NAMES = ('sim_bridge', 'planner', 'learner')
ROBOT_NODE_NAMES = ('robot_adapter', 'planner', 'learner')
"""The nodes of the ``robot`` graph: a real base behind the robot adapter instead of a sim."""
CMD_VEL_TOPIC = 'cmd_vel'              # geometry_msgs/TwistStamped | Twist, robot_adapter -> base
EXECUTABLES: dict[str, str] = {
    'sim_bridge_node': 'loop_ros.nodes.sim_bridge_node',
    'planner_node': 'loop_ros.nodes.planner_node',
    'learner_node': 'loop_ros.nodes.learner_node',
    'recorder_node': 'loop_ros.nodes.recorder_node',
    'robot_adapter_node': 'loop_ros.nodes.robot_adapter_node',
}
"""Executable name (``lib/loop_ros/<exe>``, ``[project.scripts]``) -> Python module with main()."""
NODE_EXECUTABLES = {'sim_bridge': 'sim_bridge_node', 'planner': 'planner_node',
                    'learner': 'learner_node', 'recorder': 'recorder_node',
                    'robot_adapter': 'robot_adapter_node'}
"""Node name -> executable; the ``recorder`` runs only with ``record:=PATH``."""

LOG_LEVELS = ('debug', 'info', 'warn', 'error', 'fatal')
DISCOVERY_ENV = 'ROS_AUTOMATIC_DISCOVERY_RANGE'
DISCOVERY_RANGES = {'localhost': 'LOCALHOST', 'subnet': 'SUBNET',
                    'system_default': 'SYSTEM_DEFAULT', 'off': 'OFF'}
"""``discovery_range:=`` -> ``ROS_AUTOMATIC_DISCOVERY_RANGE`` of every node. ``localhost`` (the
default) keeps DDS discovery on this machine; ``subnet`` lets a planner on the robot and a learner
on a workstation find each other (docs/integration.md); ``ROS_STATIC_PEERS`` and
``ROS_DOMAIN_ID`` pass through from the launching shell."""
MAX_ROBOTS = 64
_TRUE = ('true', '1', 'yes', 'on')
_FALSE = ('false', '0', 'no', 'off')
_NS_TOKEN = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')


class GraphError(ValueError):
    """A launch argument is unknown or has a bad value."""


def normalize_namespace(ns: str) -> str:
    """``''``/``'/'`` -> ``'/'``; ``'loop/'`` -> ``'/loop'``; raises GraphError if invalid."""
    tokens = [t for t in ns.strip().split('/') if t]
    for t in tokens:
        if not _NS_TOKEN.match(t) or '__' in t:
            raise GraphError(f'namespace {ns!r}: {t!r} is not a valid ROS name token (letters, '
                             'digits and single underscores; must not start with a digit)')
    return '/' + '/'.join(tokens)


def join_namespace(ns: str, *names: str) -> str:
    """Join namespace parts: ``('/', 'robot0')`` -> ``'/robot0'``."""
    return normalize_namespace('/'.join((ns, *names)))


def parse_bool(text: str) -> bool:
    """Launch-style boolean ('true'/'false', also 1/0, yes/no, on/off)."""
    low = str(text).strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f'expected true or false, got {text!r}')


@dataclass(frozen=True)
class LaunchArgument:
    """A declared launch argument: what ``DeclareLaunchArgument`` and ``--help`` show."""

    name: str
    default: str
    description: str
    kind: str = 'str'
    """How the string is parsed: str, bool, int, float, namespace, nodes."""
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    node_names: tuple[str, ...] = NODE_NAMES
    """For kind 'nodes': the graph's node names ('all' = these)."""

    def parse(self, text: str) -> Any:
        """The typed value of ``text``; raises GraphError with the argument's name."""
        text = str(text)
        try:
            if self.choices and text not in self.choices:
                raise ValueError(f'expected one of {list(self.choices)}, got {text!r}')
            if self.kind == 'bool':
                return parse_bool(text)
            if self.kind == 'namespace':
                return normalize_namespace(text)
            if self.kind == 'nodes':
                return _parse_nodes(text, self.node_names)
            if self.kind in ('int', 'float'):
                value: float = int(text) if self.kind == 'int' else float(text)
                if value != value or value in (float('inf'), float('-inf')):
                    raise ValueError(f'expected a finite number, got {text!r}')
                if self.low is not None and value < self.low:
                    raise ValueError(f'must be >= {self.low:g}, got {text}')
                if self.high is not None and value > self.high:
                    raise ValueError(f'must be <= {self.high:g}, got {text}')
                return value
            return text
        except (GraphError, ValueError) as exc:
            raise GraphError(f'launch argument {self.name}:={text!r}: {exc}') from None


def _parse_nodes(text: str, known: tuple[str, ...] = NODE_NAMES) -> tuple[str, ...]:
    if text.strip() == 'all':
        return known
    names = tuple(n.strip() for n in text.split(',') if n.strip())
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(f"expected 'all' or a comma-separated subset of {list(known)}, "
                         f'got {text!r}')
    return names


@dataclass(frozen=True)
class NodeSpec:
    """One node of a graph: enough for a launch_ros ``Node`` action and for a process."""

    name: str
    executable: str
    namespace: str = '/'
    params_files: tuple[str, ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)
    """Inline parameters, applied after the files (they win)."""
    remappings: tuple[tuple[str, str], ...] = ()
    required: bool = True
    """When it exits, the whole graph is shut down (launch: ``on_exit=Shutdown()``)."""
    respawn: bool = False
    respawn_delay_s: float = 2.0
    log_level: str = 'info'
    package: str = PACKAGE
    env: Mapping[str, str] = field(default_factory=dict)
    """Environment variables of the node's process (launch: ``additional_env``)."""

    @property
    def module(self) -> str:
        """Python module whose ``main()`` runs this node (``python -m <module>``)."""
        return EXECUTABLES[self.executable]

    @property
    def fully_qualified_name(self) -> str:
        """``/<namespace>/<name>``."""
        return join_namespace(self.namespace, self.name)

    @property
    def label(self) -> str:
        """Short unique label for log prefixes: ``robot0/planner``."""
        return self.fully_qualified_name.lstrip('/')


@dataclass(frozen=True)
class GraphDescription:
    """A named graph: its declared arguments and the function building its nodes."""

    name: str
    description: str
    arguments: tuple[LaunchArgument, ...]
    build: Callable[[GraphDescription, Mapping[str, Any], str], list[NodeSpec]]
    config_file: str = ''
    """Default params file, relative to the package share directory."""

    def argument(self, name: str) -> LaunchArgument:
        """The declared argument ``name``; GraphError lists the known ones otherwise."""
        for arg in self.arguments:
            if arg.name == name:
                return arg
        raise GraphError(self._unknown(name))

    def _unknown(self, name: str) -> str:
        known = ', '.join(a.name for a in self.arguments)
        return f'graph {self.name!r} has no launch argument {name!r}; known: {known}'

    def defaults(self) -> dict[str, str]:
        """Argument name -> default string."""
        return {a.name: a.default for a in self.arguments}

    def resolve(self, given: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Defaults overlaid with ``given`` (strings), parsed and validated."""
        given = dict(given or {})
        for name in given:
            if name not in self.defaults():
                raise GraphError(self._unknown(name))
        raw = {**self.defaults(), **{k: str(v) for k, v in given.items()}}
        return {a.name: a.parse(raw[a.name]) for a in self.arguments}

    def nodes(self, given: Mapping[str, str] | None, share_dir: str) -> list[NodeSpec]:
        """The node specs for the given argument strings.

        Args:
            given: ``name -> value`` strings from the command line / launch configurations.
            share_dir: the package share directory (``<prefix>/share/loop_ros`` or the source
                tree), where ``config/`` lives.
        """
        args = self.resolve(given)
        specs = self.build(self, args, share_dir)
        if 'discovery_range' in args:
            env = {DISCOVERY_ENV: DISCOVERY_RANGES[args['discovery_range']]}
            specs = [dataclasses.replace(s, env={**s.env, **env}) for s in specs]
        if args.get('respawn'):   # restarted after a crash; the graph no longer stops for them
            specs = [dataclasses.replace(s, respawn=True, required=False)
                     if s.name in RESPAWN_NODES else s for s in specs]
        return specs


RESPAWN_NODES = ('sim_bridge', 'robot_adapter', 'planner', 'learner')
"""Nodes that ``respawn:=true`` restarts after they exit (``NodeSpec.respawn_delay_s`` later);
they are then not ``required``: their exit no longer shuts the graph down."""


def respawn_argument() -> LaunchArgument:
    """``respawn``: restart the bridge or adapter, planner and learner when they exit."""
    return LaunchArgument('respawn', 'false', 'restart sim_bridge or robot_adapter, planner and '
                          'learner when they exit (after respawn_delay_s; they are then not '
                          'required: their exit no longer stops the graph)', kind='bool')


def discovery_argument() -> LaunchArgument:
    """``discovery_range``: how far DDS discovery reaches (every graph declares it)."""
    return LaunchArgument('discovery_range', 'localhost', 'ROS_AUTOMATIC_DISCOVERY_RANGE of '
                          "the nodes: 'localhost' keeps the graph on this machine, 'subnet' "
                          'finds nodes on other machines of the network (a planner on the '
                          'robot, a learner on a workstation)', choices=tuple(DISCOVERY_RANGES))


def _common_arguments(env_default: str, env_choices: tuple[str, ...], env_help: str
                      ) -> tuple[LaunchArgument, ...]:
    return (
        LaunchArgument('namespace', '', "top-level namespace of the graph ('' = root)",
                       kind='namespace'),
        LaunchArgument('use_sim_time', 'true', 'nodes follow the /clock of the sim bridge '
                       '(simulated time)', kind='bool'),
        LaunchArgument('params_file', '', "parameters YAML keyed by node name ('' = the "
                       "package's config/<graph>.yaml)"),
        LaunchArgument('env', env_default, env_help, choices=env_choices),
        LaunchArgument('robots', '1', 'number of simulated robots; robot i runs a sim bridge '
                       'and a planner in <namespace>/robot<i> and one learner trains from all',
                       kind='int', low=1, high=MAX_ROBOTS),
        LaunchArgument('seed', '0', 'base seed: robot i uses seed + i (sim bridge seed and '
                       'planner train.seed), the learner uses seed', kind='int', low=0,
                       high=2**31 - 1 - MAX_ROBOTS),
        LaunchArgument('real_time_factor', '1.0', 'sim seconds per wall second (1 = real '
                       'time, 0 = as fast as possible)', kind='float', low=0.0, high=1000.0),
        *_planner_learner_arguments(NODE_NAMES),
    )


ALGORITHM_CHOICES: tuple[str, ...] = ('',) + tuple(
    next(f for f in dataclasses.fields(TrainConfig) if f.name == 'algo').metadata['range'])
"""Values of the ``algo`` launch argument: '' (keep the params file's) or a ``train.algo``."""


def _planner_learner_arguments(node_names: tuple[str, ...]) -> tuple[LaunchArgument, ...]:
    """The arguments of every graph with planner(s) and a learner (sim and robot alike)."""
    return (
        LaunchArgument('autostart', 'true', 'configure and activate the planner(s) on start '
                       '(false: ros2 lifecycle set <ns>/planner configure, then activate)',
                       kind='bool'),
        LaunchArgument('checkpoint_dir', '', 'checkpoint directory of learner and planner(s) '
                       "('' = the params file's checkpoint_dir)"),
        LaunchArgument('checkpoint', '', "checkpoint file the planner(s) act on (e.g. "
                       "train-offline's final.pt; '' = the newest in checkpoint_dir)"),
        LaunchArgument('mode', 'learn', "planner mode: 'learn' (weights from the learner as it "
                       "trains) or 'deploy' (act on checkpoint, or the newest in checkpoint_dir,"
                       ' with the plan mean, never explore; no learner is started)',
                       choices=PLANNER_MODES),
        LaunchArgument('algo', '', "train.algo of the planner(s) and the learner ('' = the "
                       "params file's); safe-loop and safe-pets plan under the task's cost "
                       'constraint (d0 = arc.cost_limit, 0.2 when unset; docs/algorithm.md)',
                       choices=ALGORITHM_CHOICES),
        LaunchArgument('log_level', 'info', 'log level of all nodes', choices=LOG_LEVELS),
        discovery_argument(),
        respawn_argument(),
        LaunchArgument('nodes', 'all', "nodes to start: 'all' or a comma-separated subset of "
                       + ','.join(node_names), kind='nodes', node_names=node_names),
        LaunchArgument('record', '', "record the graph's Transition topic to this new rosbag2 "
                       "bag while it runs (a recorder node; '' = no recording; docs/bags.md)"),
    )


def _wanted_nodes(args: Mapping[str, Any]) -> set[str]:
    """The ``nodes:=`` selection; ``mode:=deploy`` starts no learner (the planner learns
    nothing)."""
    wanted = set(args['nodes'])
    if args['mode'] == 'deploy':
        wanted.discard('learner')
    return wanted


def _transitions_awaited(args: Mapping[str, Any]) -> bool:
    """Whether the sim bridge's first step waits for a transition subscriber: not in
    ``mode:=deploy`` without ``record:=``, where no learner or recorder will come."""
    return args['mode'] != 'deploy' or bool(args['record'])


def _algo_parameters(args: Mapping[str, Any]) -> dict[str, Any]:
    """``algo:=`` as the ``train.algo`` parameter (planner and learner must agree)."""
    return {'train.algo': args['algo']} if args['algo'] else {}


def _planner_parameters(args: Mapping[str, Any]) -> dict[str, Any]:
    """Launch arguments that become planner parameters (autostart, mode, checkpoint, algo)."""
    return {'autostart': args['autostart'], 'mode': args['mode'], **_algo_parameters(args),
            **({'checkpoint': args['checkpoint']} if args['checkpoint'] else {})}


def _build_loop_graph(graph: GraphDescription, args: Mapping[str, Any], share_dir: str
                      ) -> list[NodeSpec]:
    """sim bridge(s) + planner(s) + one learner (see the module docstring)."""
    ns = args['namespace']
    params_file = args['params_file'] or os.path.join(share_dir, graph.config_file)
    files = (params_file,)
    robots = int(args['robots'])
    seed = int(args['seed'])
    common: dict[str, Any] = {'use_sim_time': args['use_sim_time'], 'env_id': args['env']}
    ckpt = {'checkpoint_dir': args['checkpoint_dir']} if args['checkpoint_dir'] else {}
    wanted = _wanted_nodes(args)
    level = args['log_level']
    specs: list[NodeSpec] = []
    if 'learner' in wanted:
        remaps = ((CLOCK_TOPIC, join_namespace(ns, 'robot0', 'clock')),) if robots > 1 else ()
        specs.append(NodeSpec(
            name='learner', executable='learner_node', namespace=ns, params_files=files,
            parameters={**common, **ckpt, **_algo_parameters(args), 'train.seed': seed},
            remappings=remaps,
            log_level=level))
    for i in range(robots):
        robot_ns = join_namespace(ns, f'robot{i}') if robots > 1 else ns
        multi = robots > 1
        clock_remap = ((CLOCK_TOPIC, join_namespace(robot_ns, 'clock')),) if multi else ()
        if 'sim_bridge' in wanted:
            frames = ({'odom_frame_id': f'robot{i}/odom', 'base_frame_id': f'robot{i}/base_link'}
                      if multi else {})
            remaps = clock_remap + (
                ((TRANSITION_TOPIC, join_namespace(ns, TRANSITION_TOPIC)),) if multi else ())
            specs.append(NodeSpec(
                name='sim_bridge', executable='sim_bridge_node', namespace=robot_ns,
                params_files=files, remappings=remaps, log_level=level,
                parameters={**common, 'seed': seed + i,
                            'real_time_factor': float(args['real_time_factor']),
                            'wait_for_transition_subscriber': _transitions_awaited(args),
                            **frames}))
        if 'planner' in wanted:
            remaps = clock_remap + (
                ((POLICY_UPDATE_TOPIC, join_namespace(ns, POLICY_UPDATE_TOPIC)),
                 (POLICY_WEIGHTS_TOPIC, join_namespace(ns, POLICY_WEIGHTS_TOPIC)))
                if multi else ())
            specs.append(NodeSpec(
                name='planner', executable='planner_node', namespace=robot_ns,
                params_files=files, remappings=remaps, log_level=level,
                parameters={**common, **ckpt, **_planner_parameters(args),
                            'train.seed': seed + i}))
    if args['record']:   # like the learner: in <namespace>, on robot 0's clock
        remaps = ((CLOCK_TOPIC, join_namespace(ns, 'robot0', 'clock')),) if robots > 1 else ()
        specs.append(NodeSpec(
            name='recorder', executable='recorder_node', namespace=ns, params_files=files,
            parameters={'use_sim_time': args['use_sim_time'], 'output': args['record']},
            remappings=remaps, log_level=level))
    return specs


def _robot_arguments() -> tuple[LaunchArgument, ...]:
    return (
        LaunchArgument('namespace', '', "top-level namespace of the graph ('' = root)",
                       kind='namespace'),
        LaunchArgument('odom_topic', '/odom', "the base driver's nav_msgs/Odometry topic (the "
                       "adapter's odom is remapped to it; a relative name resolves in "
                       'namespace)'),
        LaunchArgument('cmd_topic', '/cmd_vel', "the base driver's velocity command topic "
                       "(the adapter's cmd_vel: geometry_msgs/TwistStamped, or Twist with "
                       'command_type: twist)'),
        LaunchArgument('task', DEFAULT_ROBOT_TASK, 'registered task id of the robot (env_id of '
                       'adapter, planner and learner; docs/integration.md)'),
        LaunchArgument('task_module', '', "Python module that registers task ('' = the params "
                       "file's task_module)"),
        LaunchArgument('use_sim_time', 'false', 'nodes follow /clock (false on a real robot: '
                       'the wall clock)', kind='bool'),
        LaunchArgument('params_file', '', "parameters YAML keyed by node name ('' = the "
                       "package's config/robot.yaml)"),
        *_planner_learner_arguments(ROBOT_NODE_NAMES),
    )


def _topic_name(argument: str, text: str) -> str:
    """A topic name given as a launch argument: relative or absolute, valid tokens."""
    body = text[1:] if text.startswith('/') else text
    tokens = body.split('/')
    if not body or not all(_NS_TOKEN.match(t) and '__' not in t for t in tokens):
        raise GraphError(f'launch argument {argument}:={text!r}: not a valid topic name')
    return text


def _build_robot_graph(graph: GraphDescription, args: Mapping[str, Any], share_dir: str
                       ) -> list[NodeSpec]:
    """Robot adapter + planner + learner in <namespace>; odom and cmd_vel remapped."""
    ns = args['namespace']
    files = (args['params_file'] or os.path.join(share_dir, graph.config_file),)
    odom = _topic_name('odom_topic', args['odom_topic'])
    cmd = _topic_name('cmd_topic', args['cmd_topic'])
    common: dict[str, Any] = {
        'use_sim_time': args['use_sim_time'], 'env_id': args['task'],
        **({'task_module': args['task_module']} if args['task_module'] else {})}
    ckpt = {'checkpoint_dir': args['checkpoint_dir']} if args['checkpoint_dir'] else {}
    wanted = _wanted_nodes(args)
    level = args['log_level']
    specs: list[NodeSpec] = []
    if 'learner' in wanted:
        specs.append(NodeSpec(name='learner', executable='learner_node', namespace=ns,
                              params_files=files,
                              parameters={**common, **ckpt, **_algo_parameters(args)},
                              log_level=level))
    if 'robot_adapter' in wanted:
        specs.append(NodeSpec(name='robot_adapter', executable='robot_adapter_node',
                              namespace=ns, params_files=files, parameters=dict(common),
                              remappings=((ODOM_TOPIC, odom), (CMD_VEL_TOPIC, cmd)),
                              log_level=level))
    if 'planner' in wanted:
        specs.append(NodeSpec(
            name='planner', executable='planner_node', namespace=ns, params_files=files,
            log_level=level,
            parameters={**common, **ckpt, **_planner_parameters(args)}))
    if args['record']:
        specs.append(NodeSpec(
            name='recorder', executable='recorder_node', namespace=ns, params_files=files,
            parameters={'use_sim_time': args['use_sim_time'], 'output': args['record']},
            log_level=level))
    return specs


RCCAR_ENVS = ('loop_ros/RCCarCircle-v0', 'loop_ros/RCCarDrift-v0', 'loop_ros/RCCarCircleXY-v0',
              'loop_ros/RCCarDriftXY-v0', 'loop_ros/RCCarCircle20Hz-v0')
"""The ...XY-v0 ids also observe the car's world position (keep-out zones need it);
RCCarCircle20Hz-v0 is the circle task at 20 Hz."""

GRAPHS: dict[str, GraphDescription] = {
    'rccar': GraphDescription(
        name='rccar',
        description='LOOP on the simulated RC car: sim bridge(s), ARC planner(s), one learner',
        arguments=_common_arguments(RCCAR_ENVS[0], RCCAR_ENVS, 'gymnasium id of the task'),
        build=_build_loop_graph, config_file='config/rccar.yaml'),
    'mujoco': GraphDescription(
        name='mujoco',
        description='LOOP on a gymnasium MuJoCo task: sim bridge(s), ARC planner(s), one '
                    'learner',
        arguments=_common_arguments('InvertedPendulum-v5', (), 'gymnasium id of the task'),
        build=_build_loop_graph, config_file='config/mujoco.yaml'),
    'robot': GraphDescription(
        name='robot',
        description='LOOP on a real base: robot adapter (Odometry in, velocity commands out), '
                    'ARC planner, learner',
        arguments=_robot_arguments(), build=_build_robot_graph,
        config_file='config/robot.yaml'),
}
"""Graph name -> description; ``launch/<name>.launch.py`` exists for each."""


def get_graph(name: str) -> GraphDescription:
    """The graph called ``name``; GraphError lists the known ones otherwise."""
    try:
        return GRAPHS[name]
    except KeyError:
        raise GraphError(f'unknown graph {name!r}; known: {", ".join(GRAPHS)}') from None


def node_specs(graph_name: str, arguments: Mapping[str, str] | None, share_dir: str
               ) -> list[NodeSpec]:
    """Node specs of graph ``graph_name`` for launch argument strings ``arguments``."""
    return get_graph(graph_name).nodes(arguments, share_dir)
