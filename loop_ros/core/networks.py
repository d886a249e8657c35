"""Actor and critic networks of SAC (LOOP sec. 4.1; spinning-up sizes)."""
from __future__ import annotations

import torch
from torch import nn

from loop_ros.core.math import squashed_gaussian_log_prob

LOG_STD_MIN = -20.0
LOG_STD_MAX = 2.0


def mlp(in_dim: int, hidden_sizes: tuple[int, ...], out_dim: int,
        activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """in -> hidden... (activation, in place) -> out (linear)."""
    layers: list[nn.Module] = []
    last = in_dim
    for width in hidden_sizes:
        layers += [nn.Linear(last, width), activation(inplace=True)]
        last = width
    layers.append(nn.Linear(last, out_dim))
    return nn.Sequential(*layers)


class SquashedGaussianActor(nn.Module):
    """pi(a|s) = tanh(N(mu(s), sigma(s))) on normalised actions in [-1, 1]^A.

    Shapes:
        obs: (..., O) -> action (..., A), log_prob (...)
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes: tuple[int, ...]) -> None:
        super().__init__()
        self.trunk = mlp(obs_dim, hidden_sizes[:-1], hidden_sizes[-1])
        self.trunk.append(nn.ReLU(inplace=True))
        self.mean_head = nn.Linear(hidden_sizes[-1], act_dim)
        self.log_std_head = nn.Linear(hidden_sizes[-1], act_dim)

    def distribution(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and clamped log-std of the pre-squash Gaussian."""
        h = self.trunk(obs)
        log_std = self.log_std_head(h).clamp(LOG_STD_MIN, LOG_STD_MAX)
        return self.mean_head(h), log_std

    def forward(self, obs: torch.Tensor, deterministic: bool = False,
                with_log_prob: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Reparameterised sample a = tanh(mu + sigma * eps) (or tanh(mu)) and its log-prob."""
        mean, log_std = self.distribution(obs)
        pre_tanh = mean if deterministic else mean + log_std.exp() * torch.randn_like(mean)
        log_prob = squashed_gaussian_log_prob(mean, log_std, pre_tanh) if with_log_prob else None
        return torch.tanh(pre_tanh), log_prob

    def mean_action(self, obs: torch.Tensor) -> torch.Tensor:
        """Deterministic action tanh(mu(s)) (ARC's actor prior and evaluation)."""
        h = self.trunk(obs)
        return torch.tanh(self.mean_head(h))


class TwinQ(nn.Module):
    """Two independent Q(s, a) MLPs (clipped double-Q).

    Shapes:
        obs: (..., O), action: (..., A) -> q1, q2: (...)
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes: tuple[int, ...]) -> None:
        super().__init__()
        self.q1 = mlp(obs_dim + act_dim, hidden_sizes, 1)
        self.q2 = mlp(obs_dim + act_dim, hidden_sizes, 1)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([obs, action], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)

    def min_q(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """min(Q1, Q2): SAC's (pessimistic) value of taking ``action`` in ``obs``."""
        q1, q2 = self(obs, action)
        return torch.minimum(q1, q2)
