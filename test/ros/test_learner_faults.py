"""The learner under bad and heavy input: malformed transitions are refused and counted, a flood
is stored in full, and the node keeps training throughout."""
from __future__ import annotations

import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from rclpy.parameter import Parameter  # noqa: E402
from rclpy.time import Time  # noqa: E402

from loop_ros.msg import TrainStats, Transition  # noqa: E402
from loop_ros.ros import qos  # noqa: E402
from loop_ros.ros.conversions import transition_msg  # noqa: E402
from loop_ros.ros.executor import PooledExecutor  # noqa: E402
from loop_ros.ros.publish import PublishError  # noqa: E402

pytestmark = pytest.mark.ros

LEARNER = {
    'env_id': 'example/PointRobot-v0', 'task_module': 'loop_ros.examples.point_robot',
    'sac.hidden_sizes': [16, 16], 'ensemble.num_members': 2, 'ensemble.num_elites': 1,
    'ensemble.hidden_size': 16, 'ensemble.num_layers': 2, 'ensemble.max_epochs': 2,
    'train.device': 'cpu', 'train.start_steps': 50, 'train.model_train_every': 1000,
    'train.sac_update_every': 10, 'checkpoint_every_steps': 100_000, 'updates_per_tick': 20,
    'tick_period_s': 0.02,
}


@pytest.fixture
def rig(tmp_path, context):
    from loop_ros.nodes.learner_node import LearnerNode
    learner = LearnerNode(context=context, parameter_overrides=[
        Parameter(k, value=v) for k, v in {**LEARNER,
                                           'checkpoint_dir': str(tmp_path / 'ckpt')}.items()])
    peer = rclpy.create_node('feeder', context=context)
    pub = peer.create_publisher(Transition, 'transition', qos.TRANSITION)
    stats: list[TrainStats] = []
    peer.create_subscription(TrainStats, 'learner/train_stats', stats.append, qos.STATS)
    executor = PooledExecutor(2, context=context)
    executor.add_node(learner)
    executor.add_node(peer)

    def spin_until(condition, timeout_s=60.0) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and not condition():
            executor.spin_once(timeout_sec=0.02)
        return condition()

    deadline = time.monotonic() + 10.0
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    yield learner, pub, stats, spin_until
    executor.shutdown()
    learner.close()
    learner.destroy_node()
    peer.destroy_node()


def _good(i: int, source: str = '/robot') -> Transition:
    obs = np.full(4, 0.01 * i)
    return transition_msg(obs, [0.1, -0.1], obs + 0.01, 1.0, 0.0, False, False,
                          Time().to_msg(), 'base_link', 0, i, source=source)


def test_malformed_transitions_are_refused_counted_and_learning_goes_on(rig):
    learner, pub, stats, spin_until = rig
    bad = []
    for field, value in (('obs', [np.nan, 0, 0, 0]), ('next_obs', [0, np.inf, 0, 0]),
                         ('action', [0.1]), ('obs', [0.0] * 5), ('reward', np.nan),
                         ('cost', -np.inf)):
        msg = _good(0)
        setattr(msg, field, value)
        bad.append(msg)
    for i in range(60):
        pub.publish(_good(i))
        if i % 10 == 0:
            pub.publish(bad[(i // 10) % len(bad)])
    assert spin_until(lambda: learner.received == 60 and learner.rejected == 6)
    assert spin_until(lambda: learner.learner.sac.num_updates > 0), 'no SAC update after 60'
    assert spin_until(lambda: stats and stats[-1].rejected_transitions == 6
                      and stats[-1].env_steps == 60)
    assert learner._trainer.is_alive()
    data = learner.learner.buffer.all()
    assert np.isfinite(data.obs.numpy()).all() and np.isfinite(data.reward.numpy()).all()


@pytest.mark.slow
def test_a_flood_of_transitions_is_stored_in_full(rig):
    """5000 transitions as fast as the publisher can: the learner stores every one (a full
    reliable history makes publish() raise on these wheels: the sender waits and resends)."""
    learner, pub, stats, spin_until = rig
    n, i, refused = 5000, 0, 0
    start = time.monotonic()
    while i < n:
        try:
            pub.publish(_good(i, source=f'/robot{i % 3}'))
            i += 1
        except PublishError:
            refused += 1
            spin_until(lambda: False, timeout_s=0.01)
        if i % 200 == 0:
            spin_until(lambda: False, timeout_s=0.001)
    assert spin_until(lambda: learner.learner.env_steps == n, timeout_s=120.0), \
        f'stored {learner.learner.env_steps} of {n} ({refused} publish refusals)'
    assert learner.rejected == 0 and len(learner._streams) == 3
    assert spin_until(lambda: learner.learner.sac.num_updates > 0)
    assert learner._trainer.is_alive()
    print(f'{n} transitions in {time.monotonic() - start:.1f} s, {refused} publish refusals')
