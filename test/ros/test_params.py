"""loop_ros.ros.params: descriptors, read-back and validated sets, in-process (no spinning)."""
from __future__ import annotations

from dataclasses import dataclass
import time

import pytest

rclpy = pytest.importorskip('rclpy')

from rcl_interfaces.msg import ParameterType  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from loop_ros.core.config import _Validated  # noqa: E402
from loop_ros.core.config import ArcConfig  # noqa: E402
from loop_ros.core.config import ConfigError  # noqa: E402
from loop_ros.core.config import LoopConfig  # noqa: E402
from loop_ros.core.config import param  # noqa: E402
from loop_ros.core.config import to_dict  # noqa: E402
from loop_ros.core.node_config import NODE_PARAMETERS  # noqa: E402
from loop_ros.core.node_config import PlannerNodeConfig  # noqa: E402
from loop_ros.core.node_config import SimBridgeConfig  # noqa: E402
from loop_ros.ros import params  # noqa: E402

pytestmark = pytest.mark.ros


def make_node(context, overrides: dict | None = None, name: str = 'planner') -> Node:
    node = Node(name, context=context, parameter_overrides=[
        Parameter(k, value=v) for k, v in (overrides or {}).items()])
    params.declare_groups(node, NODE_PARAMETERS['planner'])
    return node


def test_declared_with_descriptors(context) -> None:
    node = make_node(context)
    expected = {name for prefix, t in NODE_PARAMETERS['planner'].items()
                for name, _ in params.iter_parameters(t, prefix)}
    assert expected <= set(node._parameters)
    assert {'sac.lr', 'ensemble.num_members', 'arc.horizon', 'train.seed', 'control_rate_hz'} \
        <= expected

    horizon = node.describe_parameter('arc.horizon')
    assert horizon.read_only and horizon.type == ParameterType.PARAMETER_INTEGER
    assert horizon.description == ArcConfig.__dataclass_fields__['horizon'].metadata[
        'description']
    assert (horizon.integer_range[0].from_value, horizon.integer_range[0].to_value) == (1, 100)

    temp = node.describe_parameter('arc.temperature')
    assert not temp.read_only and temp.type == ParameterType.PARAMETER_DOUBLE
    rng = temp.floating_point_range[0]
    assert (rng.from_value, rng.to_value) == (1e-6, 1e6) and temp.description

    opt = node.describe_parameter('arc.optimizer')
    assert "'arc'" in opt.additional_constraints and "'cem'" in opt.additional_constraints
    assert node.describe_parameter('sac.hidden_sizes').type == \
        ParameterType.PARAMETER_INTEGER_ARRAY
    for name in expected:
        assert node.describe_parameter(name).description, name
    node.destroy_node()


def test_read_config_round_trip(context) -> None:
    node = make_node(context)
    assert to_dict(params.read_config(node, LoopConfig)) == to_dict(LoopConfig())
    assert params.read_config(node, PlannerNodeConfig) == PlannerNodeConfig()
    node.destroy_node()

    node = make_node(context, {'arc.horizon': 7, 'sac.hidden_sizes': [64, 32],
                               'arc.temperature': 2,   # an int for a float parameter
                               'env_id': 'InvertedPendulum-v5', 'control_rate_hz': 25.0})
    loop = params.read_config(node, LoopConfig)
    assert loop.arc.horizon == 7 and loop.sac.hidden_sizes == (64, 32)
    assert loop.arc.temperature == 2.0 and isinstance(loop.arc.temperature, float)
    cfg = params.read_config(node, PlannerNodeConfig)
    assert cfg.env_id == 'InvertedPendulum-v5' and cfg.control_rate_hz == 25.0
    assert params.read_config(node, ArcConfig, 'arc') == loop.arc
    node.destroy_node()


