"""Node-level settings of the ROS nodes, as typed dataclasses (pure Python, no ROS).

The algorithm settings live in :mod:`loop_ros.core.config` (``LoopConfig``); this module holds what
each *node* needs on top of them (topics timing, files, frames). Both are walked by
``loop_ros.ros.params`` to declare ROS parameters with descriptors, and
``test/test_config_consistency.py`` checks ``config/*.yaml`` against them.

Every field carries ``metadata`` (see :func:`loop_ros.core.config.param`): ``description``,
``range`` (inclusive bounds, or the allowed strings) and ``static`` (read-only at runtime).

:data:`NODE_PARAMETERS` maps each node name of the graph to its parameter groups, prefix ->
dataclass, exactly as the node declares them (``''`` = top level, ``'arc'`` = ``arc.*``).
"""
from __future__ import annotations

from dataclasses import dataclass
import math
import math

from loop_ros.core.config import ArcConfig
from loop_ros.core.config import ConfigError
from loop_ros.core.config import EnsembleConfig
from loop_ros.core.config import param
from loop_ros.core.config import SacConfig
from loop_ros.core.config import TrainConfig
from loop_ros.core.config import _Validated
from loop_ros.core.constraints import ConstraintError
from loop_ros.core.constraints import from_parameters
from loop_ros.core.constraints import PlanarConstraints

DEFAULT_ENV_ID = 'loop_ros/RCCarCircle-v0'
SAFE_ACTION_MODES = ('zero', 'raw_zero', 'hold')
PLANNER_MODES = ('learn', 'deploy')
WEIGHTS_ROUTES = ('auto', 'file', 'topic')
PLANNER_SAFE_ACTIONS = ('zero', 'hold', 'value')
PLANNER_TICK_SOURCES = ('timer', 'observation')
"""What the planner sends when it cannot plan: ``zero``: each actuator's physical zero (the env's
action 0 clipped into its box; normalised 0 for a task without a gym env), ``hold``: the last
action it sent, ``value``: ``safe_action_value`` in physical units."""
"""``learn``: act on the learner's weights as they arrive (file or topic), explore while it
says so; ``deploy``: act on one checkpoint with the plan's mean, never explore, no learner."""
"""``zero``: normalised 0 (the centre of the action box); ``raw_zero``: the env action 0 clipped
into the box; ``hold``: repeat the last applied action (zero before the first one)."""


@dataclass(frozen=True)
class SimBridgeConfig(_Validated):
    """``sim_bridge`` node: steps a gymnasium env on a timer and publishes it as a ROS robot."""

    env_id: str = param(DEFAULT_ENV_ID, "gymnasium id; 'loop_ros/...' ids are registered by "
                        'importing loop_ros.sim', static=True)
    seed: int = param(0, 'seed of the first reset and of the action space (later resets '
                      "continue the env's RNG)", (0, 2**31 - 1), static=True)
    control_period_s: float = param(0.05, 'env step period in sim seconds, used only when the '
                                    'env has no dt attribute', (1e-4, 10.0), static=True)
    real_time_factor: float = param(1.0, 'sim seconds per wall second: 1 steps at the env '
                                    'control period in wall time, 0 steps as fast as possible',
                                    (0.0, 1000.0))
    action_timeout_s: float = param(0.5, 'an action older than this (sim seconds) is stale: '
                                    'the safe action is applied and counted', (0.0, 3600.0))
    safe_action_mode: str = param('zero', "action when none is fresh: 'zero' (normalised 0 = "
                                  "box centre), 'raw_zero' (env action 0 clipped to the box), "
                                  "'hold' (repeat the last applied action)", SAFE_ACTION_MODES)
    publish_odometry: bool = param(True, "publish nav_msgs/Odometry on 'odom' when the env has "
                                   'base_pose_twist()', static=True)
    odom_frame_id: str = param('odom', 'header.frame_id of the odometry (world-fixed frame)',
                               static=True)
    base_frame_id: str = param('base_link', 'child_frame_id of the odometry and frame_id of '
                               'the observations (robot body frame)', static=True)
    max_episodes: int = param(0, 'stop the node after this many finished episodes (0: '
                              'unlimited)', (0, 1_000_000_000))
    wait_for_subscriber_s: float = param(10.0, 'before the first step, wait up to this long '
                                         "(wall seconds) for a subscriber of 'transition' (the "
                                         "learner or a recorder) and a publisher of 'action' "
                                         '(the planner), so no transition goes to nobody and no '
                                         'step gets the safe action while the planner '
                                         'configures; 0: start at once', (0.0, 3600.0),
                                         static=True)
    wait_for_transition_subscriber: bool = param(
        True, "whether the first step also waits for a subscriber of 'transition'; the "
        'launch graphs set false in mode:=deploy without record:= (no learner or recorder '
        'will come, the planner alone is awaited)', static=True)


