"""The planner under faults: every failure ends in the safe action on the wire, the node lives on.

Point robot (no gym env: the safe action's "physical" units are the normalised ones), a trained
checkpoint so ticks run ARC, and a peer that feeds observations and records actions.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from loop_ros.msg import Action, Observation, PlanStats  # noqa: E402
from loop_ros.nodes.planner_node import PlannerNode  # noqa: E402
from loop_ros.ros import qos  # noqa: E402
from loop_ros.ros.executor import PooledExecutor  # noqa: E402

pytestmark = pytest.mark.ros

SAFE = [0.25, -0.5]
PLANNER = {
    'env_id': 'example/PointRobot-v0', 'task_module': 'loop_ros.examples.point_robot',
    'sac.hidden_sizes': [16, 16], 'ensemble.num_members': 2, 'ensemble.num_elites': 1,
    'ensemble.hidden_size': 16, 'ensemble.num_layers': 2, 'train.device': 'cpu',
    'control_rate_hz': 20.0, 'autostart': False, 'observation_timeout_s': 2.0,
    'arc.num_samples': 16, 'arc.num_particles': 1, 'arc.num_iterations': 1,
    'arc.num_actor_trajs': 2, 'deadline_fraction': 1.0,
    'safe_action': 'value', 'safe_action_value': SAFE,
}


def _trained_checkpoint(path) -> None:
    from loop_ros.core.agent import LoopLearner
    from loop_ros.core.checkpoint import save_checkpoint
    from loop_ros.core.config import LoopConfig, replace
    from loop_ros.core.tasks import get_task
    import loop_ros.examples.point_robot  # noqa: F401  (registers the task)
    dotted = {k: tuple(v) if isinstance(v, list) else v for k, v in PLANNER.items()
              if k.split('.')[0] in ('sac', 'ensemble', 'train')}
    learner = LoopLearner(replace(LoopConfig(), **dotted), 4, 2,
                          get_task('example/PointRobot-v0'))
    learner.env_steps = 10_000
    state = learner.policy_state()
    state['version'] = 1
    save_checkpoint(path, state, kind='loop_ros.learner')


@pytest.fixture
def rig(tmp_path, feed_observations):
    """(planner, spin(condition, stamp_offset_s), actions, stats) with ARC active."""
    _trained_checkpoint(tmp_path / 'ckpt' / 'policy_000001.pt')
    rclpy.init()
    planner = PlannerNode(parameter_overrides=[Parameter(k, value=v) for k, v in {
        **PLANNER, 'checkpoint_dir': str(tmp_path / 'ckpt')}.items()])
    peer = rclpy.create_node('peer')
    actions: list[Action] = []
    stats: list[PlanStats] = []
    peer.create_subscription(Action, 'action', actions.append, qos.ACTION)
    peer.create_subscription(PlanStats, 'planner/plan_stats', stats.append, qos.STATS)
    obs_pub = peer.create_publisher(Observation, 'observation', qos.OBSERVATION)
    executor = PooledExecutor(2)
    executor.add_node(planner)
    executor.add_node(peer)
    assert planner.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert planner.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert not planner._explore and planner.policy.version == 1

    def spin(condition, timeout_s=10.0, stamp_offset_s=0.0, data=(0.5, -0.2, 0.0, 0.1)
             ) -> bool:
        """Feed observations (stamped ``stamp_offset_s`` from now) until ``condition``."""
        return feed_observations(executor, obs_pub, planner, condition, timeout_s, data,
                                 stamp_offset_s)

    yield planner, spin, actions, stats
    executor.shutdown()
    planner.destroy_node()
    peer.destroy_node()
    rclpy.shutdown()


def _is_safe(msg: Action) -> bool:
    return np.allclose(msg.data, SAFE)


def test_arc_path_and_deadline_fallback(rig):
    planner, spin, actions, stats = rig
    assert spin(lambda: len(stats) >= 3)
    arc = [s for s in stats if not s.deadline_missed]
    assert arc and all(s.iterations == 1 and not s.random_action and s.policy_version == 1
                       and np.isfinite(s.elite_return) for s in arc)
    assert not any(_is_safe(a) for a in actions)
    # a plan that never finishes in time: the actor's action goes out, counted as a miss
    real_act = planner.policy.act

    def slow_act(obs, explore=True, deadline=None):
        time.sleep(0.2)
        return real_act(obs, explore, deadline=deadline)

    planner.policy.act = slow_act
    misses = planner.deadline_misses
    n = len(actions)
    assert spin(lambda: planner.deadline_misses >= misses + 2 and len(actions) > n + 2)
    actor = planner.policy.actor_action(np.array([0.5, -0.2, 0.0, 0.1], np.float32))
    assert any(np.allclose(a.data, actor, atol=1e-6) for a in actions[n:])
    assert any(s.deadline_missed for s in stats)


def test_the_planner_bounds_arc_by_its_tick_deadline(rig):
    """Anytime ARC in the node: every plan gets a deadline no later than the tick's own
    (``deadline_fraction`` of the period after the tick started) less ``deadline_margin_s``,
    and PlanStats reports the iterations ARC ran. The stop rule itself is tested without ROS
    (test/core/test_arc_anytime.py); wall-clock outcomes on a loaded machine are not asserted
    here, only bounds that hold however late a tick starts."""
    planner, spin, actions, stats = rig
    assert spin(lambda: len(stats) >= 2)
    assert all(r.successful for r in planner.set_parameters([
        Parameter('arc.num_iterations', value=3), Parameter('deadline_margin_s', value=0.015)]))
    assert spin(lambda: planner.policy.planner.cfg.num_iterations == 3)   # at a tick start
    real_act = planner.policy.act
    calls: list[tuple[float, float | None]] = []

    def recording_act(obs, explore=True, deadline=None):
        calls.append((time.perf_counter(), deadline))
        return real_act(obs, explore, deadline=deadline)

    planner.policy.act = recording_act
    n = len(stats)
    assert spin(lambda: len(calls) >= 5 and len(stats) >= n + 5)
    budget = planner.cfg.deadline_fraction * planner.period_s - 0.015
    assert all(deadline is not None and deadline - called <= budget + 1e-6
               for called, deadline in calls), calls
    planned = [s for s in stats[n:] if not s.deadline_missed]
    assert planned and all(1 <= s.iterations <= 3 for s in planned)


def test_an_exception_in_a_tick_sends_the_safe_action_and_the_node_lives(rig):
    planner, spin, actions, stats = rig
    assert spin(lambda: len(actions) >= 2)

    def broken(obs, tick_start):
        raise RuntimeError('CUDA error: an illegal memory access was encountered')

    real = planner._plan_with_deadline
    planner._plan_with_deadline = broken
    n = len(actions)
    assert spin(lambda: planner.tick_errors >= 3)
    assert actions[n:] and all(_is_safe(a) for a in actions[n + 1:])
    planner._plan_with_deadline = real   # the next tick plans again
    n = len(actions)
    assert spin(lambda: len(actions) > n + 2 and not _is_safe(actions[-1]))


def test_a_nan_action_is_never_sent(rig):
    planner, spin, actions, stats = rig
    planner._plan_with_deadline = lambda obs, t: (np.array([np.nan, 0.3], np.float32), None,
                                                  False)
    n = len(actions)
    assert spin(lambda: planner.nonfinite_actions >= 2)
    assert all(np.isfinite(a.data).all() for a in actions)
    assert all(_is_safe(a) for a in actions[n + 1:])


def test_an_observation_from_the_future_is_rejected(rig):
    planner, spin, actions, stats = rig
    rejected = planner.extras.status.rejected_messages
    n = len(actions)
    # the only observations come stamped 5 s ahead: none is used, the planner sends the safe
    # action once its last good one is stale
    planner._latest = None
    assert spin(lambda: planner.extras.status.rejected_messages > rejected + 3
                and len(actions) > n + 3, stamp_offset_s=5.0)
    assert planner._latest is None and all(_is_safe(a) for a in actions[n + 1:])


@pytest.mark.parametrize('data', [[np.nan, 0.0, 0.0, 0.0], [0.0, np.inf, 0.0, 0.0],
                                  [0.1, 0.2, 0.3], [0.1] * 5])
def test_malformed_observations_are_refused_and_the_safe_action_follows(rig, data):
    """Only malformed observations arrive: each is refused and counted, none is planned on,
    and once the last good one is stale (observation_timeout_s) the safe action goes out."""
    planner, spin, actions, stats = rig
    assert spin(lambda: len(actions) >= 2)   # planning on good observations
    planner.set_parameters([Parameter('observation_timeout_s', value=0.3)])
    rejected = planner.extras.status.rejected_messages
    n = len(actions)
    spin(lambda: planner.extras.status.rejected_messages > rejected + 5 and len(actions) > n + 8,
         data=data)
    assert planner.extras.status.rejected_messages > rejected + 5
    assert planner.stale_observations > 0 and _is_safe(actions[-1])
    assert all(np.isfinite(a.data).all() for a in actions)


def test_a_nan_model_never_reaches_the_wire(rig):
    """A model that predicts NaN: ARC falls back to the actor (counted), never a NaN action."""
    planner, spin, actions, stats = rig
    model = planner.policy.ensemble
    real = model.predict

    def nan_predict(*args, **kwargs):
        next_obs, reward = real(*args, **kwargs)
        return next_obs * float('nan'), reward

    model.predict = nan_predict
    n = len(actions)
    assert spin(lambda: planner.plan_fallbacks >= 2 and len(actions) > n + 2)
    assert all(np.isfinite(a.data).all() for a in actions)
    actor = planner.policy.actor_action(np.array([0.5, -0.2, 0.0, 0.1], np.float32))
    assert np.allclose(actions[-1].data, np.clip(actor, -1, 1), atol=1e-6)


def test_a_late_plan_with_no_finite_candidate_still_counts(rig):
    """A NaN model whose plans all end after the deadline: every action is the actor's, and the
    plans that found no finite candidate are counted once they end."""
    planner, spin, actions, stats = rig
    model = planner.policy.ensemble
    real_predict, real_act = model.predict, planner.policy.act

    def nan_predict(*args, **kwargs):
        next_obs, reward = real_predict(*args, **kwargs)
        return next_obs * float('nan'), reward

    def slow_act(obs, explore=True, deadline=None):
        time.sleep(0.12)   # past the 50 ms period, and past the next tick's
        return real_act(obs, explore, deadline=deadline)

    model.predict, planner.policy.act = nan_predict, slow_act
    spin(lambda: planner.deadline_misses > 0)
    fallbacks, n = planner.plan_fallbacks, len(actions)
    assert spin(lambda: planner.plan_fallbacks >= fallbacks + 2 and len(actions) > n + 2)
    assert all(np.isfinite(a.data).all() for a in actions)
    actor = planner.policy.actor_action(np.array([0.5, -0.2, 0.0, 0.1], np.float32))
    assert np.allclose(actions[-1].data, np.clip(actor, -1, 1), atol=1e-6)

@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_planner_leaves_the_safe_action_on_the_wire(tmp_path, sig):
    import yaml

    from loop_ros.launcher import child_env

    params = tmp_path / 'planner.yaml'   # dotted names, as the launcher's inline params files
    params.write_text(yaml.safe_dump({'/**': {'ros__parameters': {
        **PLANNER, 'autostart': True, 'checkpoint_dir': str(tmp_path / 'none')}}}))
    log = (tmp_path / 'planner.log').open('w')
    proc = subprocess.Popen([sys.executable, '-m', 'loop_ros.nodes.planner_node', '--ros-args',
                             '--params-file', str(params)], env=child_env(), stdout=log,
                            stderr=subprocess.STDOUT)
    rclpy.init()
    peer = rclpy.create_node('peer')
    actions: list[Action] = []
    peer.create_subscription(Action, 'action', actions.append, qos.ACTION)
    obs_pub = peer.create_publisher(Observation, 'observation', qos.OBSERVATION)

    def spin(condition, timeout_s):
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and not condition():
            msg = Observation(data=[0.5, -0.2, 0.0, 0.1])
            msg.header.stamp = peer.get_clock().now().to_msg()
            obs_pub.publish(msg)
            rclpy.spin_once(peer, timeout_sec=0.02)
        return condition()

    try:
        # with no learner the planner explores: uniform random actions, not the safe one
        assert spin(lambda: len(actions) >= 5, 60.0), (tmp_path / 'planner.log').read_text()
        assert not _is_safe(actions[-1])
        os.kill(proc.pid, sig)
        assert proc.wait(timeout=20) == 0
        spin(lambda: False, 0.5)   # the last message is delivered
    finally:
        if proc.poll() is None:
            proc.kill()
        peer.destroy_node()
        rclpy.shutdown()
        log.close()
    assert _is_safe(actions[-1]), [list(a.data) for a in actions[-3:]]
