"""CRR (the offline base policy): advantage weighting beats imitation on mixed-quality data."""
from __future__ import annotations

import torch

from loop_ros.core.config import OfflineConfig
from loop_ros.core.crr import CrrAgent
from loop_ros.core.networks import LOG_STD_MAX
from loop_ros.offline.training import OfflineBatch

BEST = 0.5


def bandit_batch(n: int, generator: torch.Generator) -> OfflineBatch:
    """One-step episodes: uniform actions, reward -(a - 0.5)^2, every step terminal."""
    obs = torch.randn(n, 3, generator=generator)
    action = torch.rand(n, 1, generator=generator) * 2.0 - 1.0
    return OfflineBatch(obs=obs, action=action, reward=-(action[:, 0] - BEST) ** 2,
                        next_obs=torch.randn(n, 3, generator=generator),
                        terminated=torch.ones(n))


def train(cfg: OfflineConfig, updates: int = 1500) -> CrrAgent:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    agent = CrrAgent(3, 1, (64, 64), cfg)
    for _ in range(updates):
        agent.update(bandit_batch(128, gen))
    return agent


def test_crr_prefers_the_better_actions_of_a_uniform_dataset():
    # behaviour cloning of uniform actions gives mean ~0; CRR's weights move it towards 0.5
    agent = train(OfflineConfig(crr_beta=0.05, actor_lr=1e-3, critic_lr=1e-3))
    action = agent.act(torch.randn(256, 3, generator=torch.Generator().manual_seed(1)))
    assert abs(float(action.mean()) - BEST) < 0.15


def test_binary_weights_also_improve_on_the_behaviour_policy():
    agent = train(OfflineConfig(crr_weight='binary', actor_lr=1e-3, critic_lr=1e-3))
    action = agent.act(torch.randn(256, 3, generator=torch.Generator().manual_seed(1)))
    assert float(action.mean()) > 0.25


def test_critic_learns_the_one_step_value():
    agent = train(OfflineConfig(actor_lr=1e-3, critic_lr=1e-3), updates=800)
    obs = torch.zeros(3, 3)
    action = torch.tensor([[BEST], [-0.5], [-1.0]])
    q = agent.critic.min_q(obs, action).detach()
    assert q[0] > q[1] > q[2]
    assert abs(float(q[0])) < 0.1


def test_advantage_weights_are_clipped_and_positive():
    agent = CrrAgent(3, 1, (16,), OfflineConfig(crr_beta=1e-3, crr_max_weight=7.0))
    w = agent.advantage_weights(torch.randn(64, 3), torch.rand(64, 1) * 2 - 1)
    assert bool((w >= 0).all()) and float(w.max()) <= 7.0


def test_value_updates_evaluate_the_deterministic_actor_not_the_sampling_one():
    """Chain without end, r = -(a - 0.5)^2, gamma 0.5; the actor is tanh(N(0, e^2)).

    Q of the deterministic actor (a' = 0): V = -0.25 / (1 - 0.5) = -0.5. CRR's own target samples
    a' and so values that actor at about -(0.25 + E[a'^2]) / 0.5, well below. The evaluation
    steps must reach the former and leave the actor as it was."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    agent = CrrAgent(3, 1, (64, 64), OfflineConfig(critic_lr=1e-3), gamma=0.5, tau=0.05)
    with torch.no_grad():
        agent.actor.mean_head.weight.zero_()
        agent.actor.mean_head.bias.zero_()
        agent.actor.log_std_head.weight.zero_()
        agent.actor.log_std_head.bias.fill_(LOG_STD_MAX)
    actor_before = {k: v.clone() for k, v in agent.actor.state_dict().items()}

    def batch(n: int) -> OfflineBatch:
        action = torch.rand(n, 1, generator=gen) * 2.0 - 1.0
        return OfflineBatch(obs=torch.randn(n, 3, generator=gen), action=action,
                            reward=-(action[:, 0] - BEST) ** 2,
                            next_obs=torch.randn(n, 3, generator=gen), terminated=torch.zeros(n))

    for _ in range(1500):
        agent.evaluation_update(batch(128))
    obs = torch.randn(64, 3, generator=gen)
    value = agent.critic.min_q(obs, agent.act(obs)).detach()
    assert abs(float(value.mean()) + 0.5) < 0.1
    sampled = agent.actor(obs, with_log_prob=False)[0]
    stochastic_value = float((-(0.25 + (sampled ** 2).mean())) / 0.5)
    assert stochastic_value < -0.9   # the two targets are far apart: the test tells them apart
    assert all(torch.equal(actor_before[k], v) for k, v in agent.actor.state_dict().items())
