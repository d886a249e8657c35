"""Settings a running node changes without a restart: which ones, and applying them (no ROS).

Three kinds of parameters (``docs/ros.md``, "Parameters at run time"):

* **static** (``metadata['static']`` of the config dataclasses): they size networks, buffers or
  the warm-start plan, name files or the device. Read-only on every node: restart it.
* **live** (:func:`live_parameters`): the node applies a new value between two control ticks
  (planner) or training slices (learner), without rebuilding anything.
* the rest: dynamic in the dataclasses (``loop-ros train`` may use them) but not used at run time
  by that node, e.g. ``sac.lr`` on the planner (it trains nothing) or ``arc.*`` on the learner
  (it does not plan). Read-only on that node, so a set is refused instead of silently ignored.

:func:`check_policy_changes` / :func:`apply_policy_changes` and
:func:`apply_learner_changes` apply dotted changes (``{'arc.temperature': 2.0}``) on top of the
configuration an agent runs with, which may differ from the node's parameters (``train.algo``
presets, an offline checkpoint's ``arc.*``): a change touches only the names it sets.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from loop_ros.core.agent import ALGORITHMS
from loop_ros.core.agent import check_algorithm_constraints
from loop_ros.core.agent import LoopLearner
from loop_ros.core.agent import LoopPolicy
from loop_ros.core.config import ArcConfig
from loop_ros.core.config import ConfigError
from loop_ros.core.config import LoopConfig
from loop_ros.core.config import replace
from loop_ros.core.config import static_changes
from loop_ros.core.node_config import LOOP_GROUPS
from loop_ros.core.node_config import NODE_PARAMETERS

PLANNER_LIVE: frozenset[str] = frozenset(
    f'arc.{f.name}' for f in dataclasses.fields(ArcConfig) if not f.metadata.get('static'))
"""Every non-static ``arc.*`` setting: they change how candidates are sampled, scored and refit,
never a network (``ArcPlanner.reconfigure``)."""

LEARNER_LIVE: frozenset[str] = frozenset({
    'sac.lr', 'sac.gamma', 'sac.tau', 'sac.batch_size', 'sac.autotune_alpha',
    'sac.target_entropy_scale',
    'ensemble.lr', 'ensemble.batch_size', 'ensemble.holdout_ratio', 'ensemble.max_holdout',
    'ensemble.patience', 'ensemble.improvement_threshold', 'ensemble.max_epochs',
    'ensemble.weight_decay_scale',
    'train.model_train_every', 'train.sac_update_every', 'train.updates_per_step',
})
"""What the learner reads at every update, retrain or stored transition (``SacAgent.reconfigure``,
``ProbabilisticEnsemble.reconfigure``, the schedule of ``LoopLearner.add``). Not live there:
``train.start_steps`` (fixed when the learner starts, planners follow its announcements),
``train.total_steps``/``eval_*``/``seed`` (``loop-ros train`` only) and every ``arc.*``."""

LIVE_LOOP_PARAMETERS: dict[str, frozenset[str]] = {'planner': PLANNER_LIVE,
                                                   'learner': LEARNER_LIVE}
"""Node name -> the ``LoopConfig`` parameters it applies at run time."""


def node_level_live(node_name: str) -> frozenset[str]:
    """The non-static fields of the node's own group (``NODE_PARAMETERS[node]['']``)."""
    cfg_type = NODE_PARAMETERS[node_name]['']
    return frozenset(f.name for f in dataclasses.fields(cfg_type)
                     if not f.metadata.get('static'))


def node_groups_live(node_name: str) -> frozenset[str]:
    """The non-static fields of the node's groups outside ``LoopConfig`` (``constraints.*``)."""
    groups = NODE_PARAMETERS[node_name]
    return frozenset(f'{prefix}.{f.name}' for prefix, cfg_type in groups.items()
                     if prefix and prefix not in LOOP_GROUPS
                     for f in dataclasses.fields(cfg_type) if not f.metadata.get('static'))


def live_parameters(node_name: str) -> frozenset[str]:
    """Every parameter ``node_name`` applies at run time; all its others are read-only."""
    return (node_level_live(node_name) | node_groups_live(node_name)
            | LIVE_LOOP_PARAMETERS.get(node_name, frozenset()))


