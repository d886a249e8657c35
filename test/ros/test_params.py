"""loop_ros.ros.params: descriptors, read-back and validated sets, in-process (no spinning)."""
from __future__ import annotations

from dataclasses import dataclass

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


@pytest.fixture
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.shutdown(context=ctx)


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
