"""The learner node starts from replay_bags: its buffer holds them before any live transition,
the planners explore until the model has been retrained on them, and a bag of the wrong sizes is
a configuration error. The bags are generated here."""
from __future__ import annotations

from pathlib import Path
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from rclpy.parameter import Parameter  # noqa: E402

from loop_ros.io.bags import BagError  # noqa: E402
from loop_ros.io.bags import TransitionData  # noqa: E402
from loop_ros.io.bags import write_transitions  # noqa: E402

pytestmark = pytest.mark.ros

TINY_LEARNER = {
    'env_id': 'loop_ros/RCCarCircle-v0', 'tick_period_s': 0.05, 'updates_per_tick': 20,
    'sac.hidden_sizes': [16, 16], 'sac.batch_size': 16, 'ensemble.num_members': 3,
    'ensemble.num_elites': 2, 'ensemble.hidden_size': 16, 'ensemble.num_layers': 2,
    'ensemble.max_epochs': 3, 'train.start_steps': 100, 'train.model_train_every': 500,
    'train.sac_update_every': 10, 'train.device': 'cpu',
}


def test_learner_node_starts_from_replay_bags(tmp_path: Path, make_random_bag) -> None:
    from loop_ros.core.checkpoint import load_checkpoint
    from loop_ros.nodes.learner_node import LearnerNode

    class Probe(LearnerNode):
        def __init__(self, **kwargs) -> None:
            self.announced: list[tuple[int, bool]] = []
            super().__init__(**kwargs)

        def _announce(self, path: str) -> None:
            self.announced.append((self.version, self.explore))
            super()._announce(path)

    bag = make_random_bag(tmp_path / 'bag', 'loop_ros/RCCarCircle-v0', 150)
    rclpy.init()
    try:
        params = {**TINY_LEARNER, 'checkpoint_dir': str(tmp_path / 'ckpt'),
                  'replay_bags': [str(bag)]}
        node = Probe(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        try:
            # before any live transition the buffer holds the bag, counted as env steps
            assert len(node.learner.buffer) == 150 and node.received == 0
            assert node.learner.env_steps == 150 and node.replayed == 150
            assert node.announced[0] == (0, True)   # 150 >= start_steps, but no model yet
            end = time.monotonic() + 60.0
            while len(node.announced) < 2:   # version 1 is announced after its file is written
                assert time.monotonic() < end, 'no checkpoint after the seeded retrain'
                time.sleep(0.05)
            assert node.learner.model_version >= 1 and node.announced[1] == (1, False)
            payload = load_checkpoint(tmp_path / 'ckpt' / 'policy_000001.pt',
                                      kind='loop_ros.learner')
            assert payload['env_steps'] == 150 and np.isfinite(payload['holdout_mse'])
            assert node._stream_base == 1
        finally:
            node.close()
            node.destroy_node()
        other = write_transitions(tmp_path / 'other', TransitionData.from_arrays(
            np.zeros((5, 4)), np.zeros((5, 2)), np.zeros(5), np.zeros((5, 4))))
        params['replay_bags'] = [str(other)]
        # a restart resumes from the state saved at close: the bags are in it, not read again
        resumed = Probe(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        try:
            assert resumed.learner.env_steps == 150 and len(resumed.learner.buffer) == 150
            assert resumed.version == 1 and resumed.announced[0] == (1, False)
        finally:
            resumed.close()
            resumed.destroy_node()
        params['resume'] = False
        with pytest.raises(BagError, match=r'message 0: obs has 4 values, expected 9 '
                           r'\(obs_dim\)'):
            Probe(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    finally:
        rclpy.shutdown()