@dataclass(frozen=True)
class ConstraintsConfig(_Validated):
    """``constraints.*``: planar constraints the planner plans against and the sim bridge counts.

    In the world frame of the task (the RC car: its simulator's frame, the sim bridge's odom
    frame, origin at the circle's centre). Live on both nodes, and set by a
    ``loop_ros/Constraints`` message on ``constraints`` too (``docs/ros.md``, "Constraints at
    run time"); a task without planar constraints takes only the defaults.
    """

    boundary_radius: float = param(0.0, 'cost 1 beyond this distance (m) from the origin of the '
                                   "task's world frame; 0: the task's own boundary (RC car: "
                                   '1.2 m)', (0.0, 1e6))
    circles: tuple[float, ...] = param((), 'keep-out circles as x, y, radius triples (m): '
                                       '[0.0, 1.0, 0.2] is one circle of radius 0.2 m at (0, 1); '
                                       'the RC car needs an ...XY-v0 env for zones')
    polygons: tuple[str, ...] = param((), "keep-out polygons, one string each of at least 3 "
                                      "vertices 'x1,y1 x2,y2 x3,y3' (m, in order)")

    def validate(self) -> None:
        """Circles in triples with radius > 0, polygons of >= 3 finite vertices."""
        try:
            self.resolve(PlanarConstraints())
        except ConstraintError as exc:
            raise ConfigError(f'ConstraintsConfig: {exc}') from None

    @property
    def is_default(self) -> bool:
        """Nothing set: the task's own boundary and no keep-out zone."""
        return self == ConstraintsConfig()

    def resolve(self, task_default: PlanarConstraints) -> PlanarConstraints:
        """The constraint set these parameters describe on a task whose own is ``task_default``."""
        return from_parameters(self.boundary_radius, self.circles, self.polygons, task_default)

    def for_task(self, task_default: PlanarConstraints | None,
                 env_id: str) -> PlanarConstraints | None:
        """:meth:`resolve` for the task ``env_id``; None when it has no planar constraints.

        Such a task (``task_default`` None) takes only the defaults: ConstraintError otherwise.
        """
        if task_default is not None:
            return self.resolve(task_default)
        if not self.is_default:
            raise ConstraintError(f'{env_id} has no planar constraints (its cost is not a '
                                  'boundary and keep-out zones): leave constraints.* at their '
                                  'defaults')
        return None


