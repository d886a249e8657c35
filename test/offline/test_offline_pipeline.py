"""Offline LOOP end to end on tiny budgets: dataset bag -> train-offline -> eval-offline.

Behaviour, not shapes: the dataset's bag carries its provenance, the ensemble beats the
"no change" predictor on held-out transitions, the checkpoint loads into the planner side, and
the evaluation runs both controllers on the same unseen resets.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from loop_ros.cli import main
from loop_ros.core.config import DatasetConfig, LoopConfig, OfflineConfig, replace
from loop_ros.io import read_metadata, read_transitions
from loop_ros.offline.dataset import make_dataset, write_dataset
from loop_ros.offline.evaluation import EVAL_SEED_BASE, evaluate_checkpoint, load_offline_policy
from loop_ros.offline.training import train_offline

ENV = 'InvertedPendulum-v5'
TINY = {'sac.hidden_sizes': (32, 32), 'ensemble.hidden_size': 32, 'ensemble.num_layers': 2,
        'ensemble.num_members': 3, 'ensemble.num_elites': 2, 'train.start_steps': 100,
        'arc.num_samples': 16, 'arc.horizon': 3}


@pytest.fixture(scope='module')
def dataset_bags(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp('datasets')
    cfg = replace(LoopConfig(), **{k: v for k, v in TINY.items() if k.startswith(('sac', 'train'))})
    dcfg = DatasetConfig(target_return=1e6, max_steps=400, eval_every=200, eval_episodes=2,
                         size=300)
    datasets = make_dataset(ENV, ('medium', 'medium-replay'), cfg, dcfg, seed=3,
                            log=lambda s: None)
    return {kind: write_dataset(d, out / kind, storage='sqlite3' if kind == 'medium' else 'mcap')
            for kind, d in datasets.items()}


def test_dataset_bags_carry_their_provenance(dataset_bags):
    meta = {k: json.loads(v) for k, v in read_metadata(dataset_bags['medium']).items()}
    assert meta['loop_ros.dataset.env_id'] == ENV
    assert meta['loop_ros.dataset.kind'] == 'medium'
    assert meta['loop_ros.dataset.seed'] == 3
    assert meta['loop_ros.dataset.target_reached'] is False   # 1e6 is out of reach
    assert meta['loop_ros.dataset.sac_steps'] == 400
    medium = read_transitions(dataset_bags['medium'])
    replay = read_transitions(dataset_bags['medium-replay'])
    assert len(medium) == 300 and len(replay) == 400
    # replay holds what SAC collected, in order: next_obs of a non-final step is the next obs
    cont = ~(replay.terminated | replay.truncated)[:-1]
    np.testing.assert_allclose(replay.next_obs[:-1][cont], replay.obs[1:][cont], atol=1e-6)
    # every episode of the bag ends in a terminal or truncated step
    assert replay.terminated[-1] or replay.truncated[-1]
    lengths = np.diff(np.flatnonzero(np.r_[True, replay.step[1:] == 0, True]))
    assert meta['loop_ros.dataset.episodes'] <= len(lengths)


def test_train_offline_then_eval(dataset_bags, tmp_path):
    cfg = replace(LoopConfig(), **TINY)
    ocfg = OfflineConfig(updates=200, batch_size=64, model_epochs=30, seed=1)
    result = train_offline([dataset_bags['medium-replay']], cfg, ocfg, tmp_path / 'run',
                           progress=False, log=lambda s: None)
    ens = result.metrics['ensemble']
    assert result.metrics['env_id'] == ENV   # read from the bag's metadata
    assert ens['heldout_obs_mse'] < ens['no_change_obs_mse']
    assert (tmp_path / 'run' / 'metrics.json').exists()

    policy, env_id, payload = load_offline_policy(result.checkpoint, device='cpu')
    assert env_id == ENV and policy.cfg.train.algo == 'loop-offline'
    assert policy.cfg.arc.prior == 'policy'
    assert payload['start_steps'] == 0   # a planner never explores randomly on it

    ev = evaluate_checkpoint(result.checkpoint, episodes=2, device='cpu', log=lambda s: None)
    assert len(ev.base.returns) == len(ev.loop.returns) == 2
    assert all(r >= 1.0 for r in ev.base.returns + ev.loop.returns)
    assert EVAL_SEED_BASE > 3 * 1_000_000 + 400   # above every seed the dataset used


def test_cli_train_offline_and_eval_offline(dataset_bags, tmp_path, capsys):
    opts = [f'--{k}={",".join(map(str, v)) if isinstance(v, tuple) else v}'
            for k, v in TINY.items() if not k.startswith('train.')]
    assert main(['train-offline', '--bag', str(dataset_bags['medium']), '--out',
                 str(tmp_path / 'run'), '--no-progress', '--offline.updates', '50',
                 '--offline.value_updates', '20', '--offline.model_epochs', '5', '--threads',
                 '1', *opts]) == 0
    ck = tmp_path / 'run' / 'final.pt'
    value = json.loads((tmp_path / 'run' / 'metrics.json').read_text())['value']
    assert value['updates'] == 20 and math.isfinite(value['loss_critic'])
    assert main(['eval-offline', '--checkpoint', str(ck), '--episodes', '1',
                 '--arc.policy_noise', '0.2', '--threads', '1']) == 0
    out = capsys.readouterr().out
    assert '| dataset | env |' in out and '| medium | InvertedPendulum-v5 |' in out
    record = json.loads((tmp_path / 'run' / 'eval.json').read_text())
    assert record['checkpoints'][0]['arc']['policy_noise'] == 0.2


def test_cli_errors_are_one_line_and_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(['train-offline', '--bag', str(tmp_path / 'missing'), '--no-progress'])
    assert exc.value.code == 2
    assert 'loop-ros: error:' in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(['eval-offline', '--checkpoint', str(tmp_path / 'nope.pt')])
    assert exc.value.code == 2


def test_online_training_starts_from_an_offline_checkpoint(dataset_bags, tmp_path):
    import torch
    from loop_ros.core.agent import LoopLearner
    from loop_ros.core.checkpoint import load_checkpoint
    from loop_ros.train import task_of
    cfg = replace(LoopConfig(), **TINY)
    ocfg = OfflineConfig(updates=100, batch_size=64, model_epochs=5, seed=2)
    result = train_offline([dataset_bags['medium']], cfg, ocfg, tmp_path / 'off', progress=False,
                           log=lambda s: None)
    payload = load_checkpoint(result.checkpoint)
    learner = LoopLearner(cfg, 4, 1, task_of(ENV))
    obs = torch.randn(8, 4)
    before = learner.sac.actor.mean_action(obs)
    learner.load_policy_weights(payload)
    after = learner.sac.actor.mean_action(obs)
    policy, _, _ = load_offline_policy(result.checkpoint, device='cpu')
    torch.testing.assert_close(after, policy.sac.actor.mean_action(obs))
    assert not torch.allclose(before, after)
    # the target critic starts equal to the loaded critic (no jump in the first backups)
    for p, q in zip(learner.sac.critic.parameters(), learner.sac.critic_target.parameters()):
        torch.testing.assert_close(p, q)
    opts = [f'--{k}={",".join(map(str, v)) if isinstance(v, tuple) else v}'
            for k, v in TINY.items() if k != 'train.start_steps']
    assert main(['train', '--env', ENV, '--steps', '30', '--init', str(result.checkpoint),
                 '--out', str(tmp_path / 'online'), '--no-progress', '--threads', '1',
                 '--train.eval_every', '0', '--train.eval_episodes', '0',
                 '--train.actor_eval_episodes', '1', *opts]) == 0
    saved = json.loads((tmp_path / 'online' / 'config.json').read_text())
    assert saved['config']['train']['start_steps'] == 0


def test_cli_dataset_writes_one_bag_per_kind_and_never_overwrites(tmp_path, capsys):
    argv = ['dataset', '--env', ENV, '--kind', 'medium', 'medium-replay', '--out',
            str(tmp_path / 'd'), '--storage', 'sqlite3', '--threads', '1',
            '--dataset.max_steps', '150', '--dataset.eval_every', '100',
            '--dataset.eval_episodes', '1', '--dataset.size', '40',
            '--dataset.target_return', '1e6', '--train.start_steps', '50',
            '--sac.hidden_sizes', '16,16']
    assert main(argv) == 0
    assert len(read_transitions(tmp_path / 'd' / 'medium')) == 40
    assert len(read_transitions(tmp_path / 'd' / 'medium-replay')) == 150
    assert 'below the target' in capsys.readouterr().out   # said, and in the metadata
    before = (tmp_path / 'd' / 'medium' / 'metadata.yaml').read_text()
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and 'exists' in capsys.readouterr().err
    assert (tmp_path / 'd' / 'medium' / 'metadata.yaml').read_text() == before
