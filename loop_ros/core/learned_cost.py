"""A learned constraint cost for safe LOOP on tasks without a cost function (``ensemble.learn_cost``).

Safe ARC (eq. 10) needs c(s, a, s') on every predicted state. A task may give it as a batched
function (the RC car's boundary, the hazards of the safety-navigation envs); a robot task often
cannot. Then the planner uses :class:`LearnedCost`: the probability that a state violates the
constraint, c(s') = sigmoid(f(s')), with f an MLP on the (standardised) next observation, fitted
on the replay buffer's costs. The costs are taken as indicators, clipped to [0, 1]: 1 is a
violation (a hazard, a boundary crossing). Safe ARC sums c over the horizon and takes the worst
case over members and particles, exactly as it does with a task's cost.

Violations are rare in a buffer, so the loss weighs them by n_negative / n_positive (at most
:data:`MAX_POSITIVE_WEIGHT`). A classifier that is unsure then errs towards "unsafe", which is
the side safe LOOP wants to err on.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

MAX_POSITIVE_WEIGHT = 100.0
EPOCHS_PER_FIT = 5
"""Passes over the buffer per retrain (warm start: the weights carry over between fits)."""


class LearnedCost(nn.Module):
    """c(s') = P(violation | s'), callable like a task's cost function.

    Shapes:
        obs, next_obs: (..., O); action: (..., A); returns (...,) in [0, 1].
    """

    def __init__(self, obs_dim: int, hidden_sizes: tuple[int, ...] = (128, 128),
                 device: torch.device | str = 'cpu') -> None:
        super().__init__()
        self.obs_dim = obs_dim
        layers: list[nn.Module] = []
        width = obs_dim
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), nn.SiLU()]
            width = size
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        self.register_buffer('input_mean', torch.zeros(obs_dim))
        self.register_buffer('input_std', torch.ones(obs_dim))
        self.to(device)
        self.optim = torch.optim.Adam(self.net.parameters(), lr=1e-3)

    def logits(self, next_obs: torch.Tensor) -> torch.Tensor:
        """f(s'), (...,)."""
        return self.net((next_obs - self.input_mean) / self.input_std).squeeze(-1)

    @torch.no_grad()
    def forward(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor
                ) -> torch.Tensor:
        """sigmoid(f(s')): the predicted probability that ``next_obs`` violates the constraint."""
        return torch.sigmoid(self.logits(next_obs))

    def fit(self, next_obs: torch.Tensor, cost: torch.Tensor, batch_size: int = 256,
            epochs: int = EPOCHS_PER_FIT, generator: torch.Generator | None = None
            ) -> dict[str, float]:
        """Weighted binary cross-entropy on (s', min(max(c, 0), 1)); returns the training loss,
        and the recall and false-alarm rate of c > 0.5 on the data."""
        n = next_obs.shape[0]
        if n == 0:
            return {}
        target = cost.clamp(0.0, 1.0).to(next_obs.dtype)
        self.input_mean.copy_(next_obs.mean(dim=0))
        self.input_std.copy_(next_obs.std(dim=0).clamp_min(1e-6) if n > 1
                             else torch.ones_like(self.input_std))
        positives = float((target > 0.5).sum())
        weight = min(max((n - positives) / max(positives, 1.0), 1.0), MAX_POSITIVE_WEIGHT)
        pos_weight = torch.tensor(weight, device=next_obs.device)
        loss = torch.zeros(())
        for _ in range(epochs):
            order = torch.randperm(n, generator=generator, device=generator.device
                                   if generator is not None else 'cpu').to(next_obs.device)
            for start in range(0, n, batch_size):
                rows = order[start:start + batch_size]
                loss = F.binary_cross_entropy_with_logits(
                    self.logits(next_obs[rows]), target[rows], pos_weight=pos_weight)
                self.optim.zero_grad(set_to_none=True)
                loss.backward()
                self.optim.step()
        with torch.no_grad():
            predicted = self.logits(next_obs) > 0.0
            actual = target > 0.5
            recall = float((predicted & actual).sum() / actual.sum()) if actual.any() \
                else float('nan')
            false_alarms = float((predicted & ~actual).sum() / (~actual).sum()) \
                if (~actual).any() else float('nan')
        return {'cost/loss': float(loss.detach()), 'cost/recall': recall,
                'cost/false_alarm_rate': false_alarms}
