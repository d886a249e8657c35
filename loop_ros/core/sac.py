"""Soft actor-critic (Haarnoja et al. 2018), the "learning off-policy" half of LOOP (sec. 4.1).

Follows the reference's spinning-up SAC (spec sec. 1): twin Q, automatic entropy tuning with
alpha_0 = 1, update order critic -> actor -> alpha -> Polyak. ``backup='sarsa'`` gives the
LOOP-SARSA baseline: the target bootstraps from the buffer's next action instead of a' ~ pi.
"""
from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from loop_ros.core.config import check_static_unchanged
from loop_ros.core.config import SacConfig
from loop_ros.core.math import polyak_update
from loop_ros.core.networks import SquashedGaussianActor, TwinQ


class SacAgent(nn.Module):
    """Actor, twin critic, target critic and temperature, with their optimisers.

    Shapes:
        obs: (B, O); action: (B, A) in [-1, 1]; reward, terminated: (B,)
    """

    def __init__(self, obs_dim: int, act_dim: int, cfg: SacConfig,
                 device: torch.device | str = 'cpu') -> None:
        super().__init__()
        self.cfg = cfg
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.actor = SquashedGaussianActor(obs_dim, act_dim, cfg.hidden_sizes)
        self.critic = TwinQ(obs_dim, act_dim, cfg.hidden_sizes)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(cfg.init_alpha)))
        self.target_entropy = -cfg.target_entropy_scale * act_dim
        self.to(device)
        self.actor_optim = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)
        self.critic_optim = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr)
        self.alpha_optim = torch.optim.Adam([self.log_alpha], lr=cfg.lr)
        self.num_updates = 0

    @property
    def device(self) -> torch.device:
        return self.log_alpha.device

    def reconfigure(self, cfg: SacConfig) -> None:
        """Train with ``cfg`` from the next :meth:`update` on (lr, gamma, tau, batch, alpha).

        Static fields (``SacConfig`` metadata: network sizes, backup, initial alpha) must stay;
        ValueError names them otherwise and nothing changes. The learning rate is set in every
        optimiser; their moment estimates are kept.
        """
        check_static_unchanged(self.cfg, cfg, 'sac', 'the agent')
        self.cfg = cfg
        self.target_entropy = -cfg.target_entropy_scale * self.act_dim
        for optim in (self.actor_optim, self.critic_optim, self.alpha_optim):
            for group in optim.param_groups:
                group['lr'] = cfg.lr

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp().detach()

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """a ~ pi(.|s), or tanh(mu(s)) when deterministic."""
        return self.actor(obs, deterministic=deterministic, with_log_prob=False)[0]

    def critic_loss(self, batch: Any) -> torch.Tensor:
        """sum_i E[(Q_i(s,a) - y)^2], y = r + gamma (1-d) (min Q'(s',a') - alpha log pi(a'|s'))."""
        with torch.no_grad():
            next_action, next_log_prob = self.actor(batch.next_obs)
            entropy_bonus = -self.alpha * next_log_prob
            if self.cfg.backup == 'sarsa':
                valid = batch.next_action_valid.bool().unsqueeze(-1)
                next_action = torch.where(valid, batch.next_action, next_action)
                entropy_bonus = torch.zeros_like(entropy_bonus)
            next_q = self.critic_target.min_q(batch.next_obs, next_action) + entropy_bonus
            target = batch.reward + self.cfg.gamma * (1.0 - batch.terminated) * next_q
        q1, q2 = self.critic(batch.obs, batch.action)
        return ((q1 - target) ** 2).mean() + ((q2 - target) ** 2).mean()

    def actor_loss(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """E[alpha log pi(a|s) - min Q(s, a)], a ~ pi reparameterised; also returns log pi."""
        action, log_prob = self.actor(batch.obs)
        q = self.critic.min_q(batch.obs, action)
        return (self.alpha * log_prob - q).mean(), log_prob.detach()

    def alpha_loss(self, log_prob: torch.Tensor) -> torch.Tensor:
        """-E[log alpha * (log pi + target entropy)]."""
        return -(self.log_alpha * (log_prob + self.target_entropy)).mean()

    def update(self, batch: Any) -> dict[str, float]:
        """One gradient step of critic, actor and temperature, then Polyak; returns metrics."""
        critic_loss = self.critic_loss(batch)
        self.critic_optim.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optim.step()

        self.critic.requires_grad_(False)  # the actor step must not write critic gradients
        actor_loss, log_prob = self.actor_loss(batch)
        self.actor_optim.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_optim.step()
        self.critic.requires_grad_(True)

        metrics = {'loss/critic': critic_loss.item(), 'loss/actor': actor_loss.item(),
                   'sac/entropy': -log_prob.mean().item()}
        if self.cfg.autotune_alpha:
            alpha_loss = self.alpha_loss(log_prob)
            self.alpha_optim.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_optim.step()
            metrics['loss/alpha'] = alpha_loss.item()
        polyak_update(self.critic_target, self.critic, self.cfg.tau)
        self.num_updates += 1
        metrics['sac/alpha'] = self.alpha.item()
        return metrics

    def optim_state_dict(self) -> dict[str, Any]:
        """Optimiser states and the update counter (for resuming training)."""
        return {'actor': self.actor_optim.state_dict(), 'critic': self.critic_optim.state_dict(),
                'alpha': self.alpha_optim.state_dict(), 'num_updates': self.num_updates}

    def load_optim_state_dict(self, state: dict[str, Any]) -> None:
        self.actor_optim.load_state_dict(state['actor'])
        self.critic_optim.load_state_dict(state['critic'])
        self.alpha_optim.load_state_dict(state['alpha'])
        self.num_updates = int(state['num_updates'])
