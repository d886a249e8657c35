"""Replay bags seed a learner: the buffer, the schedule, rewards left to the task, ``train``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from loop_ros.core.agent import LoopLearner
from loop_ros.core.config import LoopConfig
from loop_ros.core.config import replace
from loop_ros.core.tasks import Task
from loop_ros.io.bags import BagError
from loop_ros.io.bags import TransitionData
from loop_ros.io.bags import write_transitions
from loop_ros.io.replay import load_replay_bags
from loop_ros.io.replay import seed_learner

O, A = 3, 2
TINY = {
    'sac.hidden_sizes': (16, 16), 'sac.batch_size': 8, 'ensemble.num_members': 3,
    'ensemble.num_elites': 2, 'ensemble.hidden_size': 8, 'ensemble.max_epochs': 2,
    'train.model_train_every': 20, 'train.sac_update_every': 10, 'train.start_steps': 30,
    'train.buffer_capacity': 1000, 'train.device': 'cpu',
}


def data_of(n: int, seed: int = 0, streams: int = 1) -> TransitionData:
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, O))
    return TransitionData.from_arrays(obs, rng.uniform(-1, 1, (n, A)), rng.normal(size=n),
                                      obs + 0.1, truncated=np.arange(n) % 25 == 24,
                                      stream=np.arange(n) % streams)


def add_live(learner: LoopLearner, data: TransitionData) -> None:
    for i in range(len(data)):
        learner.add(data.obs[i], data.action[i], float(data.reward[i]), float(data.cost[i]),
                    data.next_obs[i], bool(data.terminated[i]), bool(data.truncated[i]),
                    stream=int(data.stream[i]))


@pytest.mark.parametrize('before, n', [(0, 10), (0, 57), (13, 25), (35, 40)])
def test_seeding_matches_the_live_schedule(before: int, n: int) -> None:
    """Seeding n transitions leaves the schedule where n live ones would (model: due)."""
    cfg = replace(LoopConfig(), **TINY)
    live_part, bag = data_of(before, seed=1), data_of(n, seed=2)
    seeded, live = LoopLearner(cfg, O, A, Task()), LoopLearner(cfg, O, A, Task())
    add_live(seeded, live_part)
    add_live(live, live_part)
    assert seed_learner(seeded, bag) == 1
    add_live(live, bag)
    assert seeded.env_steps == live.env_steps == before + n
    assert seeded.pending_sac_updates == live.pending_sac_updates
    assert seeded.model_due
    for a, b in zip(seeded.buffer.all(), live.buffer.all()):
        assert torch.equal(a, b)


def test_seeded_streams_stay_apart() -> None:
    learner = LoopLearner(replace(LoopConfig(), **TINY), O, A, Task())
    assert seed_learner(learner, data_of(20, streams=3)) == 3
    assert len(learner.buffer) == 20
    assert seed_learner(learner, data_of(0)) == 0


def test_rewards_left_to_the_task(tmp_path: Path) -> None:
    bag = write_transitions(tmp_path / 'bag', data_of(30),
                            metadata={'loop_ros.reward': 'unset'})
    task = Task(reward=lambda o, a, n: n.sum(-1), cost=lambda o, a, n: (a[..., 0] > 0).float(),
                termination=lambda n: n[..., 0] > 1.5)
    seed = load_replay_bags([bag], O, A, task)
    d = seed.data
    assert seed.rewards_from_task == 30
    assert np.allclose(d.reward, d.next_obs.sum(1), atol=1e-5)
    assert np.array_equal(d.cost, (d.action[:, 0] > 0).astype(np.float32))
    assert np.array_equal(d.terminated, d.next_obs[:, 0] > 1.5)
    recorded = write_transitions(tmp_path / 'recorded', data_of(30))
    assert load_replay_bags([recorded], O, A, task).rewards_from_task == 0
    with pytest.raises(BagError, match='the task has no reward function'):
        load_replay_bags([bag], O, A, Task())
    with pytest.raises(BagError, match=r'message 0: obs has 3 values, expected 4 \(obs_dim\)'):
        load_replay_bags([recorded], 4, A, task)


def test_train_cli_replay_bags(tmp_path: Path, capsys: pytest.CaptureFixture,
                               make_random_bag) -> None:
    from loop_ros.cli import main
    bag = make_random_bag(tmp_path / 'bag', 'InvertedPendulum-v5', 120, seed=3)
    cfg = tmp_path / 'tiny.yaml'
    cfg.write_text(
        'sac: {hidden_sizes: [16, 16], batch_size: 16}\n'
        'ensemble: {num_members: 3, num_elites: 2, hidden_size: 16, num_layers: 2, '
        'max_epochs: 3}\n'
        'arc: {horizon: 3, num_samples: 16, num_actor_trajs: 2, num_iterations: 2}\n'
        'train: {start_steps: 100, model_train_every: 50, sac_update_every: 10, eval_every: 0, '
        'eval_episodes: 1, actor_eval_episodes: 1, device: cpu}\n')
    out = tmp_path / 'run'
    assert main(['train', '--env', 'InvertedPendulum-v5', '--steps', '20', '--config', str(cfg),
                 '--out', str(out), '--no-progress', '--threads', '1',
                 '--replay-bags', str(bag)]) == 0
    text = capsys.readouterr().out
    assert 'replayed 120 transitions from 1 bag(s)' in text and 'model retrained' in text
    info = json.loads((out / 'config.json').read_text())
    assert info['replayed_transitions'] == 120 and info['replay_bags'] == [str(bag)]

    other = write_transitions(tmp_path / 'other', data_of(10))   # obs 3, the pendulum has 4
    with pytest.raises(SystemExit) as exit_info:
        main(['train', '--env', 'InvertedPendulum-v5', '--steps', '5', '--config', str(cfg),
              '--out', str(tmp_path / 'run2'), '--no-progress', '--replay-bags', str(other)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert 'loop-ros: error:' in err and 'obs has 3 values, expected 4 (obs_dim)' in err
