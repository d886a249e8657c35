"""Seeding a learner's replay buffer from Transition bags (``replay_bags``, ``--replay-bags``).

:func:`load_replay_bags` reads the bags for a learner of known sizes and task;
:func:`seed_learner` puts them into the learner's buffer before any live transition.

Schedule (documented in ``docs/bags.md``): the replayed transitions count as environment steps.
They count toward ``start_steps`` (a robot with enough earlier data does not explore at random
again), the ensemble is marked for a retrain (so the model has seen them before the first
plan), and the SAC updates they make due are those the schedule would have made had they
arrived live (``updates_per_step`` per step past ``start_steps``, in blocks of
``sac_update_every``). ``train.total_steps`` of ``loop-ros train`` still counts live steps.

Bags written by ``loop-ros bag convert`` without a task carry ``loop_ros.reward: unset`` in
their metadata: their reward, cost and termination are computed here with the learner's task
(an error when the task has no reward function).
"""
from __future__ import annotations

from dataclasses import dataclass
import os
from typing import Any, Sequence

import numpy as np
import torch

from loop_ros.core.tasks import Task
from loop_ros.io.bags import BagError
from loop_ros.io.bags import read_metadata
from loop_ros.io.bags import read_transitions
from loop_ros.io.bags import TransitionData

REWARD_KEY = 'loop_ros.reward'
"""custom_data key: 'task' (rewards computed by a task, named in ``loop_ros.task``), 'recorded'
(as published on the graph) or 'unset' (zeros: the learner's task fills them in)."""
REWARD_UNSET = 'unset'


@dataclass(frozen=True)
class ReplaySeed:
    """What :func:`load_replay_bags` read."""

    data: TransitionData
    bags: tuple[str, ...]
    rewards_from_task: int
    """Transitions whose reward, cost and termination the learner's task computed."""


def apply_task(data: TransitionData, task: Task, where: str) -> TransitionData:
    """``data`` with reward, cost and terminated computed by ``task`` (on torch tensors).

    Raises:
        BagError: the task has no reward function (``where`` names the bag).
    """
    if task.reward is None:
        raise BagError(f'{where}: the bag has no rewards ({REWARD_KEY}: {REWARD_UNSET}) and '
                       'the task has no reward function to compute them: convert it with '
                       '--task, or use a task that defines a reward')
    obs, act, nxt = (torch.as_tensor(a) for a in (data.obs, data.action, data.next_obs))
    with torch.no_grad():
        reward = task.reward(obs, act, nxt).cpu().numpy()
        cost = task.cost(obs, act, nxt).cpu().numpy() if task.cost is not None \
            else np.zeros(len(data), np.float32)
        terminated = task.terminated(nxt).cpu().numpy()
    return TransitionData(obs=data.obs, action=data.action, reward=reward, cost=cost,
                          next_obs=data.next_obs, terminated=terminated,
                          truncated=data.truncated & ~terminated, episode=data.episode,
                          step=data.step, stream=data.stream, stamp_ns=data.stamp_ns)


def load_replay_bags(paths: Sequence[str | os.PathLike[str]], obs_dim: int, act_dim: int,
                     task: Task) -> ReplaySeed:
    """Read ``paths`` for a learner with these sizes and task.

    Raises:
        BagError: a bag is bad, its sizes differ from ``obs_dim``/``act_dim`` (the message
            names the bag and the first message), or its rewards are unset and ``task`` cannot
            compute them.
    """
    parts = []
    from_task = 0
    for path in paths:
        part = read_transitions(path, obs_dim=obs_dim, act_dim=act_dim)
        if read_metadata(path).get(REWARD_KEY) == REWARD_UNSET:
            part = apply_task(part, task, str(path))
            from_task += len(part)
        parts.append(part)
    if not parts:
        raise BagError('no replay bags given')
    data = parts[0] if len(parts) == 1 else TransitionData.concat(parts)
    return ReplaySeed(data, tuple(str(p) for p in paths), from_task)


def seed_learner(learner: Any, data: TransitionData) -> int:
    """Put ``data`` into the learner's buffer as if it had arrived now; see the module doc.

    Args:
        learner: a :class:`loop_ros.core.agent.LoopLearner` with an empty schedule backlog.
        data: transitions of the learner's sizes; its streams stay apart from later ones.

    Returns:
        The number of stream ids the replayed data uses: live producers must be numbered from
        it on, so that no live transition becomes the successor of a replayed one.
    """
    n = len(data)
    if n == 0:
        return 0
    learner.buffer.add_batch(data.obs, data.action, data.reward, data.cost, data.next_obs,
                             data.terminated, data.truncated, stream=data.stream)
    before, after = learner.env_steps, learner.env_steps + n
    learner.env_steps = after
    train = learner.cfg.train
    if learner.ensemble is not None:
        learner.model_due = True
    if learner.sac is not None:
        every = train.sac_update_every
        first = max(before + 1, learner.start_steps)
        blocks = after // every - (first - 1) // every if after >= first else 0
        learner.pending_sac_updates += blocks * int(round(every * train.updates_per_step))
    return data.num_streams