def test_out_of_range_rejected_with_reason(context) -> None:
    node = make_node(context)
    result = node.set_parameters([Parameter('arc.temperature', value=0.0)])[0]
    assert not result.successful and 'arc.temperature' in result.reason
    result = node.set_parameters([Parameter('arc.num_iterations', value=0)])[0]
    assert not result.successful and 'arc.num_iterations' in result.reason
    result = node.set_parameters([Parameter('deadline_fraction', value=1.5)])[0]
    assert not result.successful and 'deadline_fraction' in result.reason
    # static: read-only at runtime
    result = node.set_parameters([Parameter('arc.horizon', value=4)])[0]
    assert not result.successful and 'read-only' in result.reason
    # wrong type
    result = node.set_parameters([Parameter('arc.temperature', value='hot')])[0]
    assert not result.successful and 'type' in result.reason.lower()
    # valid sets go through; an int for a float parameter becomes a float
    assert node.set_parameters([Parameter('arc.temperature', value=3)])[0].successful
    value = node.get_parameter('arc.temperature').value
    assert value == 3.0 and isinstance(value, float)
    assert params.read_config(node, LoopConfig).arc.temperature == 3.0
    node.destroy_node()


def test_bad_string_rejected(context) -> None:
    node = make_node(context)
    result = node.set_parameters([Parameter('arc.optimizer', value='newton')])[0]
    assert not result.successful
    assert 'arc.optimizer' in result.reason and "'cem'" in result.reason
    assert node.get_parameter('arc.optimizer').value == 'arc'
    assert node.set_parameters([Parameter('arc.optimizer', value='cem')])[0].successful
    node.destroy_node()


def test_bad_override_fails_declaration_clearly(context) -> None:
    node = Node('planner', context=context,
                parameter_overrides=[Parameter('arc.temperature', value=-1.0)])
    with pytest.raises(ConfigError, match='arc.temperature'):
        params.declare_config(node, LoopConfig)
    node.destroy_node()
    node = Node('planner', context=context,
                parameter_overrides=[Parameter('arc.horizon', value='long')])
    with pytest.raises(ConfigError, match="'arc.horizon'.*integer"):
        params.declare_config(node, LoopConfig)
    node.destroy_node()
    node = make_node(context, {'ensemble.num_elites': 9})   # > num_members (7): cross-field
    with pytest.raises(ConfigError, match='num_elites'):
        params.read_config(node, LoopConfig)
    node.destroy_node()


@dataclass(frozen=True)
class _Band(_Validated):
    low: float = param(0.0, 'lower edge', (-10.0, 10.0))
    high: float = param(1.0, 'upper edge', (-10.0, 10.0))

    def validate(self) -> None:
        if self.low >= self.high:
            raise ConfigError(f'low ({self.low}) must be below high ({self.high})')


def test_cross_field_validation_on_set(context) -> None:
    node = Node('band', context=context)
    params.declare_config(node, _Band, 'band')
    params.add_validation(node, {'band': _Band})
    result = node.set_parameters([Parameter('band.low', value=2.0)])[0]
    assert not result.successful and 'band.low' in result.reason and 'below' in result.reason
    result = node.set_parameters_atomically([Parameter('band.high', value=5.0),
                                             Parameter('band.low', value=2.0)])
    assert result.successful
    assert params.read_config(node, _Band, 'band') == _Band(low=2.0, high=5.0)
    node.destroy_node()


def test_sim_bridge_parameters(context) -> None:
    node = Node('sim_bridge', context=context,
                parameter_overrides=[Parameter('safe_action_mode', value='hold')])
    params.declare_groups(node, NODE_PARAMETERS['sim_bridge'])
    cfg = params.read_config(node, SimBridgeConfig)
    assert cfg.safe_action_mode == 'hold' and cfg.env_id == SimBridgeConfig().env_id
    assert node.describe_parameter('env_id').read_only
    assert not node.describe_parameter('real_time_factor').read_only
    result = node.set_parameters([Parameter('safe_action_mode', value='brake')])[0]
    assert not result.successful and 'zero' in result.reason
    node.destroy_node()


def test_task_presets_are_defaults_and_overrides_win(context) -> None:
    """dataclass defaults < the env's task preset < params file / -p (planner and learner)."""
    from loop_ros.core.tasks import get_task
    from loop_ros.nodes.planner_node import declare_node_parameters
    preset = get_task('InvertedPendulum-v5').hyperparameters['arc.horizon']
    assert preset != ArcConfig().horizon
    cases = [({'env_id': 'InvertedPendulum-v5'}, preset),
             ({'env_id': 'InvertedPendulum-v5', 'arc.horizon': 4}, 4),
             ({'env_id': 'loop_ros/RCCarCircle-v0'}, ArcConfig().horizon)]
    for node_name in ('planner', 'learner'):
        for overrides, horizon in cases:
            node = Node(node_name, context=context, parameter_overrides=[
                Parameter(k, value=v) for k, v in overrides.items()])
            declare_node_parameters(node, node_name)
            assert params.read_config(node, LoopConfig).arc.horizon == horizon, overrides
            assert node.get_parameter('arc.horizon').value == horizon
            node.destroy_node()


