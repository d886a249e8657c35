"""The training schedule, the acting side and every --algo preset, on tiny configs."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from loop_ros.core.agent import ALGORITHMS, LoopLearner, LoopPolicy, SAFE_ALGORITHMS
from loop_ros.core.config import LoopConfig, replace
from loop_ros.core.tasks import Task

TINY = {
    'sac.hidden_sizes': (16, 16), 'sac.batch_size': 8, 'ensemble.num_members': 3,
    'ensemble.num_elites': 2, 'ensemble.hidden_size': 8, 'ensemble.max_epochs': 2,
    'arc.num_samples': 8, 'arc.num_actor_trajs': 2, 'arc.num_particles': 1,
    'arc.num_iterations': 2, 'train.model_train_every': 20, 'train.sac_update_every': 10,
    'train.start_steps': 30, 'train.buffer_capacity': 1000, 'train.device': 'cpu',
}


def tiny(**changes) -> LoopConfig:
    return replace(LoopConfig(), **{**TINY, **changes})


def feed(learner: LoopLearner, n: int, obs_dim: int = 3, act_dim: int = 2) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        obs = rng.normal(size=obs_dim).astype(np.float32)
        learner.add(obs, rng.uniform(-1, 1, act_dim), float(rng.normal()), 0.0,
                    obs + 0.1, False, (i + 1) % 25 == 0)


def test_schedule_retrains_the_model_and_runs_sac_bursts():
    learner = LoopLearner(tiny(), 3, 2, Task())
    feed(learner, 19)
    assert not learner.model_due and learner.pending_sac_updates == 0
    feed(learner, 1)   # 20 steps: model due; SAC still before start_steps (30)
    assert learner.model_due and learner.pending_sac_updates == 0
    metrics = learner.train()
    assert 'model/holdout_mse' in metrics and learner.model_version == 1
    feed(learner, 10)  # 30 steps: first SAC burst of 10 x 1.0
    assert learner.pending_sac_updates == 10
    metrics = learner.train(max_sac_updates=4)   # bounded slices (ROS learner ticks)
    assert learner.pending_sac_updates == 6 and 'loss/critic' in metrics
    learner.train()
    assert learner.pending_sac_updates == 0 and learner.sac.num_updates == 10


def test_updates_per_step_scales_the_bursts():
    learner = LoopLearner(tiny(**{'train.updates_per_step': 0.5}), 3, 2, Task())
    feed(learner, 40)
    assert learner.pending_sac_updates == 10  # bursts at steps 30 and 40, 5 each


def test_policy_explores_randomly_before_start_steps_then_plans():
    cfg = tiny()
    learner = LoopLearner(cfg, 3, 2, Task())
    policy = LoopPolicy(cfg, 3, 2, Task(), sac=learner.sac, ensemble=learner.ensemble)
    obs = np.zeros(3, np.float32)
    action, info = policy.act(obs, explore=True, env_steps=5)
    assert info.random and action.shape == (2,) and np.all(np.abs(action) <= 1)
    action, info = policy.act(obs, explore=True, env_steps=30)
    assert not info.random and info.plan is not None and np.all(np.abs(action) <= 1)


def test_policy_state_round_trip_swaps_weights():
    cfg = tiny()
    learner = LoopLearner(cfg, 3, 2, Task())
    feed(learner, 40)
    learner.train()
    fresh = LoopPolicy(cfg, 3, 2, Task())
    obs = np.ones(3, np.float32)
    before = fresh.actor_action(obs)
    fresh.load_policy_state(learner.policy_state(), version=7)
    after = fresh.actor_action(obs)
    expected = learner.sac.actor.mean_action(torch.ones(3)).detach().numpy()
    assert fresh.version == 7
    assert np.allclose(after, expected) and not np.allclose(before, after)
    assert torch.equal(fresh.ensemble.elites, learner.ensemble.elites)
    with pytest.raises(ValueError, match='dims'):
        LoopPolicy(cfg, 4, 2, Task()).load_policy_state(learner.policy_state())


def test_learner_state_round_trip_resumes_exactly():
    cfg = tiny()
    learner = LoopLearner(cfg, 3, 2, Task())
    feed(learner, 45)
    learner.train()
    clone = LoopLearner(cfg, 3, 2, Task())
    clone.load_state_dict(learner.state_dict())
    assert clone.env_steps == 45 and len(clone.buffer) == len(learner.buffer)
    for a, b in zip(clone.sac.parameters(), learner.sac.parameters()):
        assert torch.equal(a, b)


# What each preset must do in a 60-step run of the TINY schedule: SAC updates (bursts of 10 at
# env steps 30, 40, 50 and 60), ensemble fits (at 20, 40 and 60), the planner settings it acts
# with (None: no planner) and the critic backup (None: no SAC).
PRESET_RUNS = {
    'loop': (40, 3, {'optimizer': 'arc', 'value': 'q', 'prior': 'mixture', 'cost_limit': -1.0},
             'sac'),
    'sac': (40, 0, None, 'sac'),
    'pets': (0, 3, {'optimizer': 'cem', 'value': 'none', 'num_actor_trajs': 0,
                    'explore': 'mean'}, None),
    'loop-cem': (40, 3, {'optimizer': 'cem', 'value': 'q'}, 'sac'),
    'loop-sarsa': (40, 3, {'optimizer': 'arc', 'value': 'q'}, 'sarsa'),
    'loop-offline': (40, 3, {'prior': 'policy', 'value': 'q'}, 'sac'),
    'safe-loop': (40, 3, {'optimizer': 'arc', 'value': 'q', 'explore': 'mean',
                          'cost_limit': 0.2}, 'sac'),
    'safe-pets': (0, 3, {'optimizer': 'cem', 'value': 'none', 'num_actor_trajs': 0,
                         'explore': 'mean', 'cost_limit': 0.2}, None),
}
POLE_COST_RAD = 0.1
"""The safe presets need a task cost; InvertedPendulum gets one: 1 where |pole angle| > 0.1."""


def test_every_algorithm_has_an_expected_run():
    assert sorted(PRESET_RUNS) == sorted(ALGORITHMS)


@pytest.mark.parametrize('algo', sorted(ALGORITHMS))
def test_every_algorithm_preset_trains_end_to_end(algo, tmp_path, monkeypatch):
    """``train()`` with each preset runs the schedule and acts with the preset's planner.

    Spies on the real SAC update, ensemble fit and planner: the number of SAC updates and model
    fits follows the schedule, the training steps after ``start_steps`` are planned (30, with
    exploration) unless the preset has no planner, the evaluation episode is acted by the
    planner step by step (one plan per env step: its return + 1 on InvertedPendulum, where the
    terminal step pays 0), and the planner and critic run with the preset's settings. The safe
    presets plan against a pole-angle cost added to the task.
    """
    from loop_ros.core import agent as agent_module
    from loop_ros.core.arc import ArcPlanner
    from loop_ros.core.ensemble import ProbabilisticEnsemble
    from loop_ros.train import train

    calls = {'sac_update': 0, 'fit': 0, 'plan_explore': 0, 'plan_eval': 0}
    planners, backups = set(), set()
    real_update, real_fit, real_plan = (agent_module.SacAgent.update, ProbabilisticEnsemble.fit,
                                        ArcPlanner.plan)

    def update(self, batch):
        calls['sac_update'] += 1
        backups.add(self.cfg.backup)
        return real_update(self, batch)

    def fit(self, *args, **kwargs):
        calls['fit'] += 1
        return real_fit(self, *args, **kwargs)

    def plan(self, obs, explore=False, deadline=None):
        calls['plan_explore' if explore else 'plan_eval'] += 1
        planners.add(self)
        return real_plan(self, obs, explore=explore, deadline=deadline)

    monkeypatch.setattr(agent_module.SacAgent, 'update', update)
    monkeypatch.setattr(ProbabilisticEnsemble, 'fit', fit)
    monkeypatch.setattr(ArcPlanner, 'plan', plan)
    cfg = tiny(**{'train.algo': algo, 'train.total_steps': 60, 'train.eval_every': 0,
                  'train.eval_episodes': 1, 'train.actor_eval_episodes': 1})
    if algo in SAFE_ALGORITHMS:
        from loop_ros import train as train_module
        pendulum = train_module.task_of('InvertedPendulum-v5')
        pole_cost = lambda s, a, s2: (s2[..., 1].abs() > POLE_COST_RAD).float()  # noqa: E731
        monkeypatch.setattr(train_module, 'task_of', lambda env_id, warn=True:
                            dataclasses.replace(pendulum, cost=pole_cost))
    result = train('InvertedPendulum-v5', cfg, tmp_path, progress=False, log=lambda s: None)

    sac_updates, fits, arc, backup = PRESET_RUNS[algo]
    assert (calls['sac_update'], calls['fit']) == (sac_updates, fits)
    assert backups == ({backup} if backup else set())
    final = result.final_eval
    if arc is None:
        assert calls['plan_explore'] == calls['plan_eval'] == 0 and not planners
        assert np.isnan(final.planner_return) and final.planner_returns == []
    else:
        (planner,) = planners
        assert {k: getattr(planner.cfg, k) for k in arc} == arc
        assert (planner.actor is None) == (algo in ('pets', 'safe-pets'))
        assert calls['plan_explore'] == 30   # env steps 30..59; before them, random actions
        assert len(final.planner_returns) == 1
        assert calls['plan_eval'] - final.planner_returns[0] in (0, 1)
    if backup is None:
        assert np.isnan(final.actor_return) and final.actor_returns == []
    else:
        assert len(final.actor_returns) == 1 and final.actor_returns[0] >= 0
    for name in ('metrics.csv', 'episodes.csv', 'learning_curve.png', 'final.pt', 'config.json'):
        assert (tmp_path / name).stat().st_size > 0


def test_periodic_checkpoints_replay_the_weights_of_their_step(tmp_path):
    """``train.checkpoint_every`` writes ``checkpoints/step_<N>.pt`` with the weights of step N;
    ``loop-ros eval`` runs each checkpoint's actor and planner on the same fresh resets.

    The last periodic checkpoint holds final.pt's weights, so both evaluate to the same returns;
    the first (before any SAC update) differs from them. A ``pets`` checkpoint has no actor and
    a ``sac`` one no planner: each gets only its own controller's episodes.
    """
    import json

    from loop_ros.cli import main
    from loop_ros.core.checkpoint import load_checkpoint
    from loop_ros.train import train

    cfg = tiny(**{'train.total_steps': 60, 'train.eval_every': 0, 'train.eval_episodes': 0,
                  'train.actor_eval_episodes': 0, 'train.checkpoint_every': 20})
    train('InvertedPendulum-v5', cfg, tmp_path, progress=False, log=lambda s: None)
    names = sorted(p.name for p in (tmp_path / 'checkpoints').iterdir())
    assert names == ['step_00000020.pt', 'step_00000040.pt', 'step_00000060.pt']
    first, last, final = (load_checkpoint(tmp_path / path) for path in
                          ('checkpoints/step_00000020.pt', 'checkpoints/step_00000060.pt',
                           'final.pt'))
    assert (first['env_steps'], last['env_steps']) == (20, 60)
    for key in final['actor']:
        assert torch.equal(last['actor'][key], final['actor'][key])
    assert any(not torch.equal(first['actor'][k], final['actor'][k]) for k in final['actor'])

    out = tmp_path / 'eval'
    assert main(['eval', '--checkpoint', str(tmp_path / 'checkpoints/step_00000060.pt'),
                 str(tmp_path / 'final.pt'), '--episodes', '2', '--device', 'cpu',
                 '--threads', '1', '--eval-seed-base', '7000', '--out', str(out)]) == 0
    record = json.loads((out / 'eval.json').read_text())['checkpoints']
    assert [c['env_steps'] for c in record] == [60, 60]
    assert record[0]['reset_seeds'] == record[1]['reset_seeds'] == [7000, 7001]
    assert record[0]['base_returns'] == record[1]['base_returns']
    assert record[0]['loop_returns'] == record[1]['loop_returns']
    assert all(len(c['base_returns']) == len(c['loop_returns']) == 2 for c in record)
    assert 'step_00000060.pt | 60 | 2 |' in (out / 'table.md').read_text()

    for algo, has_actor, has_planner in (('pets', False, True), ('sac', True, False)):
        run = tmp_path / algo
        train('InvertedPendulum-v5', tiny(**{'train.algo': algo, 'train.total_steps': 40,
                                             'train.eval_every': 0, 'train.eval_episodes': 0,
                                             'train.actor_eval_episodes': 0}),
              run, progress=False, log=lambda s: None)
        assert main(['eval', '--checkpoint', str(run / 'final.pt'), '--episodes', '1',
                     '--device', 'cpu', '--threads', '1']) == 0
        (ck,) = json.loads((run / 'eval.json').read_text())['checkpoints']
        assert (len(ck['base_returns']), len(ck['loop_returns'])) == (has_actor, has_planner)
