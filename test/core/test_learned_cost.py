"""The learned cost head (``ensemble.learn_cost``): safe LOOP on a task without a cost function."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from loop_ros.core.agent import LoopLearner, LoopPolicy
from loop_ros.core.config import LoopConfig, replace
from loop_ros.core.learned_cost import LearnedCost
from loop_ros.core.tasks import Task

OBS, ACT = 4, 2
SMALL = {'sac.hidden_sizes': (16, 16), 'ensemble.num_members': 2, 'ensemble.num_elites': 2,
         'ensemble.hidden_size': 32, 'ensemble.num_layers': 2, 'ensemble.max_epochs': 2,
         'train.device': 'cpu', 'train.start_steps': 10, 'train.model_train_every': 400,
         'train.sac_update_every': 1000, 'arc.num_samples': 16, 'arc.num_actor_trajs': 2,
         'arc.num_particles': 1, 'arc.num_iterations': 2, 'arc.horizon': 3, 'arc.min_feasible': 1}
NO_COST = Task(None, start_steps=10)
"""A task that knows nothing of the constraint: only the buffer's costs do."""


def violated(next_obs: np.ndarray) -> np.ndarray:
    """The hidden constraint: the first coordinate above 1 (about 16% of N(0, 1) states)."""
    return (next_obs[..., 0] > 1.0).astype(np.float32)


def test_the_cost_head_learns_a_rare_violation() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(4000, OBS)), rng.normal(size=(2000, OBS))
    head = LearnedCost(OBS, (32, 32))
    metrics = head.fit(torch.as_tensor(train, dtype=torch.float32),
                       torch.as_tensor(violated(train)), epochs=20)
    assert metrics['cost/recall'] > 0.9
    predicted = head(None, None, torch.as_tensor(test, dtype=torch.float32)).numpy()
    actual = violated(test) > 0.5
    assert predicted.shape == (2000,) and ((predicted >= 0) & (predicted <= 1)).all()
    assert (predicted[actual] > 0.5).mean() > 0.9        # violations recognised
    assert (predicted[~actual] > 0.5).mean() < 0.15      # most safe states called safe
    assert predicted[test[:, 0] < 0.0].max() < 0.5       # far from the boundary: safe


def _learner(learn_cost: bool) -> LoopLearner:
    cfg = replace(LoopConfig(), **SMALL, **{'train.algo': 'safe-loop',
                                            'ensemble.learn_cost': learn_cost})
    return LoopLearner(cfg, OBS, ACT, NO_COST)


def test_safe_loop_without_a_task_cost_needs_the_learned_head() -> None:
    with pytest.raises(ValueError, match='ensemble.learn_cost'):
        LoopPolicy(_learner(False).cfg, OBS, ACT, NO_COST)


def test_the_learner_trains_the_head_and_the_policy_plans_with_it() -> None:
    """The learner fits the head with the model; its weights travel in ``policy_state`` (the
    planner node's path) and the policy's safe ARC counts feasible plans with them."""
    rng = np.random.default_rng(1)
    learner = _learner(True)
    for _ in range(400):
        obs, next_obs = rng.normal(size=OBS), rng.normal(size=OBS)
        learner.add(obs, rng.uniform(-1, 1, ACT), 0.0, float(violated(next_obs)), next_obs,
                    False, False)
    metrics = learner.train()
    assert metrics['cost/recall'] > 0.5 and learner.model_version == 1
    policy = LoopPolicy(learner.cfg, OBS, ACT, NO_COST)
    assert policy.model_signature == learner.model_signature
    assert policy.model_signature != LoopPolicy(
        replace(learner.cfg, **{'ensemble.learn_cost': False, 'arc.cost_limit': -1.0,
                                'train.algo': 'loop'}), OBS, ACT, NO_COST).model_signature
    policy.load_policy_state(learner.policy_state())
    for name, value in learner.cost_model.state_dict().items():
        assert torch.equal(policy.cost_model.state_dict()[name], value)
    probe = torch.tensor([[2.0, 0, 0, 0], [-2.0, 0, 0, 0]])
    assert torch.allclose(policy.cost_model(None, None, probe),
                          learner.cost_model(None, None, probe))
    action, info = policy.act(np.zeros(OBS, dtype=np.float32), explore=False, env_steps=1000)
    assert action.shape == (ACT,) and info.plan is not None
    assert 0 <= info.plan.num_feasible <= SMALL['arc.num_samples'] + SMALL['arc.num_actor_trajs']


def test_a_policy_sharing_the_learners_head_plans_with_it() -> None:
    """``loop-ros train`` shares the learner's networks with its policy: the planner's cost
    must be the learner's (trained) head, not a fresh one."""
    learner = _learner(True)
    policy = LoopPolicy(learner.cfg, OBS, ACT, NO_COST, sac=learner.sac,
                        ensemble=learner.ensemble, cost_model=learner.cost_model)
    assert policy.cost_model is learner.cost_model
    assert policy.planner.task.cost is learner.cost_model