# --- parameters set at run time on the real nodes --------------------------------------------

TINY_LOOP = {'sac.hidden_sizes': [16, 16], 'ensemble.num_members': 3, 'ensemble.num_elites': 2,
             'ensemble.hidden_size': 16, 'ensemble.num_layers': 2, 'arc.num_samples': 8,
             'arc.num_particles': 1, 'arc.num_iterations': 1, 'arc.num_actor_trajs': 1,
             'train.device': 'cpu'}


def overrides(values: dict) -> list[Parameter]:
    return [Parameter(k, value=v) for k, v in values.items()]


def refused(node: Node, name: str, value) -> str:
    result = node.set_parameters([Parameter(name, value=value)])[0]
    assert not result.successful, f'{name}={value!r} was accepted'
    assert name in result.reason
    return result.reason


def test_static_and_unused_parameters_say_why(context) -> None:
    """Static: 'restart the node'; dynamic but not used by this node: read-only here, and why."""
    from loop_ros.core.live_config import live_parameters
    from loop_ros.nodes.planner_node import declare_node_parameters
    planner = Node('planner', context=context)
    declare_node_parameters(planner, 'planner')
    learner = Node('learner', context=context)
    declare_node_parameters(learner, 'learner')
    for node in (planner, learner):
        reason = refused(node, 'arc.horizon', 4)
        assert 'static' in reason and 'restart the node' in reason
        assert node.describe_parameter('arc.horizon').read_only
        assert 'restart the node' in node.describe_parameter('arc.horizon').additional_constraints
    reason = refused(planner, 'sac.lr', 0.01)     # the planner trains nothing
    assert 'does not use it while running' in reason
    assert refused(learner, 'arc.temperature', 2.0)   # the learner does not plan
    assert 'read-only at run time on this node' in \
        learner.describe_parameter('arc.temperature').additional_constraints
    # what each node applies is exactly what is writable
    for name, node in (('planner', planner), ('learner', learner)):
        writable = {n for n in node._parameters if n != 'use_sim_time'
                    and not node.describe_parameter(n).read_only}
        assert writable == set(live_parameters(name)), name
    # read-only on the node, but never for the parameter files: overrides still apply
    node = Node('learner', context=context,
                parameter_overrides=overrides({'arc.temperature': 3.0}))
    declare_node_parameters(node, 'learner')
    assert node.get_parameter('arc.temperature').value == 3.0
    for n in (planner, learner, node):
        n.destroy_node()