@dataclass(frozen=True)
class PlannerNodeConfig(_Validated):
    """``planner`` node: runs ARC at a fixed rate on the latest observation."""

    env_id: str = param(DEFAULT_ENV_ID, 'gymnasium id of the task (spaces, dt, task '
                        'termination/cost functions)', static=True)
    task_module: str = param('', 'Python module imported before the task is looked up; it '
                             'registers the task of env_id with loop_ros.core.tasks.register_task'
                             ' (robots without a gymnasium env: docs/integration.md)',
                             static=True)
    control_rate_hz: float = param(10.0, 'planning rate in sim time (0: 1 / the env control '
                                   'period env.unwrapped.dt)', (0.0, 1000.0), static=True)
    observation_timeout_s: float = param(0.5, 'observations older than this (stamp vs the '
                                         'node clock) are stale: the safe action is sent',
                                         (0.0, 3600.0))
    future_tolerance_s: float = param(0.1, 'observations stamped more than this after the node '
                                      'clock are rejected (a producer whose clock runs ahead '
                                      'would look fresh forever)', (0.0, 3600.0))
    safe_action: str = param('zero', "sent when no plan can be (stale observation, an error in "
                             "a tick, a non-finite action, deactivate, shutdown): 'zero': each "
                             "actuator's physical zero (the env's action 0 clipped into its "
                             "box; normalised 0 for a task without a gym env), 'hold': the last "
                             "action sent, 'value': safe_action_value", PLANNER_SAFE_ACTIONS)
    safe_action_value: tuple[float, ...] = param(
        (), "with safe_action 'value': one value per action dimension, in the env's physical "
        'units (normalised units for a task without a gym env)')
    tick_on: str = param('timer', "what starts a plan: 'timer': the control timer at "
                         'control_rate_hz, on the newest observation (a producer at any rate is '
                         "sampled); 'observation': the arrival of an observation stamped at least "
                         '3/4 of a control period after the last one planned on (no wait for the '
                         'timer: the lowest latency, for a producer at the control rate such as '
                         'the sim bridge or the robot adapter); the timer then only acts when no '
                         'observation started a plan for 1.5 periods (the safe action once they '
                         'are stale)', PLANNER_TICK_SOURCES, static=True)
    deadline_fraction: float = param(0.8, 'plan deadline as a fraction of the control period: '
                                     'ARC runs the iterations that fit (anytime planning); '
                                     "on overrun the actor's action is sent", (0.01, 1.0))
    deadline_margin_s: float = param(0.005, 'time kept free before the plan deadline: ARC '
                                     'starts no iteration that would end later than the '
                                     'deadline minus this (room for the end of the plan and '
                                     'the hand-off to the tick)', (0.0, 1.0))
    mode: str = param('learn', "'learn': act on the learner's weights as they arrive "
                      "(policy_update files, else policy_weights messages) and explore while "
                      "it says so; 'deploy': act on the checkpoint only, with the plan's mean, "
                      'never explore, no learner needed', PLANNER_MODES, static=True)
    weights_route: str = param('auto', "how a learning planner gets new weights: 'auto': the "
                               'announced checkpoint file when it is readable here and is the '
                               "announced version, else the policy_weights message; 'file': "
                               "files only (a shared folder); 'topic': policy_weights only (a "
                               'learner on another machine whose paths may exist here too)',
                               WEIGHTS_ROUTES, static=True)
    checkpoint_dir: str = param('runs/checkpoints', 'directory the learner writes checkpoints '
                                'to (policy_update paths point into it)', static=True)
    checkpoint: str = param('', 'checkpoint file loaded at configure (e.g. final.pt of loop-ros '
                            'train-offline); empty: the newest policy_*.pt of checkpoint_dir '
                            "(mode 'deploy' needs one of the two)", static=True)
    checkpoint_planner_settings: bool = param(
        True, 'an offline checkpoint (train.algo loop-offline) brings the planner settings it '
        'was trained and evaluated with (train.algo, arc.*); false: the arc.* parameters apply',
        static=True)
    autostart: bool = param(True, 'configure and activate the lifecycle node on start',
                            static=True)
    torch_threads: int = param(1, "torch intra-op threads of this process (0: torch's default, "
                               'one per core). With the learner on the same small computer, '
                               'one each keeps them from spin-waiting on each other', (0, 256),
                               static=True)
    publish_path: bool = param(False, 'publish the planned trajectory (nav_msgs/Path on '
                               "'~/plan') when the env exposes a pose")
    publish_markers: bool = param(False, "publish the plan as visualization_msgs/MarkerArray on "
                                  "'~/plan_markers' (best and worst candidates coloured by "
                                  "score, the ensemble's spread) when the env exposes a pose")

    def validate(self) -> None:
        """``safe_action: value`` needs finite values."""
        if self.safe_action == 'value' and not self.safe_action_value:
            raise ConfigError("PlannerNodeConfig.safe_action 'value' needs safe_action_value "
                              '(one value per action dimension)')
        if not all(math.isfinite(v) for v in self.safe_action_value):
            raise ConfigError(f'PlannerNodeConfig.safe_action_value must be finite, got '
                              f'{list(self.safe_action_value)}')


