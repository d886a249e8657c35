"""Small pure functions shared by SAC and the planner."""
from __future__ import annotations

import math

import torch
from torch import nn

LOG_2 = math.log(2.0)


def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """theta_target <- (1 - tau) * theta_target + tau * theta_source (in place, no grad)."""
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters()):
            t.lerp_(s, tau)


def squashed_gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor,
                               pre_tanh: torch.Tensor) -> torch.Tensor:
    """log pi(tanh(u)) = log N(u; mean, std) - sum log(1 - tanh(u)^2).

    The tanh correction uses the stable identity log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)).

    Shapes:
        mean, log_std, pre_tanh: (..., A) -> (...)
    """
    normal = -0.5 * ((pre_tanh - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
    correction = 2.0 * (LOG_2 - pre_tanh - nn.functional.softplus(-2.0 * pre_tanh))
    return (normal - correction).sum(dim=-1)


def truncated_standard_normal(shape: tuple[int, ...], bound: float, device: torch.device,
                              generator: torch.Generator | None = None,
                              dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Samples of N(0, 1) truncated to [-bound, bound], drawn on ``device`` (inverse CDF)."""
    out = torch.empty(shape, device=device, dtype=dtype)
    return nn.init.trunc_normal_(out, 0.0, 1.0, -bound, bound, generator=generator)