def test_planner_applies_parameters_at_the_next_tick(context, tmp_path) -> None:
    from loop_ros.msg import Observation
    from loop_ros.nodes.planner_node import PlannerNode
    from rclpy.lifecycle import TransitionCallbackReturn
    node = PlannerNode(context=context, parameter_overrides=overrides({
        **TINY_LOOP, 'env_id': 'loop_ros/RCCarCircle-v0', 'control_rate_hz': 1.0,
        'deadline_fraction': 1.0, 'observation_timeout_s': 60.0, 'autostart': False,
        'checkpoint_dir': str(tmp_path)}))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        node._explore = False

        def tick() -> None:
            msg = Observation(data=[0.05] * node.obs_dim, episode=0, step=1)
            msg.header.stamp = node.get_clock().now().to_msg()
            node._on_observation(msg)
            node._on_tick()
            if node._plan_future is not None:
                node._plan_future.result(timeout=60.0)   # let a late plan finish

        plans = []   # the PlanInfo of each tick (None: the tick missed its deadline)
        publish_stats = node._publish_stats
        node._publish_stats = lambda info, *args: (plans.append(info),
                                                   publish_stats(info, *args))
        tick()
        assert node.deadline_misses == 0            # 1 s to plan a tiny ARC
        result = node.set_parameters_atomically([
            Parameter('deadline_fraction', value=0.01),      # 10 ms
            Parameter('arc.num_iterations', value=40), Parameter('arc.num_samples', value=400),
            Parameter('arc.temperature', value=5)])           # an int for a float: coerced
        assert result.successful, result.reason
        assert node.cfg.deadline_fraction == 1.0   # staged: applied at the next tick
        tick()
        assert node.cfg.deadline_fraction == 0.01
        arc = node.policy.planner.cfg
        assert (arc.num_iterations, arc.num_samples, arc.temperature) == (40, 400, 5.0)
        # 40 x 400 candidates do not fit in 10 ms: ARC ran the iterations that fit (anytime
        # planning), or, where even one did not, the tick missed the deadline
        assert ((plans[-1] is None and node.deadline_misses == 1)
                or (plans[-1].iterations < 40 and node.deadline_misses == 0))
        assert node.policy.planner._last[0].shape[0] == 400 + 1

        misses = node.deadline_misses
        assert node.set_parameters([Parameter('deadline_fraction', value=1.0),
                                    Parameter('arc.num_iterations', value=1)])[-1].successful
        tick()
        assert node.deadline_misses == misses       # back within the deadline
        assert plans[-1].iterations == 1
        stale = node.stale_observations
        assert node.set_parameters([Parameter('observation_timeout_s', value=0.0)])[0].successful
        time.sleep(0.01)
        node._on_tick()                             # the observation of the last tick is stale
        assert node.stale_observations == stale + 1
        # refused, with the reason; nothing staged
        assert 'static' in refused(node, 'control_rate_hz', 5.0)
        assert 'static' in refused(node, 'checkpoint_dir', 'elsewhere')
        assert 'range' in refused(node, 'deadline_fraction', 0.0)   # rclpy: out of range
        assert not node.extras.live.pending
    finally:
        node.close()
        node.destroy_node()


def test_planner_refuses_what_its_planner_cannot_serve(context, tmp_path) -> None:
    """Checked against the live policy: train.algo presets and parts the planner lacks."""
    from loop_ros.nodes.planner_node import PlannerNode
    from rclpy.lifecycle import TransitionCallbackReturn
    node = PlannerNode(context=context, parameter_overrides=overrides({
        **TINY_LOOP, 'env_id': 'loop_ros/RCCarCircle-v0', 'autostart': False,
        'train.algo': 'pets', 'checkpoint_dir': str(tmp_path)}))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        reason = refused(node, 'arc.optimizer', 'arc')
        assert "arc.optimizer is fixed to 'cem' by train.algo 'pets'" in reason
        assert "fixed to 'none'" in refused(node, 'arc.value', 'q')
        assert node.set_parameters([Parameter('arc.temperature', value=2.0)])[0].successful
        assert node.get_parameter('arc.optimizer').value == 'arc'   # the file value, unchanged
    finally:
        node.close()
        node.destroy_node()


def test_learner_applies_parameters_between_training_slices(context, tmp_path) -> None:
    import numpy as np
    from loop_ros.nodes.learner_node import LearnerNode
    node = LearnerNode(context=context, parameter_overrides=overrides({
        **TINY_LOOP, 'env_id': 'loop_ros/RCCarCircle-v0', 'updates_per_tick': 0,
        'checkpoint_dir': str(tmp_path / 'ckpt'), 'train.start_steps': 0,
        'train.sac_update_every': 1, 'train.model_train_every': 100000, 'sac.batch_size': 8}))
    try:
        node._stop.set()                 # drive the training slices by hand
        node._trainer.join(timeout=30.0)
        learner = node.learner
        obs_dim, act_dim = learner.obs_dim, learner.act_dim

        def add(n: int) -> None:
            for _ in range(n):
                learner.add(np.zeros(obs_dim), np.zeros(act_dim), 0.0, 0.0, np.zeros(obs_dim),
                            False, False)

        add(20)
        node._tick()
        assert learner.sac.num_updates == 0 and learner.pending_sac_updates == 20   # paused
        result = node.set_parameters_atomically([
            Parameter('updates_per_tick', value=7), Parameter('sac.lr', value=0.005),
            Parameter('train.updates_per_step', value=2.0),
            Parameter('checkpoint_every_steps', value=5)])
        assert result.successful, result.reason
        assert node.cfg.updates_per_tick == 0       # staged until the next slice
        node._tick()
        assert learner.sac.num_updates == 7 and learner.pending_sac_updates == 13
        assert {g['lr'] for g in learner.sac.actor_optim.param_groups} == {0.005}
        assert node.version == 1                    # 20 transitions >= checkpoint_every_steps 5
        add(1)
        assert learner.pending_sac_updates == 13 + 2   # updates_per_step 2
        assert 'does not use it while running' in refused(node, 'arc.temperature', 2.0)
        assert 'static' in refused(node, 'tick_period_s', 0.5)
        assert 'static' in refused(node, 'sac.hidden_sizes', [8, 8])
        assert 'range' in refused(node, 'updates_per_tick', -1)
        node._tick()
        assert learner.sac.num_updates == 14        # 7 per slice, as set
    finally:
        node.close()
        node.destroy_node()


