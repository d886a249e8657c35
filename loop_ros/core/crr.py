"""Critic Regularized Regression (Wang et al. 2020): the offline base policy of offline LOOP.

The paper's Table 1 plans around CRR (sec. 4.3). One update, on a minibatch of the dataset:

* critic: twin Q by TD, y = r + gamma (1 - d) min Q'(s', a'), a' ~ pi(.|s');
* actor: weighted regression on the dataset's actions,
  L = -E[f(A(s, a)) log pi(a|s)], A(s, a) = min Q(s, a) - mean_j min Q(s, a_j), a_j ~ pi(.|s)
  (``crr_samples`` of them), f = min(exp(A / beta), max_weight) (``exp``) or 1[A > 0]
  (``binary``);
* Polyak update of the target critic.

The actor and critic are the SAC network classes, so a CRR checkpoint loads into
:class:`loop_ros.core.agent.LoopPolicy` unchanged (actor prior = tanh(mu(s)), value = min Q).
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from loop_ros.core.config import OfflineConfig
from loop_ros.core.math import polyak_update
from loop_ros.core.math import squashed_gaussian_log_prob
from loop_ros.core.networks import SquashedGaussianActor, TwinQ

ACTION_EPS = 1e-5
"""Dataset actions are clipped to [-1 + eps, 1 - eps] before atanh (their log-likelihood under
the squashed Gaussian is finite only inside the open interval)."""


class CrrAgent(nn.Module):
    """Actor, twin critic and target critic trained by CRR on a fixed dataset.

    Shapes:
        obs, next_obs: (B, O); action: (B, A) in [-1, 1]; reward, terminated: (B,)
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes: tuple[int, ...],
                 cfg: OfflineConfig, gamma: float = 0.99, tau: float = 0.005,
                 device: torch.device | str = 'cpu') -> None:
        super().__init__()
        self.cfg, self.gamma, self.tau = cfg, gamma, tau
        self.actor = SquashedGaussianActor(obs_dim, act_dim, hidden_sizes)
        self.critic = TwinQ(obs_dim, act_dim, hidden_sizes)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.to(device)
        self.actor_optim = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_optim = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.num_updates = 0

    def critic_loss(self, batch: Any, deterministic: bool = False) -> torch.Tensor:
        """sum_i E[(Q_i(s, a) - y)^2], y = r + gamma (1 - d) min Q'(s', a'), a' ~ pi(.|s')
        (CRR), or a' = tanh(mu(s')) with ``deterministic`` (evaluation of the executed actor)."""
        with torch.no_grad():
            if deterministic:
                next_action = self.actor.mean_action(batch.next_obs)
            else:
                next_action, _ = self.actor(batch.next_obs, with_log_prob=False)
            next_q = self.critic_target.min_q(batch.next_obs, next_action)
            target = batch.reward + self.gamma * (1.0 - batch.terminated) * next_q
        q1, q2 = self.critic(batch.obs, batch.action)
        return ((q1 - target) ** 2).mean() + ((q2 - target) ** 2).mean()

    @torch.no_grad()
    def advantage_weights(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """f(A(s, a)) for the dataset pairs, (B,)."""
        m = self.cfg.crr_samples
        q = self.critic.min_q(obs, action)
        repeated = obs.unsqueeze(0).expand(m, *obs.shape)                     # (m, B, O)
        sampled, _ = self.actor(repeated, with_log_prob=False)
        value = self.critic.min_q(repeated, sampled).mean(dim=0)
        advantage = q - value
        if self.cfg.crr_weight == 'binary':
            return (advantage > 0).float()
        return (advantage / self.cfg.crr_beta).exp().clamp(max=self.cfg.crr_max_weight)

    def log_likelihood(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """log pi(a|s) of dataset actions under the squashed Gaussian, (B,)."""
        mean, log_std = self.actor.distribution(obs)
        pre_tanh = torch.atanh(action.clamp(-1.0 + ACTION_EPS, 1.0 - ACTION_EPS))
        return squashed_gaussian_log_prob(mean, log_std, pre_tanh)

    def actor_loss(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """-E[f(A(s, a)) log pi(a|s)]; also returns the weights."""
        weights = self.advantage_weights(batch.obs, batch.action)
        return -(weights * self.log_likelihood(batch.obs, batch.action)).mean(), weights

    def update(self, batch: Any) -> dict[str, float]:
        """One critic step, one actor step, Polyak; returns metrics."""
        critic_loss = self.critic_loss(batch)
        self.critic_optim.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optim.step()

        actor_loss, weights = self.actor_loss(batch)
        self.actor_optim.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_optim.step()

        polyak_update(self.critic_target, self.critic, self.tau)
        self.num_updates += 1
        return {'loss/critic': critic_loss.item(), 'loss/actor': actor_loss.item(),
                'crr/mean_weight': weights.mean().item()}

    def evaluation_update(self, batch: Any) -> dict[str, float]:
        """One step of fitted Q evaluation of the final deterministic actor (the actor is
        frozen): the critic moves towards Q of the policy the planner bootstraps with,
        y = r + gamma (1 - d) min Q'(s', tanh(mu(s'))); then Polyak."""
        critic_loss = self.critic_loss(batch, deterministic=True)
        self.critic_optim.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optim.step()
        polyak_update(self.critic_target, self.critic, self.tau)
        return {'loss/critic': critic_loss.item()}

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic policy tanh(mu(s)) (how CRR itself is evaluated)."""
        return self.actor.mean_action(obs)
