"""SAC: the math of its pieces, and that it learns a small task."""
from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from loop_ros.core.config import LoopConfig, SacConfig, replace
from loop_ros.core.math import polyak_update, squashed_gaussian_log_prob
from loop_ros.core.networks import SquashedGaussianActor
from loop_ros.core.sac import SacAgent


def test_squashed_log_prob_matches_torch_distributions(device):
    torch.manual_seed(0)
    mean = torch.randn(64, 3, device=device)
    log_std = torch.rand(64, 3, device=device) - 1.0
    base = torch.distributions.Normal(mean, log_std.exp())
    squashed = torch.distributions.TransformedDistribution(
        base, [torch.distributions.transforms.TanhTransform(cache_size=1)])
    pre_tanh = base.sample()
    action = torch.tanh(pre_tanh)
    expected = squashed.log_prob(action).sum(-1)
    ours = squashed_gaussian_log_prob(mean, log_std, pre_tanh)
    assert torch.allclose(ours, expected, atol=1e-3, rtol=1e-4)


def test_actor_log_prob_is_consistent_with_its_samples(device):
    torch.manual_seed(1)
    actor = SquashedGaussianActor(4, 2, (32, 32)).to(device)
    obs = torch.randn(16, 4, device=device)
    action, log_prob = actor(obs)
    assert action.abs().max() < 1.0
    mean, log_std = actor.distribution(obs)
    pre_tanh = torch.atanh(action.clamp(-1 + 1e-6, 1 - 1e-6))
    assert torch.allclose(squashed_gaussian_log_prob(mean, log_std, pre_tanh), log_prob,
                          atol=1e-2)
    assert torch.equal(actor.mean_action(obs), actor(obs, deterministic=True)[0])


def test_polyak_update_interpolates_and_tau_one_copies():
    a, b = torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)
    start = copy.deepcopy(a)
    polyak_update(a, b, 0.25)
    assert torch.allclose(a.weight, 0.75 * start.weight + 0.25 * b.weight)
    polyak_update(a, b, 1.0)
    assert torch.equal(a.weight, b.weight)


def _batch(device, n=256, obs_dim=3, act_dim=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = lambda *s: torch.randn(*s, generator=g).to(device)  # noqa: E731
    return SimpleNamespace(obs=t(n, obs_dim), action=t(n, act_dim).clamp(-1, 1), reward=t(n),
                           next_obs=t(n, obs_dim), terminated=torch.zeros(n, device=device),
                           next_action=t(n, act_dim).clamp(-1, 1),
                           next_action_valid=torch.ones(n, device=device))


def test_critic_loss_decreases_and_alpha_moves_towards_target(device):
    torch.manual_seed(0)
    agent = SacAgent(3, 2, SacConfig(hidden_sizes=(64, 64)), device)
    batch = _batch(device)
    before = agent.critic_loss(batch).item()
    for _ in range(50):
        metrics = agent.update(batch)
    assert agent.critic_loss(batch).item() < before
    assert np.isfinite(list(metrics.values())).all()
    # entropy starts far above the target -|A| = -2, so alpha must shrink from 1
    assert metrics['sac/alpha'] < 1.0
    assert agent.target_entropy == -2.0


def test_update_keeps_actor_gradients_out_of_the_critic(device):
    """Inside ``update()`` the actor loss writes no critic gradient and moves no critic weight.

    Spies on the real optimisers of one ``update()``: when the actor optimiser steps, the critic's
    gradients must still be exactly those of the critic loss (the actor loss's backward pass
    must not reach them), and the critic's weights after the whole update must be exactly one
    critic-optimiser step on the critic loss alone, computed on a copy of the agent.
    """
    agent = SacAgent(3, 2, SacConfig(hidden_sizes=(32, 32)), device)
    batch = _batch(device)
    for _ in range(3):   # non-zero Adam moments, a trained-looking critic
        agent.update(batch)

    expected = copy.deepcopy(agent)
    torch.manual_seed(1)   # critic_loss samples next actions: the same draws in both
    loss = expected.critic_loss(batch)
    expected.critic_optim.zero_grad(set_to_none=True)
    loss.backward()
    expected.critic_optim.step()

    seen: dict[str, list] = {}
    real_critic_step, real_actor_step = agent.critic_optim.step, agent.actor_optim.step

    def critic_step(*args, **kwargs):
        seen['critic_grads'] = [p.grad.clone() for p in agent.critic.parameters()]
        return real_critic_step(*args, **kwargs)

    def actor_step(*args, **kwargs):
        seen['grads_at_actor_step'] = [None if p.grad is None else p.grad.clone()
                                       for p in agent.critic.parameters()]
        seen['actor_grads'] = [p.grad.clone() for p in agent.actor.parameters()]
        return real_actor_step(*args, **kwargs)

    agent.critic_optim.step, agent.actor_optim.step = critic_step, actor_step
    torch.manual_seed(1)
    agent.update(batch)

    assert 'grads_at_actor_step' in seen, 'update() never stepped the actor optimiser'
    leaked = [i for i, (at_actor, from_critic) in enumerate(
        zip(seen['grads_at_actor_step'], seen['critic_grads']))
        if at_actor is None or not torch.equal(at_actor, from_critic)]
    assert not leaked, f'the actor loss changed the gradients of critic parameters {leaked}'
    assert any(g.abs().sum() > 0 for g in seen['actor_grads'])   # the actor did get gradients
    for got, want in zip(agent.critic.parameters(), expected.critic.parameters()):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert all(p.requires_grad for p in agent.critic.parameters())   # trainable again after


def test_sarsa_backup_uses_the_buffer_action(device):
    torch.manual_seed(0)
    cfg = SacConfig(hidden_sizes=(32, 32), backup='sarsa')
    agent = SacAgent(3, 2, cfg, device)
    batch = _batch(device)
    # the SARSA target must not depend on the actor: perturbing the actor leaves it unchanged
    loss_a = agent.critic_loss(batch).item()
    with torch.no_grad():
        for p in agent.actor.parameters():
            p.add_(1.0)
    assert agent.critic_loss(batch).item() == pytest.approx(loss_a, rel=1e-6)


@pytest.mark.slow
def test_sac_learns_pendulum(tmp_path):
    """SAC alone on Pendulum-v1: the actor's return beats what random play ever averages."""
    from loop_ros.train import train
    cfg = replace(LoopConfig(), **{
        'sac.hidden_sizes': (64, 64), 'train.algo': 'sac', 'train.total_steps': 5000,
        'train.start_steps': 1000, 'train.sac_update_every': 1, 'train.eval_every': 0,
        'train.actor_eval_episodes': 5, 'train.device': 'cpu', 'train.seed': 1})
    result = train('Pendulum-v1', cfg, tmp_path, progress=False, log=lambda s: None)
    # random play on Pendulum-v1 averages about -1200 (single episodes -900 .. -1800)
    assert result.final_eval.actor_return > -400, result.final_eval
    assert (tmp_path / 'learning_curve.png').stat().st_size > 0
    assert (tmp_path / 'final.pt').exists()