def test_recorder_refuses_every_parameter_with_a_reason(context, tmp_path) -> None:
    from loop_ros.core.node_config import RecorderNodeConfig
    from loop_ros.nodes.recorder_node import RecorderNode
    node = RecorderNode(context=context, parameter_overrides=overrides(
        {'output': str(tmp_path / 'bag'), 'all_transitions': False}))
    try:
        for name, value in [('output', str(tmp_path / 'other')), ('storage', 'mcap'),
                            ('topics', ['x']), ('all_transitions', True),
                            ('flush_period_s', 2.0), ('discovery_period_s', 2.0),
                            ('max_duration_s', 5.0)]:
            reason = refused(node, name, value)
            assert 'static' in reason and 'restart the node' in reason
        assert {n for n, _ in params.iter_parameters(RecorderNodeConfig)} == {
            'output', 'storage', 'topics', 'all_transitions', 'flush_period_s',
            'discovery_period_s', 'max_duration_s'}
        assert node.cfg.flush_period_s == 1.0
    finally:
        node.close()
        node.destroy_node()


def test_sim_bridge_applies_dynamic_and_refuses_static(context) -> None:
    from loop_ros.nodes.sim_bridge_node import SimBridgeNode
    node = SimBridgeNode(context=context, parameter_overrides=overrides(
        {'env_id': 'loop_ros/RCCarCircle-v0', 'wait_for_subscriber_s': 0.0}))
    try:
        period = node._timer.timer_period_ns
        assert node.set_parameters([Parameter('real_time_factor', value=2.0)])[0].successful
        assert node.cfg.real_time_factor == 2.0
        assert node._timer.timer_period_ns == pytest.approx(period / 2, rel=1e-6)
        assert node.set_parameters([Parameter('safe_action_mode', value='hold')])[0].successful
        assert node.cfg.safe_action_mode == 'hold'
        assert 'static' in refused(node, 'env_id', 'InvertedPendulum-v5')
        assert 'static' in refused(node, 'seed', 3)
    finally:
        node.close()
        node.destroy_node()


@pytest.mark.parametrize('node_name', ['planner', 'learner', 'sim_bridge', 'recorder'])
def test_a_misspelt_parameter_stops_the_node_before_it_starts(node_name, tmp_path):
    """An unknown name in a params file or ``-p`` is an error naming it, with a suggestion."""
    import importlib

    from loop_ros.core.config import ConfigError
    from loop_ros.graph import NODE_EXECUTABLES, EXECUTABLES
    module = importlib.import_module(EXECUTABLES[NODE_EXECUTABLES[node_name]])
    cls = {'planner': 'PlannerNode', 'learner': 'LearnerNode', 'sim_bridge': 'SimBridgeNode',
           'recorder': 'RecorderNode'}[node_name]
    typo = {'planner': 'arc.horizn', 'learner': 'updates_per_tik',
            'sim_bridge': 'real_time_factr', 'recorder': 'storag'}[node_name]
    # a parameter of another loop_ros node is let through (a /** section reaches every node)
    shared = {'output': str(tmp_path / 'bag')} if node_name == 'recorder' else {}
    rclpy.init()
    try:
        with pytest.raises(ConfigError, match=rf"no parameter '{typo}' \(did you mean"):
            getattr(module, cls)(parameter_overrides=[
                Parameter(typo, value=1), Parameter('checkpoint_every_steps', value=5),
                *[Parameter(k, value=v) for k, v in shared.items()]])
    finally:
        rclpy.shutdown()
