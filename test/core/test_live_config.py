"""Run-time reconfiguration (core.live_config, ArcPlanner/SacAgent/ensemble.reconfigure) and the
planner's view for RViz (ArcPlanner.visualise, core.plan_view): no ROS."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from loop_ros.core import live_config
from loop_ros.core.agent import LoopLearner
from loop_ros.core.agent import LoopPolicy
from loop_ros.core.arc import ArcPlanner
from loop_ros.core.config import ArcConfig
from loop_ros.core.config import EnsembleConfig
from loop_ros.core.config import LoopConfig
from loop_ros.core.config import replace
from loop_ros.core.config import SacConfig
from loop_ros.core.config import TrainConfig
from loop_ros.core.node_config import NODE_PARAMETERS
from loop_ros.core.plan_view import integrate_body_twist
from loop_ros.core.plan_view import plan_view
from loop_ros.core.tasks import Task

OBS, ACT = 7, 2
TWIST = (3, 4, 5)   # v_x, v_y, yaw rate entries of the observation
TINY = {'sac.hidden_sizes': (16, 16), 'ensemble.num_members': 3, 'ensemble.num_elites': 2,
        'ensemble.hidden_size': 16, 'ensemble.num_layers': 2, 'arc.horizon': 4,
        'arc.num_samples': 12, 'arc.num_actor_trajs': 2, 'arc.num_particles': 2,
        'arc.num_iterations': 2}


def tiny(**changes) -> LoopConfig:
    return replace(LoopConfig(), **{**TINY, **changes})


def policy(device, task: Task | None = None, **changes) -> LoopPolicy:
    task = task or Task(body_twist_indices=TWIST, obs_dim=OBS, act_dim=ACT, dt=0.1)
    return LoopPolicy(tiny(**changes), OBS, ACT, task, device, seed=0)


def test_live_sets_are_dynamic_declared_fields() -> None:
    for node, names in live_config.LIVE_LOOP_PARAMETERS.items():
        fields = {f'{prefix}.{f.name}': f for prefix, t in NODE_PARAMETERS[node].items() if prefix
                  for f in dataclasses.fields(t)}
        assert names <= set(fields), names - set(fields)
        assert not [n for n in names if fields[n].metadata.get('static')]
    assert 'arc.temperature' in live_config.live_parameters('planner')
    assert 'arc.num_samples' in live_config.live_parameters('planner')
    assert 'arc.horizon' not in live_config.live_parameters('planner')      # static
    assert 'sac.lr' not in live_config.live_parameters('planner')   # it trains nothing
    assert 'deadline_fraction' in live_config.live_parameters('planner')
    assert 'control_rate_hz' not in live_config.live_parameters('planner')  # static
    assert {'updates_per_tick', 'checkpoint_every_steps', 'sac.lr'} <= \
        live_config.live_parameters('learner')
    assert not [n for n in live_config.live_parameters('learner') if n.startswith('arc.')]
    assert live_config.live_parameters('recorder') == frozenset()
    constraints = {'constraints.boundary_radius', 'constraints.circles', 'constraints.polygons'}
    assert constraints <= live_config.live_parameters('planner')
    assert live_config.live_parameters('sim_bridge') == {
        'real_time_factor', 'action_timeout_s', 'safe_action_mode', 'max_episodes',
        *constraints}


def test_arc_reconfigure_changes_sampling_not_shapes(device) -> None:
    pol = policy(device)
    obs = np.zeros(OBS, np.float32)
    pol.act(obs, explore=True)
    arc = pol.planner
    assert arc._last[0].shape[0] == 12 + 2
    live_config.apply_policy_changes(pol, {'arc.num_samples': 5, 'arc.num_actor_trajs': 1,
                                           'arc.num_particles': 3, 'arc.temperature': 4.0,
                                           'arc.scoring': 'reference'})
    assert pol.cfg.arc.num_samples == 5 and arc.cfg.temperature == 4.0
    assert arc.num_candidates == 6 and arc.num_actor_trajs == 1
    assert arc._reward_weights.tolist() == [1.0, 1.0, 1.0, 0.0]   # t < H-1, undiscounted
    action, info = pol.act(obs, explore=True)
    assert arc._last[0].shape == (6, 4, ACT) and arc._last[0].device.type == device.type
    assert np.all(np.abs(action) <= 1.0)
    # refused: nothing changes
    for changes, reason in [({'arc.horizon': 5}, 'static'),
                            ({'arc.cost_limit': 1.0}, 'cost function'),
                            ({'sac.lr': 0.1}, 'not applied at run time by the planner'),
                            ({'arc.temperature': -1.0}, 'temperature')]:
        with pytest.raises(ValueError, match=reason):
            live_config.apply_policy_changes(pol, changes)
    assert pol.cfg.arc.temperature == 4.0 and arc.cfg.horizon == 4


def test_algorithm_presets_win_and_missing_parts_are_refused(device) -> None:
    pets = policy(device, **{'train.algo': 'pets'})
    with pytest.raises(ValueError, match="arc.optimizer is fixed to 'cem' by train.algo 'pets'"):
        live_config.check_policy_changes(pets, {'arc.optimizer': 'arc'})
    live_config.check_policy_changes(pets, {'arc.optimizer': 'cem', 'arc.temperature': 2.0})
    arc = ArcPlanner(ArcConfig(value='none', num_samples=4, num_actor_trajs=0), OBS, ACT,
                     pets.ensemble, device=device)
    with pytest.raises(ValueError, match="value='q' needs both an actor and a critic"):
        arc.reconfigure(dataclasses.replace(arc.cfg, value='q'))
    assert arc.cfg.value == 'none'


def test_learner_changes_reach_optimisers_and_schedule(device) -> None:
    task = Task(obs_dim=OBS, act_dim=ACT, start_steps=0)
    learner = LoopLearner(tiny(**{'train.sac_update_every': 1}), OBS, ACT, task, device)
    live_config.apply_learner_changes(learner, {
        'sac.lr': 0.0123, 'ensemble.lr': 0.0456, 'ensemble.weight_decay_scale': 0.0,
        'train.updates_per_step': 3.0, 'sac.target_entropy_scale': 2.0})
    assert {g['lr'] for o in (learner.sac.actor_optim, learner.sac.critic_optim,
                              learner.sac.alpha_optim) for g in o.param_groups} == {0.0123}
    assert {g['lr'] for g in learner.ensemble.optimizer.param_groups} == {0.0456}
    assert learner.ensemble.decays == (0.0,) * len(learner.ensemble.decays)
    assert learner.sac.target_entropy == -2.0 * ACT
    learner.add(np.zeros(OBS), np.zeros(ACT), 0.0, 0.0, np.zeros(OBS), False, False)
    assert learner.pending_sac_updates == 3   # the new update-to-data ratio
    for changes, reason in [({'sac.hidden_sizes': [8]}, 'fixed while the learner runs'),
                            ({'ensemble.num_members': 4}, 'fixed while the learner runs'),
                            ({'train.start_steps': 10}, 'train.start_steps'),
                            ({'arc.temperature': 2.0}, 'not applied at run time by the learner')]:
        with pytest.raises(ValueError, match=reason):
            live_config.apply_learner_changes(learner, changes)
    with pytest.raises(ValueError, match='static'):
        learner.sac.reconfigure(dataclasses.replace(learner.sac.cfg, init_alpha=0.5))
    with pytest.raises(ValueError, match='static'):
        learner.ensemble.reconfigure(dataclasses.replace(EnsembleConfig(), num_members=3,
                                                         num_elites=2, hidden_size=17,
                                                         num_layers=2))
    assert learner.cfg.sac.lr == 0.0123 and isinstance(learner.cfg.sac, SacConfig)
    assert isinstance(learner.cfg.train, TrainConfig)


def test_integrate_body_twist_matches_the_step_by_step_integration(device) -> None:
    gen = torch.Generator().manual_seed(0)
    states = torch.randn(5, 6, OBS, generator=gen).to(device)
    poses = integrate_body_twist(states, TWIST, 0.1)
    assert poses.shape == (5, 6, 3) and poses.device.type == device.type
    ref = np.zeros((5, 6, 3))
    s = states.cpu().numpy()
    for t in range(1, 6):
        x, y, yaw = ref[:, t - 1].T
        vx, vy, w = s[:, t - 1, 3], s[:, t - 1, 4], s[:, t - 1, 5]
        ref[:, t] = np.stack([x + (vx * np.cos(yaw) - vy * np.sin(yaw)) * 0.1,
                              y + (vx * np.sin(yaw) + vy * np.cos(yaw)) * 0.1,
                              yaw + w * 0.1], axis=-1)
    np.testing.assert_allclose(poses.cpu().numpy(), ref, atol=1e-5)


def test_plan_view_best_and_worst_candidates_and_members(device) -> None:
    pol = policy(device)
    obs = np.linspace(-0.5, 0.5, OBS).astype(np.float32)
    assert plan_view(pol, obs, 0.1) is None   # nothing planned yet
    pol.act(obs, explore=False)
    view = plan_view(pol, obs, 0.1, num_best=3, num_worst=2)
    assert view.candidate_poses.shape == (5, 5, 3)                 # K, H+1, (x, y, yaw)
    assert view.member_poses.shape == (2, 5, 3)                    # the elites
    assert isinstance(view.candidate_scores, np.ndarray)
    scores = pol.planner._last[1].cpu().numpy()
    expected = np.concatenate([np.sort(scores)[::-1][:3], np.sort(scores)[:2][::-1]])
    np.testing.assert_allclose(view.candidate_scores, expected, rtol=1e-5)
    assert np.all(view.candidate_poses[:, 0] == 0.0)              # every path starts at the robot
    # the members' executed plan is the planner's own imagination, member by member
    mean_states = pol.planner.imagine_plan(torch.as_tensor(obs))
    per_member = pol.planner.visualise(torch.as_tensor(obs, device=device)).member_states
    torch.testing.assert_close(per_member.mean(dim=0), mean_states, atol=1e-5, rtol=1e-5)
    # more shown than exist: every candidate once
    assert plan_view(pol, obs, 0.1, num_best=50, num_worst=50).candidate_poses.shape[0] == 14
    # no planar base, or no planner: nothing to draw
    flat = policy(device, task=Task(obs_dim=OBS, act_dim=ACT))
    flat.act(obs, explore=False)
    assert plan_view(flat, obs, 0.1) is None
    assert plan_view(policy(device, **{'train.algo': 'sac'}), obs, 0.1) is None


def test_plan_view_keeps_tensors_on_the_device_until_one_transfer(device, monkeypatch) -> None:
    pol = policy(device)
    obs = np.zeros(OBS, np.float32)
    pol.act(obs, explore=False)
    transfers = []
    original = torch.Tensor.cpu

    def counting_cpu(self, *args, **kwargs):
        transfers.append(tuple(self.shape))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, 'cpu', counting_cpu)
    view = plan_view(pol, obs, 0.1, num_best=2, num_worst=1)
    assert view is not None
    assert len(transfers) == 1, transfers   # the packed result, nothing before it


def test_docs_list_exactly_the_live_parameters() -> None:
    """docs/ros.md, "Parameters at run time": each node's row names what it applies live."""
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parents[2] / 'docs' / 'ros.md').read_text()
    section = text[text.index('### Parameters at run time'):]
    rows = {m.group(1): set(re.findall(r'`([\w.]+)`', m.group(2)))
            for m in re.finditer(r'^\| (\w+) \| (.*?) \|', section, re.M)}
    for node in ('sim_bridge', 'planner', 'learner', 'recorder'):
        assert rows[node] == set(live_config.live_parameters(node)), node
