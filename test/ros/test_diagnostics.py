"""``/diagnostics``: the publisher (name, level, values, wall-clock timer) and the rules."""
from __future__ import annotations

import math
import threading
import time
from types import SimpleNamespace

import pytest

rclpy = pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from loop_ros.ros import node_diagnostics  # noqa: E402
from loop_ros.ros import qos  # noqa: E402
from loop_ros.ros.diagnostics import DiagnosticsPublisher  # noqa: E402
from loop_ros.ros.diagnostics import ERROR  # noqa: E402
from loop_ros.ros.diagnostics import OK  # noqa: E402
from loop_ros.ros.diagnostics import Status  # noqa: E402
from loop_ros.ros.diagnostics import WARN  # noqa: E402
from loop_ros.ros.node_diagnostics import LearnerDiagnostics  # noqa: E402
from loop_ros.ros.node_diagnostics import PlannerDiagnostics  # noqa: E402
from loop_ros.ros.node_diagnostics import RecorderDiagnostics  # noqa: E402
from loop_ros.ros.node_diagnostics import RobotAdapterDiagnostics  # noqa: E402
from loop_ros.ros.node_diagnostics import SimBridgeDiagnostics  # noqa: E402

pytestmark = pytest.mark.ros


class FakeClock:
    """Stands in for ``time.monotonic`` in node_diagnostics (observation and weights ages)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(node_diagnostics.time, 'monotonic', fake)
    return fake


def values(status: Status) -> dict:
    return dict(status.values)


# --- the publisher ---------------------------------------------------------------------------

def test_publishes_on_absolute_diagnostics_with_the_updater_naming(context) -> None:
    """Name '<ns>/<node>: <what>', hardware id, level, values; on a wall-clock timer: simulated
    time never advances here (use_sim_time, no /clock), yet the updates come."""
    node = Node('thing', namespace='/robot0', context=context,
                parameter_overrides=[Parameter('use_sim_time', value=True)])
    peer = Node('peer', context=context)
    got: list[DiagnosticArray] = []
    peer.create_subscription(DiagnosticArray, '/diagnostics', got.append, qos.DIAGNOSTICS)
    calls: list[float] = []

    def status(window_s: float) -> Status:
        calls.append(window_s)
        return Status(WARN, 'because', {'rate (Hz)': 2.5, 'count': 3, 'flag': True,
                                        'names': ['a', 'b'], 'missing': math.nan})

    pub = DiagnosticsPublisher(node, 'widget', status, hardware_id='hw7', period_s=0.1)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(peer)
    end = time.monotonic() + 10.0
    while len(got) < 3 and time.monotonic() < end:
        executor.spin_once(timeout_sec=0.05)
    executor.shutdown()
    assert len(got) >= 3, 'no diagnostics on /diagnostics'
    assert node.get_clock().now().nanoseconds == 0   # sim time stood still all along
    entry = got[-1].status[0]
    assert entry.name == 'robot0/thing: widget' and entry.hardware_id == 'hw7'
    assert entry.level == DiagnosticStatus.WARN and entry.message == 'because'
    assert {kv.key: kv.value for kv in entry.values} == {
        'rate (Hz)': '2.5', 'count': '3', 'flag': 'true', 'names': 'a, b', 'missing': 'nan'}
    assert all(0.0 < w < 2.0 for w in calls[1:])   # each call gets its window
    pub.destroy()
    node.destroy_node()
    peer.destroy_node()


def test_a_failing_status_is_an_error_not_a_dead_timer(context) -> None:
    node = Node('thing', context=context)

    def broken(window_s: float) -> Status:
        raise KeyError('gone')

    pub = DiagnosticsPublisher(node, 'widget', broken)
    msg = pub.update()
    assert msg.status[0].level == DiagnosticStatus.ERROR
    assert 'gone' in msg.status[0].message and msg.status[0].hardware_id == 'none'
    assert msg.status[0].name == 'thing: widget'
    node.destroy_node()


# --- the rules ------------------------------------------------------------------------------

def fake_planner(**kw) -> SimpleNamespace:
    base = dict(ticks=0, deadline_misses=0, stale_observations=0, compute_ms=[], period_s=0.1,
                policy=SimpleNamespace(version=0), cfg=SimpleNamespace(observation_timeout_s=0.5),
                _latest=None, _explore=False, rejected_weights=0,
                _state_machine=SimpleNamespace(current_state=(3, 'active')))
    base.update(kw)
    return SimpleNamespace(**base)


def test_planner_rules(clock) -> None:
    node = fake_planner()
    diag = PlannerDiagnostics(node)
    status = diag(1.0)
    assert status.level == ERROR and 'no observation received yet' in status.message

    node._latest = ('obs', 1)
    node.ticks, node.compute_ms = 10, [4.0] * 9 + [8.0]
    status = diag(1.0)
    assert status.level == OK, status.message
    v = values(status)
    assert v['control rate achieved (Hz)'] == 10.0 and v['max plan time (ms)'] == 8.0
    assert v['mean plan time (ms)'] == pytest.approx(4.4) and v['policy version'] == 0

    clock.now += 1.0
    node._latest = ('obs', 2)
    node.ticks += 10
    node.deadline_misses += 2          # 2 of 10 plans: above 10%
    status = diag(1.0)
    assert status.level == WARN and '2 of 10 plans missed the deadline' in status.message

    clock.now += 1.0
    node._latest = ('obs', 3)
    node.ticks += 20
    node.deadline_misses += 1          # 1 of 20: fine
    node.policy.version = 4            # new weights swapped in
    assert diag(1.0).level == OK
    clock.now += 2.5
    node._latest = ('obs', 4)
    node.ticks += 20
    assert values(diag(2.5))['policy age (s)'] == pytest.approx(2.5)

    clock.now += 3.0                   # the same observation for 3 s > observation_timeout_s
    node.ticks += 20
    node.stale_observations += 5
    status = diag(3.0)
    assert status.level == ERROR and 'no new observation for 3.0 s' in status.message

    clock.now += 1.0
    node._latest = ('obs', 5)
    status = diag(1.0)                 # no tick at all: the control timer stalled
    assert status.level == ERROR and 'did not tick' in status.message

    clock.now += 1.0
    node._latest = ('obs', 6)
    node.ticks += 10
    node.stale_observations += 10      # every tick stale
    assert diag(1.0).level == ERROR

    clock.now += 1.0
    node._latest = ('obs', 7)
    node.ticks += 10
    diag.rejected_messages += 2
    status = diag(1.0)
    assert status.level == WARN and 'rejected 2 malformed messages' in status.message

    node._state_machine = SimpleNamespace(current_state=(2, 'inactive'))
    status = diag(1.0)
    assert status.level == WARN and "'inactive'" in status.message


def fake_learner(**kw) -> SimpleNamespace:
    learner = SimpleNamespace(sac=SimpleNamespace(num_updates=0), env_steps=0, buffer=[],
                              pending_sac_updates=0, model_version=0, last_model_metrics={})
    base = dict(learner=learner, rejected=0, received=0, version=0, explore=True,
                cfg=SimpleNamespace(updates_per_tick=10, tick_period_s=0.1),
                _trainer=SimpleNamespace(is_alive=lambda: True), _stop=threading.Event())
    base.update(kw)
    return SimpleNamespace(**base)


def test_learner_rules(clock) -> None:
    node = fake_learner()
    diag = LearnerDiagnostics(node)
    status = diag(1.0)
    assert status.level == OK and status.message == 'waiting for transitions'

    node.received, node.learner.env_steps, node.learner.buffer = 50, 50, [0] * 50
    node.learner.sac.num_updates, node.version = 200, 1
    node.learner.last_model_metrics = {'model/holdout_mse': 0.25}
    status = diag(2.0)
    v = values(status)
    assert status.level == OK and status.message == 'learning'
    assert v['SAC update rate (updates/s)'] == 100.0 and v['transitions/s'] == 25.0
    assert v['replay size'] == 50 and v['holdout MSE'] == 0.25 and v['checkpoint version'] == 1

    node.rejected = 3                  # rejected transitions grew
    status = diag(1.0)
    assert status.level == WARN and 'rejected 3 malformed transitions' in status.message
    assert diag(1.0).level == OK       # and stopped growing

    node.learner.pending_sac_updates = 1001   # > 10 s at 100 updates/s
    status = diag(1.0)
    assert status.level == WARN and 'SAC falls behind' in status.message
    node.cfg.updates_per_tick = 0
    status = diag(1.0)
    assert status.level == WARN and 'learning paused' in status.message

    node._trainer = SimpleNamespace(is_alive=lambda: False)
    status = diag(1.0)
    assert status.level == ERROR and 'training thread stopped' in status.message
    node._stop.set()                   # a thread that stopped on request is fine
    assert diag(1.0).level == WARN


def test_sim_bridge_rules() -> None:
    done = SimpleNamespace(done=lambda: False)
    node = SimpleNamespace(steps=0, episodes=0, safe_actions=0, rejected_actions=0,
                           dropped_messages=0, sim_clock=SimpleNamespace(seconds=0.0), done=done,
                           cfg=SimpleNamespace(real_time_factor=1.0, max_episodes=0))
    diag = SimBridgeDiagnostics(node)
    status = diag(1.0)
    assert status.level == OK and 'waiting for a transition subscriber' in status.message
    node.steps, node.sim_clock.seconds = 20, 1.0
    status = diag(1.0)
    assert status.level == OK and values(status)['real-time factor achieved'] == 1.0
    node.steps, node.sim_clock.seconds, node.safe_actions = 40, 2.0, 4
    status = diag(1.0)
    assert status.level == WARN and '4 safe actions' in status.message
    node.steps, node.sim_clock.seconds = 50, 2.5   # half the asked real-time factor
    status = diag(1.0)
    assert status.level == WARN and 'real-time factor 0.50 below the asked 1' in status.message
    node.steps, node.sim_clock.seconds, node.rejected_actions = 70, 3.5, 1
    status = diag(1.0)
    assert status.level == WARN and 'rejected 1 malformed actions' in status.message
    assert values(status)['rejected actions (total)'] == 1
    node.done = SimpleNamespace(done=lambda: True)
    assert diag(1.0).level == OK


def test_robot_adapter_rules() -> None:
    from loop_ros.nodes.robot_adapter_node import Phase
    node = SimpleNamespace(phase=Phase.WAITING, episode=-1, step=0, transitions_sent=0,
                           commands_sent=0, command_timeouts=0, rejected_odometry=0,
                           rejected_actions=0, stale_odometry=0, dropped_messages=0,
                           _latest=None)
    diag = RobotAdapterDiagnostics(node)
    status = diag(1.0)
    assert status.level == ERROR and 'no odometry received yet' in status.message
    node._latest, node.phase, node.transitions_sent = object(), Phase.RUNNING, 10
    status = diag(1.0)
    assert status.level == OK and values(status)['control rate achieved (Hz)'] == 10.0
    node.transitions_sent, node.command_timeouts = 20, 1
    status = diag(1.0)
    assert status.level == WARN and '1 command timeouts' in status.message
    node.transitions_sent, node.rejected_actions = 30, 2
    assert 'rejected 2 malformed' in diag(1.0).message
    node.stale_odometry = 1   # worse than the warnings: the base is being stopped
    status = diag(1.0)
    assert status.level == ERROR and 'odometry went stale' in status.message
    assert diag(1.0).level == OK   # per window: nothing new, all well again


def test_recorder_rules(tmp_path) -> None:
    node = SimpleNamespace(counts={}, writer=object(), path=tmp_path / 'bag',
                           wanted={'/transition'}, cfg=SimpleNamespace(storage='sqlite3'))
    diag = RecorderDiagnostics(node)
    status = diag(1.0)
    assert status.level == WARN and 'waiting for publishers of /transition' in status.message
    node.counts = {'/transition': 30, '/robot1/transition': 10}
    status = diag(2.0)
    v = values(status)
    assert status.level == OK and v['messages written'] == 40 and v['messages/s'] == 20.0
    assert v['topics'] == 2 and v['bag path'] == str(tmp_path / 'bag')
    node.writer = None
    assert diag(1.0).level == ERROR


# --- the nodes ------------------------------------------------------------------------------

TINY = {'sac.hidden_sizes': [16, 16], 'ensemble.num_members': 2, 'ensemble.num_elites': 1,
        'ensemble.hidden_size': 16, 'ensemble.num_layers': 2, 'arc.num_samples': 8,
        'arc.num_particles': 1, 'arc.num_iterations': 1, 'arc.num_actor_trajs': 1,
        'train.device': 'cpu'}


def test_every_node_reports(context, tmp_path) -> None:
    """planner, learner, sim_bridge, recorder and robot_adapter each publish a named status."""
    from loop_ros.nodes.learner_node import LearnerNode
    from loop_ros.nodes.planner_node import PlannerNode
    from loop_ros.nodes.recorder_node import RecorderNode
    from loop_ros.nodes.sim_bridge_node import SimBridgeNode

    def params(extra: dict) -> list[Parameter]:
        return [Parameter(k, value=v) for k, v in extra.items()]

    ckpt = {'checkpoint_dir': str(tmp_path / 'ckpt')}
    planner = PlannerNode(context=context, parameter_overrides=params(
        {**TINY, **ckpt, 'autostart': False}))
    learner = LearnerNode(context=context, parameter_overrides=params(
        {**TINY, **ckpt, 'updates_per_tick': 0}))
    bridge = SimBridgeNode(context=context, parameter_overrides=params(
        {'wait_for_subscriber_s': 0.0}))
    recorder = RecorderNode(context=context, parameter_overrides=params(   # nothing to record
        {'output': str(tmp_path / 'bag'), 'topics': ['nothing_here'], 'all_transitions': False}))
    from loop_ros.nodes.robot_adapter_node import RobotAdapterNode
    adapter = RobotAdapterNode(context=context)   # the example diff-drive task, no base yet
    try:
        cases = [(planner.extras.diagnostics, 'planner: control loop', WARN, 'lifecycle state'),
                 (learner.extras.diagnostics, 'learner: training', OK, 'pending SAC updates'),
                 (bridge.diagnostics, 'sim_bridge: simulation', OK, 'real-time factor achieved'),
                 (recorder.diagnostics, 'recorder: recording', WARN, 'messages written'),
                 (adapter.diagnostics, 'robot_adapter: base', ERROR, 'command timeouts (total)')]
        for publisher, name, level, key in cases:
            msg = publisher.update()
            entry = msg.status[0]
            assert entry.name == name
            assert entry.level == bytes([level]), (name, entry.message)
            assert key in {kv.key for kv in entry.values}, name
            assert entry.hardware_id
        assert planner.extras.diagnostics.publisher.topic_name == '/diagnostics'
        assert "'unconfigured'" in planner.extras.diagnostics.update().status[0].message
    finally:
        learner.close()
        recorder.close()
        bridge.close()
        for node in (planner, learner, bridge, recorder, adapter):
            node.destroy_node()