def group_changes(changes: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The dotted changes of one parameter group (``'constraints'``)."""
    return {k: v for k, v in changes.items() if k.partition('.')[0] == prefix}


def split_changes(changes: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(node-level, LoopConfig)`` parts of dotted changes; other names are dropped."""
    own = {k: v for k, v in changes.items() if '.' not in k}
    loop = {k: v for k, v in changes.items() if k.partition('.')[0] in LOOP_GROUPS}
    return own, loop


def _changed_config(cfg: LoopConfig, changes: Mapping[str, Any], groups: tuple[str, ...],
                    who: str) -> LoopConfig:
    """``cfg`` with ``changes`` applied; ValueError for names outside ``groups`` or forced ones."""
    outside = sorted(k for k in changes if k.partition('.')[0] not in groups)
    if outside:
        raise ValueError(f'{", ".join(outside)}: not applied at run time by the {who}')
    forced = ALGORITHMS.get(cfg.train.algo, {})
    fixed = sorted(k for k, v in changes.items() if k in forced and v != forced[k])
    if fixed:
        raise ValueError(', '.join(f'{k} is fixed to {forced[k]!r}' for k in fixed)
                         + f" by train.algo '{cfg.train.algo}'")
    try:
        new = replace(cfg, **{k: tuple(v) if isinstance(v, list) else v
                              for k, v in changes.items()})
    except (ConfigError, TypeError) as exc:
        raise ValueError(str(exc)) from None
    check_algorithm_constraints(new)
    return new


def check_policy_changes(policy: LoopPolicy, changes: Mapping[str, Any]) -> LoopConfig:
    """The policy's configuration with ``changes`` (``arc.*`` only); ValueError with the reason.

    Refused: names outside ``arc.*``, values a ``train.algo`` preset fixes (PETS:
    ``arc.optimizer='cem'``; safe LOOP/PETS: ``arc.cost_limit >= 0``), static ``arc.*`` fields,
    and settings the planner cannot serve
    (``arc.value='q'`` without a critic, ``arc.cost_limit >= 0`` on a task without a cost).
    """
    new = _changed_config(policy.cfg, changes, ('arc',), 'planner')
    if policy.planner is not None:
        policy.planner.check_reconfigure(new.arc)
    return new


def apply_policy_changes(policy: LoopPolicy, changes: Mapping[str, Any]) -> LoopConfig:
    """Apply ``changes`` to the policy between two plans (see :func:`check_policy_changes`)."""
    new = check_policy_changes(policy, changes)
    if policy.planner is not None:
        policy.planner.reconfigure(new.arc)
    policy.cfg = new
    return new


LEARNER_FIXED_TRAIN = ('buffer_capacity', 'algo', 'device', 'start_steps')
"""``train.*`` fields a running learner keeps (sizes, agent, device, the exploration phase)."""


def check_learner_changes(learner: LoopLearner, changes: Mapping[str, Any]) -> LoopConfig:
    """The learner's configuration with ``changes``; ValueError with the reason (nothing changes).

    Refused: names outside ``sac.*``, ``ensemble.*`` and ``train.*``, values a ``train.algo``
    preset fixes, static fields (network sizes, ...) and :data:`LEARNER_FIXED_TRAIN`.
    """
    new = _changed_config(learner.cfg, changes, ('sac', 'ensemble', 'train'), 'learner')
    fixed = static_changes(learner.cfg.sac, new.sac, 'sac') + static_changes(
        learner.cfg.ensemble, new.ensemble, 'ensemble') + [
        f'train.{n}' for n in LEARNER_FIXED_TRAIN
        if getattr(new.train, n) != getattr(learner.cfg.train, n)]
    if fixed:
        raise ValueError(f'{", ".join(fixed)}: fixed while the learner runs, restart it')
    return new


def apply_learner_changes(learner: LoopLearner, changes: Mapping[str, Any]) -> LoopConfig:
    """Apply ``sac.*``, ``ensemble.*`` and ``train.*`` changes between two training slices.

    SAC and the ensemble take their new settings through their ``reconfigure`` (optimiser
    learning rates included); the schedule (``train.*``) is read by the next ``add``. Raises
    ValueError (see :func:`check_learner_changes`); nothing changes then.
    """
    new = check_learner_changes(learner, changes)
    if learner.sac is not None:
        learner.sac.reconfigure(new.sac)
    if learner.ensemble is not None:
        try:
            learner.ensemble.reconfigure(new.ensemble)
        except ValueError:
            if learner.sac is not None:   # keep the two consistent
                learner.sac.reconfigure(learner.cfg.sac)
            raise
    learner.cfg = new
    return new
