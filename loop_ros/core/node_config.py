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

from loop_ros.core.config import ArcConfig
from loop_ros.core.config import ConfigError
from loop_ros.core.config import EnsembleConfig
from loop_ros.core.config import param
from loop_ros.core.config import SacConfig
from loop_ros.core.config import TrainConfig
from loop_ros.core.config import _Validated

DEFAULT_ENV_ID = 'loop_ros/RCCarCircle-v0'
SAFE_ACTION_MODES = ('zero', 'raw_zero', 'hold')
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
                                         'learner), so no transition goes to nobody; 0: start '
                                         'at once', (0.0, 3600.0), static=True)


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
                                         'node clock) are stale: no plan is sent',
                                         (0.0, 3600.0))
    deadline_fraction: float = param(0.8, 'plan deadline as a fraction of the control period; '
                                     "on overrun the actor's action is sent", (0.01, 1.0))
    checkpoint_dir: str = param('runs/checkpoints', 'directory the learner writes checkpoints '
                                'to (policy_update paths point into it)', static=True)
    checkpoint: str = param('', 'checkpoint file loaded at configure (e.g. final.pt of loop-ros '
                            'train-offline); empty: the newest policy_*.pt of checkpoint_dir',
                            static=True)
    checkpoint_planner_settings: bool = param(
        True, 'an offline checkpoint (train.algo loop-offline) brings the planner settings it '
        'was trained and evaluated with (train.algo, arc.*); false: the arc.* parameters apply',
        static=True)
    autostart: bool = param(True, 'configure and activate the lifecycle node on start',
                            static=True)
    publish_path: bool = param(False, 'publish the planned trajectory (nav_msgs/Path on '
                               "'~/plan') when the env exposes a pose")


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


LOOP_GROUPS: dict[str, type] = {
    'sac': SacConfig,
    'ensemble': EnsembleConfig,
    'arc': ArcConfig,
    'train': TrainConfig,
}
"""Parameter prefix -> group of ``LoopConfig`` (``sac.lr``, ``arc.horizon``, ...)."""

NODE_PARAMETERS: dict[str, dict[str, type]] = {
    'sim_bridge': {'': SimBridgeConfig},
    'planner': {'': PlannerNodeConfig, **LOOP_GROUPS},
    'learner': {'': LearnerNodeConfig, **LOOP_GROUPS},
    'recorder': {'': RecorderNodeConfig},
}
"""Node name -> {parameter prefix -> config dataclass}; what each node declares."""