@dataclass(frozen=True)
class LearnerNodeConfig(_Validated):
    """``learner`` node: ingests transitions, trains SAC and the ensemble, writes checkpoints."""

    env_id: str = param(DEFAULT_ENV_ID, 'gymnasium id of the task (spaces and task functions)',
                        static=True)
    task_module: str = param('', 'Python module imported before the task is looked up; it '
                             'registers the task of env_id with loop_ros.core.tasks.register_task'
                             ' (robots without a gymnasium env: docs/integration.md)',
                             static=True)
    checkpoint_dir: str = param('runs/checkpoints', 'directory for atomic checkpoint writes',
                                static=True)
    torch_threads: int = param(1, "torch intra-op threads of this process (0: torch's default, "
                               'one per core). One leaves the other core to a planner on the '
                               'same computer', (0, 256), static=True)
    nice: int = param(5, 'niceness added to this process at start (0-19): training yields the '
                      'CPU to the control loop of a planner on the same computer', (0, 19),
                      static=True)
    checkpoint_every_steps: int = param(1000, 'write a checkpoint and publish policy_update '
                                        'every this many received transitions',
                                        (1, 1_000_000_000))
    updates_per_tick: int = param(10, 'SAC gradient steps per timer tick (bounded work keeps '
                                  'the node responsive; 0 pauses learning)', (0, 100_000))
    tick_period_s: float = param(0.1, 'period of the training timer (wall seconds)',
                                 (0.001, 60.0), static=True)
    replay_bags: tuple[str, ...] = param(
        (), 'rosbag2 bags of loop_ros/msg/Transition (bag directories or .db3/.mcap files) '
        'loaded into the replay buffer before any live transition; they count toward '
        'start_steps and the model is retrained on them before the first checkpoint '
        '(docs/bags.md)', static=True)
    resume: bool = param(True, 'on start, restore the whole learner (weights, optimisers, '
                         'replay buffer, counters, checkpoint version) from '
                         'checkpoint_dir/learner_state.pt when it exists, so a restarted learner '
                         'carries on and its planners keep planning', static=True)
    save_state: bool = param(True, 'write checkpoint_dir/learner_state.pt (atomically) with '
                             'every checkpoint and at shutdown (the journal covers the '
                             'transitions in between)')
    journal_flush_s: float = param(1.0, 'received transitions are appended to '
                                   'checkpoint_dir/journal/ and flushed to disk every this many '
                                   'wall seconds, so kill -9 loses at most this much; a restart '
                                   'with resume recovers them. 0: no journal', (0.0, 3600.0),
                                   static=True)
    publish_weights: bool = param(True, "also send each checkpoint's bytes on policy_weights "
                                  '(latched), for planners that cannot read checkpoint_dir '
                                  '(another machine)')

    def validate(self) -> None:
        """The learner must have somewhere to write checkpoints; bag paths must be strings."""
        if not self.checkpoint_dir:
            raise ConfigError('LearnerNodeConfig.checkpoint_dir must not be empty')
        bad = [p for p in self.replay_bags if not isinstance(p, str) or not p]
        if bad:
            raise ConfigError(f'LearnerNodeConfig.replay_bags must hold non-empty paths, got '
                              f'{bad!r}')


RECORDER_STORAGES = ('sqlite3', 'mcap')


@dataclass(frozen=True)
class RecorderNodeConfig(_Validated):
    """``recorder`` node: writes topics to a rosbag2 bag (``loop-ros bag record``, ``record:=``)."""

    output: str = param('', 'bag directory to create (it must not exist); set by record:= or '
                        "'loop-ros bag record OUT'", static=True)
    storage: str = param('sqlite3', "storage plugin: 'sqlite3' commits every flush_period_s, "
                         "so a killed recorder leaves a readable bag; 'mcap' is complete only "
                         'after a clean stop', RECORDER_STORAGES, static=True)
    topics: tuple[str, ...] = param(('transition',), 'topics to record (relative names resolve '
                                    "in the node's namespace); each is subscribed once a "
                                    'publisher shows its type', static=True)
    all_transitions: bool = param(True, 'also record every loop_ros/msg/Transition topic that '
                                  'appears on the graph', static=True)
    flush_period_s: float = param(1.0, 'commit period of the sqlite3 storage (wall seconds): '
                                  'a SIGKILL loses at most this much', (0.01, 3600.0),
                                  static=True)
    discovery_period_s: float = param(1.0, 'how often the graph is searched for the topics '
                                      '(wall seconds)', (0.01, 3600.0), static=True)
    max_duration_s: float = param(0.0, 'stop recording after this long (wall seconds; 0: '
                                  'until stopped)', (0.0, 1e9), static=True)



COMMAND_TYPES = ('twist_stamped', 'twist')
DEFAULT_ROBOT_TASK = 'example/DiffDriveCircle-v0'
DEFAULT_ROBOT_TASK_MODULE = 'loop_ros.examples.diff_drive'


