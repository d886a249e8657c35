"""The learner's training schedule (``LoopLearner.add``): when the model retrains."""
from __future__ import annotations

import numpy as np

from loop_ros.core.agent import LoopLearner
from loop_ros.core.config import LoopConfig, replace
from loop_ros.core.tasks import Task

SMALL = {'sac.hidden_sizes': (8, 8), 'ensemble.num_members': 2, 'ensemble.num_elites': 1,
         'ensemble.hidden_size': 8, 'ensemble.num_layers': 2, 'ensemble.max_epochs': 1,
         'train.device': 'cpu', 'train.sac_update_every': 1000}


def _learner(start_steps: int, every: int) -> LoopLearner:
    cfg = replace(LoopConfig(), **SMALL, **{'train.start_steps': start_steps,
                                            'train.model_train_every': every})
    return LoopLearner(cfg, 3, 1, Task(None, start_steps=start_steps))


def _add(learner: LoopLearner, n: int, rng: np.random.Generator) -> None:
    for _ in range(n):
        learner.add(rng.normal(size=3), rng.uniform(-1, 1, 1), 0.0, 0.0, rng.normal(size=3),
                    False, False)


def test_the_model_is_trained_when_planning_starts_before_the_first_retrain() -> None:
    """start_steps 200 < model_train_every 250 (InvertedPendulum's preset): the first planned
    step must not use an untrained model, so a retrain is due at step 200."""
    rng = np.random.default_rng(0)
    learner = _learner(200, 250)
    _add(learner, 199, rng)
    assert not learner.model_due
    _add(learner, 1, rng)
    assert learner.model_due
    learner.train()
    assert learner.model_version == 1 and not learner.model_due
    _add(learner, 50, rng)            # the regular schedule goes on: step 250
    assert learner.model_due
    learner.train()
    _add(learner, 250, rng)           # 500; nothing extra at later multiples of start_steps
    assert learner.model_version == 2 and learner.model_due


def test_no_extra_retrain_when_the_schedule_already_trained() -> None:
    """start_steps 300 > model_train_every 250: the model retrained at 250 already."""
    rng = np.random.default_rng(1)
    learner = _learner(300, 250)
    _add(learner, 250, rng)
    assert learner.model_due
    learner.train()
    _add(learner, 50, rng)            # step 300 = start_steps, model_version 1: nothing due
    assert not learner.model_due and learner.model_version == 1