@dataclass(frozen=True)
class RobotAdapterConfig(_Validated):
    """``robot_adapter`` node: a real base (nav_msgs/Odometry in, velocity commands out) as a
    LOOP robot; observations, transitions and episodes as the sim bridge makes them."""

    env_id: str = param(DEFAULT_ROBOT_TASK, 'registered task id (loop_ros.core.tasks.'
                        'register_task): reward, cost, termination, sizes and control period',
                        static=True)
    task_module: str = param(DEFAULT_ROBOT_TASK_MODULE, 'Python module imported before the '
                             'task is looked up; it registers env_id (docs/integration.md)',
                             static=True)
    control_rate_hz: float = param(0.0, 'observation and transition rate (0: 1 / the task dt)',
                                   (0.0, 1000.0), static=True)
    observation_fields: tuple[str, ...] = param(
        ('x', 'y', 'sin_yaw', 'cos_yaw', 'vx', 'vy', 'wz'), 'odometry fields of the '
        'observation, in order (loop_ros.io.odometry.OBSERVATION_FIELDS; the bag converter '
        'uses the same mapping); a task with its own state -> observation function ignores '
        'them', static=True)
    base_frame_id: str = param('', "header.frame_id of observations and transitions (robot "
                               "body frame); '': the odometry's child_frame_id", static=True)
    odometry_timeout_s: float = param(0.3, 'odometry older than this (its stamp vs the node '
                                      'clock) is stale: no observation, zero command, the '
                                      'episode ends', (0.001, 60.0))
    action_fields: tuple[str, ...] = param(('linear.x', 'angular.z'), 'Twist fields of the '
                                           'action, in order (linear.x ... angular.z)',
                                           static=True)
    action_low: tuple[float, ...] = param((-0.5, -1.0), 'command of the normalised action -1 '
                                          'per action field (m/s, rad/s); the bounds define '
                                          'the action space the model learns', static=True)
    action_high: tuple[float, ...] = param((0.5, 1.0), 'command of the normalised action +1 '
                                           'per action field (m/s, rad/s)', static=True)
    max_acceleration: tuple[float, ...] = param((1.0, 2.0), 'largest command change per '
                                                'second per action field (m/s^2, rad/s^2; 0: '
                                                'unlimited), also when ramping to a stop')
    command_type: str = param('twist_stamped', "message on cmd_vel: 'twist_stamped' "
                              "(geometry_msgs/TwistStamped) or 'twist' (geometry_msgs/Twist)",
                              COMMAND_TYPES, static=True)
    command_rate_hz: float = param(20.0, 'cmd_vel is (re)published at this rate, so the base '
                                   "driver's own watchdog stays fed", (1.0, 1000.0),
                                   static=True)
    command_timeout_s: float = param(0.5, 'when no action arrived for this long the command '
                                     'ramps to zero (within max_acceleration)', (0.01, 60.0))
    max_episode_steps: int = param(0, 'end an episode as truncated after this many steps (0: '
                                   'no time limit); the base keeps driving into the next one',
                                   (0, 1_000_000_000))
    reset_hold_s: float = param(0.0, 'after a termination the base is held stopped; 0: until '
                                '~/reset is called, > 0: the next episode begins by itself '
                                'after this long', (0.0, 86400.0))
    allow_missing_reward: bool = param(False, 'a task without a reward function is a '
                                       'configuration error; true: publish reward 0 (the '
                                       'learner then learns only the dynamics model)',
                                       static=True)

    def validate(self) -> None:
        """One bound and one acceleration per action field; bounds contain 0; accel >= 0."""
        name = 'RobotAdapterConfig'
        if not self.observation_fields or not self.action_fields:
            raise ConfigError(f'{name}: observation_fields and action_fields must not be empty')
        n = len(self.action_fields)
        for key in ('action_low', 'action_high', 'max_acceleration'):
            values = getattr(self, key)
            if len(values) != n or not all(isinstance(v, (int, float))
                                           and not isinstance(v, bool)
                                           and math.isfinite(v) for v in values):
                raise ConfigError(f'{name}.{key} needs one finite number per action field '
                                  f'{list(self.action_fields)}, got {list(values)}')
        if not all(lo <= 0.0 <= hi and lo < hi
                   for lo, hi in zip(self.action_low, self.action_high)):
            raise ConfigError(f'{name}: need action_low <= 0 <= action_high and low < high per '
                              f'field (0 must be a command, to stop), got low '
                              f'{list(self.action_low)} and high {list(self.action_high)}')
        if any(a < 0.0 for a in self.max_acceleration):
            raise ConfigError(f'{name}.max_acceleration must be >= 0 (0: unlimited), got '
                              f'{list(self.max_acceleration)}')

LOOP_GROUPS: dict[str, type] = {
    'sac': SacConfig,
    'ensemble': EnsembleConfig,
    'arc': ArcConfig,
    'train': TrainConfig,
}
"""Parameter prefix -> group of ``LoopConfig`` (``sac.lr``, ``arc.horizon``, ...)."""

NODE_PARAMETERS: dict[str, dict[str, type]] = {
    'sim_bridge': {'': SimBridgeConfig, 'constraints': ConstraintsConfig},
    'planner': {'': PlannerNodeConfig, 'constraints': ConstraintsConfig, **LOOP_GROUPS},
    'learner': {'': LearnerNodeConfig, **LOOP_GROUPS},
    'recorder': {'': RecorderNodeConfig},
    'robot_adapter': {'': RobotAdapterConfig},
}
"""Node name -> {parameter prefix -> config dataclass}; what each node declares."""
