"""PETS-style probabilistic ensemble: LOOP's learned model of [reward, delta obs] (sec. 4).

LOOP (Sikchi et al., CoRL 2021) plans with the probabilistic ensemble of PETS (Chua et al.,
NeurIPS 2018). Every number follows the authors' code (``docs/algorithm.md``, "The ensemble"):
E members of (obs || act) -> num_layers x hidden (SiLU) -> mean and log-variance of
[reward, obs' - obs], soft-bounded log-variance, Gaussian NLL plus per-layer L2 decay, input
standardisation, early stopping on a random holdout split and elites chosen by holdout MSE.

The members run as one batched model: weights are stored as (E, in, out) and every layer is
one ``torch.baddbmm``, never a Python loop over members (on the 2-core CPU, forward and backward
of a training minibatch run about 1.6x faster than a loop of ``nn.Linear``; large planning batches
run about even).

Deliberate departures from the reference (``docs/algorithm.md``, "Reference bugs fixed", 15):

* the truncated-normal init really truncates at 2 std (the reference's is a no-op);
* each member's best-holdout weights are restored at the end of ``fit`` (the reference keeps
  the last epoch's weights);
* ``fit`` has an epoch cap (``EnsembleConfig.max_epochs``; the reference has none).

Kept as in the reference: frozen log-variance bounds, a holdout redrawn on every call, inputs
standardised and targets not, warm start (same networks and Adam state across calls).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import check_static_unchanged
from .config import EnsembleConfig

REFERENCE_DECAYS = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)
"""L2 coefficients of the reference's five linear layers (4 hidden + output)."""
MIN_INPUT_STD = 1e-12
"""Input features with a smaller standard deviation are not scaled (std set to 1)."""
EVAL_CHUNK_ROWS = 8192
"""Rows per chunk when scoring members on a large holdout set (bounds memory)."""
INIT_TRUNCATION = 2.0
"""Weights are drawn from a normal truncated at this many standard deviations."""

ArrayLike = torch.Tensor | np.ndarray


def layer_decays(num_layers: int, scale: float = 1.0) -> tuple[float, ...]:
    """L2 coefficient of each of the ``num_layers + 1`` linear layers (hidden ones, then output).

    For ``num_layers == 4`` these are the reference's (2.5, 5, 7.5, 7.5, 10)e-5. For another
    depth the five values are linearly interpolated over relative depth (first layer 2.5e-5,
    output layer 1e-4, piecewise-linear in between), then multiplied by ``scale``.
    """
    n = num_layers + 1
    ref = np.asarray(REFERENCE_DECAYS, dtype=np.float64)
    coeffs = np.interp(np.linspace(0.0, 1.0, n), np.linspace(0.0, 1.0, ref.size), ref)
    return tuple(float(c) * float(scale) for c in coeffs)


def _version(t: object) -> int | None:
    """In-place modification counter of a tensor (None for inference tensors)."""
    try:
        return int(t._version)  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):
        return None


@dataclass
class _MemberCache:
    """Gathered (M, in, out) weights of one member subset, valid for one parameter version."""

    params_key: tuple[tuple[int, int], ...]
    members: torch.Tensor
    members_version: int | None
    members_cpu: torch.Tensor
    weights: list[torch.Tensor]
    biases: list[torch.Tensor]


class ProbabilisticEnsemble(nn.Module):
    """E Gaussian MLPs predicting the mean and log-variance of [reward, obs' - obs].

    Each member maps x = (obs || act), standardised with the buffers ``input_mean`` and
    ``input_std``, through ``num_layers`` hidden SiLU layers of ``hidden_size`` units to
    2 * D outputs, D = obs_dim + 1 when the reward is learned (reward is output 0), else obs_dim.

    Soft log-variance bounds (frozen buffers, as in the reference):
    log_var = min_lv + softplus((max_lv - softplus(max_lv - raw)) - min_lv)
    so min_lv < log_var < min_lv + softplus(max_lv - min_lv), i.e. at most
    log1p(exp(min_lv - max_lv)) above max_lv (2.8e-5 with the defaults -10 and 0.5).

    ``state_dict()`` is the whole model (weights, normaliser, bounds, elites); the Adam state
    lives in ``self.optimizer`` and persists across ``fit`` calls (warm start).

    Shapes:
        E = num_members, M = members used in a call, B = batch, O = obs_dim, A = act_dim,
        I = O + A, D = O + 1 (learned reward) or O.
        weights[i]: (E, in_i, out_i); biases[i]: (E, 1, out_i).

    References:
        Sikchi et al., LOOP, CoRL 2021, sec. 4; Chua et al., PETS, NeurIPS 2018, sec. 4.
    """

    def __init__(self, obs_dim: int, act_dim: int, cfg: EnsembleConfig,
                 device: torch.device | str = 'cpu', dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if obs_dim < 1 or act_dim < 1:
            raise ValueError(f'obs_dim and act_dim must be >= 1, got {obs_dim} and {act_dim}')
        if cfg.num_elites > cfg.num_members:
            raise ValueError(f'num_elites ({cfg.num_elites}) exceeds num_members '
                             f'({cfg.num_members})')
        self.cfg = cfg
        self.obs_dim = int(obs_dim)
        self.act_dim = int(act_dim)
        self.num_members = cfg.num_members
        self.learn_reward = cfg.learn_reward
        self.in_dim = self.obs_dim + self.act_dim
        self.out_dim = self.obs_dim + int(cfg.learn_reward)
        sizes = [self.in_dim] + [cfg.hidden_size] * cfg.num_layers + [2 * self.out_dim]
        factory = {'device': torch.device(device), 'dtype': dtype}
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(cfg.num_members, n_in, n_out, **factory))
            for n_in, n_out in zip(sizes[:-1], sizes[1:]))
        self.biases = nn.ParameterList(
            nn.Parameter(torch.empty(cfg.num_members, 1, n_out, **factory))
            for n_out in sizes[1:])
        self.register_buffer('input_mean', torch.zeros(self.in_dim, **factory))
        self.register_buffer('input_std', torch.ones(self.in_dim, **factory))
        self.register_buffer('min_log_var', torch.full((self.out_dim,), cfg.min_log_var,
                                                       **factory))
        self.register_buffer('max_log_var', torch.full((self.out_dim,), cfg.max_log_var,
                                                       **factory))
        self.register_buffer('elite_idx', torch.arange(cfg.num_elites, device=factory['device'],
                                                       dtype=torch.long))
        self.decays = layer_decays(cfg.num_layers, cfg.weight_decay_scale)
        self._cache: _MemberCache | None = None
        self.reset_parameters()
        self.optimizer = torch.optim.Adam(self.parameters(), lr=cfg.lr)

    # ------------------------------------------------------------------ basics

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.weights[0].device

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the parameters."""
        return self.weights[0].dtype

    @property
    def elites(self) -> torch.Tensor:
        """LongTensor (num_elites,) of elite member indices (ascending); the buffer itself."""
        return self.elite_idx

    def reset_parameters(self) -> None:
        """Weights ~ N(0, std^2) truncated at +-2 std, std = 1 / (2 sqrt(fan_in)); biases 0."""
        with torch.no_grad():
            for w, b in zip(self.weights, self.biases):
                std = 1.0 / (2.0 * math.sqrt(w.shape[1]))
                nn.init.trunc_normal_(w, mean=0.0, std=std, a=-INIT_TRUNCATION * std,
                                      b=INIT_TRUNCATION * std)
                b.zero_()
        self.invalidate_cache()

    def reconfigure(self, cfg: EnsembleConfig) -> None:
        """Fit with ``cfg`` from the next :meth:`fit` on (lr, batch, holdout, stopping, decay).

        Static fields (``EnsembleConfig`` metadata: sizes, log-variance bounds, learned reward)
        must stay; ValueError names them otherwise and nothing changes.
        """
        check_static_unchanged(self.cfg, cfg, 'ensemble', 'the ensemble')
        self.cfg = cfg
        self.decays = layer_decays(cfg.num_layers, cfg.weight_decay_scale)
        for group in self.optimizer.param_groups:
            group['lr'] = cfg.lr

    def invalidate_cache(self) -> None:
        """Drop the gathered member weights used by ``predict``.

        Called by ``fit``, ``load_state_dict`` and device/dtype moves. Optimizer steps and other
        in-place writes to the parameters are detected through the tensors' version counters;
        only writes through ``param.data`` bypass them and need this call.
        """
        self._cache = None

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True,
                        assign: bool = False) -> Any:
        """``nn.Module.load_state_dict``, then drop the member-weight cache."""
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        if assign:  # new Parameter objects: the optimizer must follow them
            self.optimizer = torch.optim.Adam(self.parameters(), lr=self.cfg.lr)
        self.invalidate_cache()
        return result

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], *args: Any,
               **kwargs: Any) -> ProbabilisticEnsemble:
        self.invalidate_cache()
        return super()._apply(fn, *args, **kwargs)

    # ------------------------------------------------------------------ network

    def _params_key(self) -> tuple[tuple[int, int], ...]:
        return tuple((p._version, p.data_ptr()) for p in self.parameters())

    def _check_members(self, members: torch.Tensor) -> torch.Tensor:
        if not isinstance(members, torch.Tensor) or members.dim() != 1 or members.numel() < 1:
            raise ValueError('members must be a 1-D integer tensor with at least one index, got '
                             f'{getattr(members, "shape", type(members))}')
        if members.dtype.is_floating_point or members.dtype == torch.bool:
            raise ValueError(f'members must hold integers, got dtype {members.dtype}')
        members = members.to(device=self.device, dtype=torch.long)
        if int(members.min()) < 0 or int(members.max()) >= self.num_members:
            raise ValueError(f'members must lie in [0, {self.num_members}), '
                             f'got {members.tolist()}')
        return members

    def _member_params(self, members: torch.Tensor | None
                       ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Weights and biases of ``members`` (all E when None).

        With autograd enabled the subset is gathered afresh (differentiable). Under no_grad the
        gathered subset is cached and reused while neither the parameters (version counter and
        storage) nor the member indices change: the planner calls this 15 times per step with
        the same elites.
        """
        if members is None:
            return list(self.weights), list(self.biases)
        if torch.is_grad_enabled():
            members = self._check_members(members)
            return ([w.index_select(0, members) for w in self.weights],
                    [b.index_select(0, members) for b in self.biases])
        key = self._params_key()
        cache = self._cache
        if cache is not None and cache.params_key == key:
            version = _version(members)
            if members is cache.members and version is not None \
                    and version == cache.members_version:
                return cache.weights, cache.biases
            if isinstance(members, torch.Tensor) and members.shape == cache.members_cpu.shape \
                    and torch.equal(members.detach().to('cpu', torch.long), cache.members_cpu):
                cache.members, cache.members_version = members, version
                return cache.weights, cache.biases
        idx = self._check_members(members)
        weights = [w.detach().index_select(0, idx) for w in self.weights]
        biases = [b.detach().index_select(0, idx) for b in self.biases]
        self._cache = _MemberCache(key, members, _version(members),
                                   idx.detach().to('cpu').clone(), weights, biases)
        return weights, biases

    def _mlp(self, x: torch.Tensor, weights: list[torch.Tensor], biases: list[torch.Tensor]
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and bounded log-variance from standardised inputs x (M, B, I)."""
        last = len(weights) - 1
        inplace = not torch.is_grad_enabled()
        for i, (w, b) in enumerate(zip(weights, biases)):
            x = torch.baddbmm(b, x, w)
            if i < last:
                x = F.silu(x, inplace=inplace)
        mean, raw = x.split(self.out_dim, dim=-1)
        log_var = self.max_log_var - F.softplus(self.max_log_var - raw)
        log_var = self.min_log_var + F.softplus(log_var - self.min_log_var)
        return mean, log_var

    def _normalise(self, x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        if inplace:
            return x.sub_(self.input_mean).div_(self.input_std)
        return (x - self.input_mean) / self.input_std

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of [reward, obs' - obs] for raw (unstandardised) inputs.

        Args:
            x: raw inputs (obs || act), one slice per member.
            members: member indices (M,); None means all E members (M = E).

        Returns:
            ``(mean, log_var)``, both (M, B, D).

        Shapes:
            x: (M, B, I); mean, log_var: (M, B, D).
        """
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] != self.in_dim:
            raise ValueError(f'x must be (M, B, {self.in_dim}), got {tuple(x.shape)}')
        weights, biases = self._member_params(members)
        if x.shape[0] != weights[0].shape[0]:
            raise ValueError(f'x has {x.shape[0]} member slices but {weights[0].shape[0]} '
                             'members were selected')
        return self._mlp(self._normalise(x), weights, biases)

    # ------------------------------------------------------------------ prediction

    def _rand(self, kind: str, shape: tuple[int, ...], generator: torch.Generator | None,
              high: int = 0) -> torch.Tensor:
        """Random draws on the generator's device, moved to the model's device."""
        device = generator.device if generator is not None else self.device
        if kind == 'randn':
            out = torch.randn(shape, generator=generator, device=device, dtype=self.dtype)
        elif kind == 'randint':
            out = torch.randint(high, shape, generator=generator, device=device)
        else:
            out = torch.randperm(high, generator=generator, device=device)
        return out.to(self.device)

    def _sample(self, mean: torch.Tensor, log_var: torch.Tensor,
                generator: torch.Generator | None) -> torch.Tensor:
        """y = mean + exp(log_var / 2) * eps, eps ~ N(0, I) (consumes ``log_var``)."""
        noise = self._rand('randn', tuple(mean.shape), generator)
        return noise.mul_(log_var.mul_(0.5).exp_()).add_(mean)

    def _split(self, obs: torch.Tensor, y: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.learn_reward:
            return obs + y[..., 1:], y[..., 0]
        return obs + y, None

    def _check_obs_act(self, obs: torch.Tensor, act: torch.Tensor, ndim: int) -> None:
        lead = '(M, B, ' if ndim == 3 else '(B, '
        if not isinstance(obs, torch.Tensor) or obs.dim() != ndim or obs.shape[-1] != self.obs_dim:
            raise ValueError(f'obs must be {lead}{self.obs_dim}), got '
                             f'{tuple(getattr(obs, "shape", ()))}')
        if not isinstance(act, torch.Tensor) or act.dim() != ndim or act.shape[-1] != self.act_dim:
            raise ValueError(f'act must be {lead}{self.act_dim}), got '
                             f'{tuple(getattr(act, "shape", ()))}')
        if obs.shape[:-1] != act.shape[:-1]:
            raise ValueError(f'obs {tuple(obs.shape)} and act {tuple(act.shape)} disagree on '
                             'the leading dimensions')

    @torch.no_grad()
    def predict(self, obs: torch.Tensor, act: torch.Tensor, members: torch.Tensor | None = None,
                deterministic: bool = False, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One model step per member slice: member m propagates only its own slice.

        next_obs = obs + delta, [reward, delta] = mean + exp(log_var / 2) * eps (eps = 0 if
        deterministic). The gathered weights of ``members`` are cached between calls.

        Args:
            obs: current observations, slice m is propagated by member ``members[m]``.
            act: actions.
            members: member indices (M,), e.g. ``self.elites``; None means all E (M = E).
            deterministic: return the mean instead of a sample.
            generator: source of the sampling noise (on any device).

        Returns:
            ``(next_obs, reward)``; reward is None when the model does not learn it.

        Shapes:
            obs: (M, B, O); act: (M, B, A); next_obs: (M, B, O); reward: (M, B).
        """
        self._check_obs_act(obs, act, 3)
        weights, biases = self._member_params(members)
        if obs.shape[0] != weights[0].shape[0]:
            raise ValueError(f'obs has {obs.shape[0]} member slices but {weights[0].shape[0]} '
                             'members were selected')
        x = self._normalise(torch.cat((obs, act), dim=-1), inplace=True)
        mean, log_var = self._mlp(x, weights, biases)
        y = mean if deterministic else self._sample(mean, log_var, generator)
        return self._split(obs, y)

    @torch.no_grad()
    def predict_random_elite(self, obs: torch.Tensor, act: torch.Tensor,
                             deterministic: bool = False,
                             generator: torch.Generator | None = None
                             ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One step where each row uses a uniformly random elite (TS-1), sampled or the mean.

        Used for the actor-prior rollouts; all elites run on every row, then row b keeps the
        sample (or, if deterministic, the mean) of elite k_b ~ U{elites}.

        Shapes:
            obs: (B, O); act: (B, A); next_obs: (B, O); reward: (B,).
        """
        self._check_obs_act(obs, act, 2)
        weights, biases = self._member_params(self.elite_idx)
        num_elites, batch = weights[0].shape[0], obs.shape[0]
        x = self._normalise(torch.cat((obs, act), dim=-1), inplace=True)
        mean, log_var = self._mlp(x.unsqueeze(0).expand(num_elites, -1, -1), weights, biases)
        choice = self._rand('randint', (batch,), generator, high=num_elites)
        rows = torch.arange(batch, device=self.device)
        mean = mean[choice, rows]
        y = mean if deterministic else self._sample(mean, log_var[choice, rows], generator)
        return self._split(obs, y)

    # ------------------------------------------------------------------ training

    def _loss_xy(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        mean, log_var = self._mlp(self._normalise(x), list(self.weights), list(self.biases))
        nll = ((mean - y).square() * torch.exp(-log_var)).mean(dim=(1, 2)) \
            + log_var.mean(dim=(1, 2))
        return nll.sum() + self.decay_loss()

    def decay_loss(self) -> torch.Tensor:
        """Sum over layers of c_i * sum(W_i^2) / 2 (all members; biases not decayed)."""
        return sum(c * w.square().sum() for c, w in zip(self.decays, self.weights)) / 2

    def _as_tensor(self, value: ArrayLike, name: str) -> torch.Tensor:
        try:
            return torch.as_tensor(value, dtype=self.dtype, device=self.device)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f'{name} cannot be converted to a tensor: {exc}') from exc

    def loss(self, obs: ArrayLike, act: ArrayLike, target: ArrayLike) -> torch.Tensor:
        """Gaussian NLL summed over members plus L2 decay (differentiable scalar).

        loss = sum_e mean_{b,d}[(mu - y)^2 exp(-log_var) + log_var] + sum_i c_i ||W_i||^2 / 2

        The reference's 0.01 * (sum max_lv - sum min_lv) term is omitted: the bounds are frozen,
        so it is a constant.

        Args:
            obs: observations; 2-D means the same batch for every member.
            act: actions.
            target: [reward, obs' - obs] (or obs' - obs without a learned reward).

        Shapes:
            obs: (E, B, O) or (B, O); act: (E, B, A) or (B, A); target: (E, B, D) or (B, D).
        """
        obs_t, act_t = self._as_tensor(obs, 'obs'), self._as_tensor(act, 'act')
        y = self._as_tensor(target, 'target')
        ndim = obs_t.dim()
        self._check_obs_act(obs_t, act_t, ndim if ndim in (2, 3) else 3)
        if y.shape[:-1] != obs_t.shape[:-1] or y.shape[-1] != self.out_dim:
            raise ValueError(f'target must be {tuple(obs_t.shape[:-1]) + (self.out_dim,)}, '
                             f'got {tuple(y.shape)}')
        x = torch.cat((obs_t, act_t), dim=-1)
        if ndim == 2:
            x = x.unsqueeze(0).expand(self.num_members, -1, -1)
            y = y.unsqueeze(0).expand(self.num_members, -1, -1)
        elif x.shape[0] != self.num_members:
            raise ValueError(f'3-D inputs need one slice per member ({self.num_members}), '
                             f'got {x.shape[0]}')
        return self._loss_xy(x, y)

    @torch.no_grad()
    def _member_mse_xy(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-member MSE of the mean on shared rows, averaged over rows and dims: (E,)."""
        total = torch.zeros(self.num_members, device=self.device, dtype=torch.float64)
        weights, biases = list(self.weights), list(self.biases)
        for start in range(0, x.shape[0], EVAL_CHUNK_ROWS):
            xc = self._normalise(x[start:start + EVAL_CHUNK_ROWS])
            yc = y[start:start + EVAL_CHUNK_ROWS]
            mean, _ = self._mlp(xc.unsqueeze(0).expand(self.num_members, -1, -1), weights,
                                biases)
            total += (mean - yc).square().sum(dim=(1, 2)).double()
        return (total / (x.shape[0] * self.out_dim)).to(self.dtype)

    def eval_score(self, obs: ArrayLike, act: ArrayLike, target: ArrayLike) -> torch.Tensor:
        """Per-member MSE of the predicted mean (raw units, averaged over rows and dims).

        Shapes:
            obs: (N, O); act: (N, A); target: (N, D); returns (E,).
        """
        obs_t, act_t = self._as_tensor(obs, 'obs'), self._as_tensor(act, 'act')
        y = self._as_tensor(target, 'target')
        self._check_obs_act(obs_t, act_t, 2)
        if y.shape != (obs_t.shape[0], self.out_dim):
            raise ValueError(f'target must be ({obs_t.shape[0]}, {self.out_dim}), '
                             f'got {tuple(y.shape)}')
        return self._member_mse_xy(torch.cat((obs_t, act_t), dim=-1), y)

    @torch.no_grad()
    def select_elites(self, scores: torch.Tensor) -> torch.Tensor:
        """Make the ``num_elites`` members with the lowest scores the elites (NaN ranks last).

        Shapes:
            scores: (E,); returns ``self.elites`` (num_elites,), ascending member indices.
        """
        scores = torch.as_tensor(scores, device=self.device).flatten()
        if scores.numel() != self.num_members:
            raise ValueError(f'scores must have {self.num_members} entries, got {scores.numel()}')
        scores = torch.nan_to_num(scores.double(), nan=math.inf)
        order = torch.argsort(scores, stable=True)[:self.elite_idx.numel()]
        self.elite_idx.copy_(torch.sort(order).values)
        return self.elite_idx

    def targets(self, obs: torch.Tensor, reward: torch.Tensor | None, next_obs: torch.Tensor
                ) -> torch.Tensor:
        """Training labels y = [r, s' - s] (or s' - s when the reward is not learned).

        Shapes:
            obs, next_obs: (N, O); reward: (N,); returns (N, D).
        """
        delta = next_obs - obs
        if not self.learn_reward:
            return delta
        if reward is None:
            raise ValueError('reward is required when the model learns the reward')
        return torch.cat((reward.reshape(-1, 1), delta), dim=-1)

    def _fit_inputs(self, obs: ArrayLike, act: ArrayLike, reward: ArrayLike | None,
                    next_obs: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
        obs_t, act_t = self._as_tensor(obs, 'obs'), self._as_tensor(act, 'act')
        next_t = self._as_tensor(next_obs, 'next_obs')
        self._check_obs_act(obs_t, act_t, 2)
        n = obs_t.shape[0]
        if n < 1:
            raise ValueError('fit needs at least one transition')
        if next_t.shape != obs_t.shape:
            raise ValueError(f'next_obs must be {tuple(obs_t.shape)}, got {tuple(next_t.shape)}')
        rew_t = None
        if self.learn_reward:
            if reward is None:
                raise ValueError('reward is required when the model learns the reward')
            rew_t = self._as_tensor(reward, 'reward')
            if rew_t.shape not in ((n,), (n, 1)):
                raise ValueError(f'reward must be ({n},) or ({n}, 1), got {tuple(rew_t.shape)}')
        x = torch.cat((obs_t, act_t), dim=-1)
        y = self.targets(obs_t, rew_t, next_t)
        if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
            raise ValueError('fit inputs contain NaN or inf')
        return x, y

    @torch.no_grad()
    def _fit_normaliser(self, x: torch.Tensor) -> None:
        """input_mean, input_std <- mean and std (population) of the training inputs."""
        mean = x.mean(dim=0)
        std = x.std(dim=0, correction=0) if x.shape[0] > 1 else torch.ones_like(mean)
        std = torch.where(std < MIN_INPUT_STD, torch.ones_like(std), std)
        self.input_mean.copy_(mean)
        self.input_std.copy_(std)

    def fit(self, obs: ArrayLike, act: ArrayLike, reward: ArrayLike | None, next_obs: ArrayLike,
            generator: torch.Generator | None = None, max_epochs: int | None = None
            ) -> dict[str, float]:
        """Train all members on the transitions with early stopping on a random holdout split.

        Each call (warm start: same networks, same Adam state) redraws a holdout of
        ``holdout_ratio`` of the rows (at most ``max_holdout``), refits the input normaliser on
        the training split, then runs epochs in which every member walks its own permutation of
        the training split in minibatches of ``batch_size``. After each epoch the per-member
        holdout MSE of the mean is computed; a member improves when
        (best - mse) / best > improvement_threshold, and training stops after ``patience``
        epochs in a row without any member improving, or at the epoch cap. With fewer than 2
        rows or a holdout ratio giving 0 rows, all rows train and the training MSE is used.

        Deliberate fix (reference keeps the last epoch): every member ends with the weights of
        its lowest-MSE epoch. Elites are the ``num_elites`` members with the lowest such MSE.

        Args:
            obs, act, reward, next_obs: N transitions (numpy arrays or tensors); ``reward`` may
                be None when the reward is not learned.
            generator: randomness of the split and the permutations (any device).
            max_epochs: epoch cap for this call; None uses ``cfg.max_epochs``.

        Returns:
            ``model/holdout_mse`` (mean over elites), ``model/train_loss`` (mean minibatch loss
            of the last epoch), ``model/epochs``, ``model/num_train``, ``model/num_holdout``.

        Shapes:
            obs, next_obs: (N, O); act: (N, A); reward: (N,) or (N, 1).
        """
        cfg = self.cfg
        x, y = self._fit_inputs(obs, act, reward, next_obs)
        n = x.shape[0]
        num_holdout = min(int(n * cfg.holdout_ratio), cfg.max_holdout, n - 1)
        perm = self._rand('randperm', (), generator, high=n)
        if n < 2 or num_holdout < 1:
            num_holdout = 0
            train_x, train_y = x, y
            eval_x, eval_y = x, y
        else:
            hold, train = perm[:num_holdout], perm[num_holdout:]
            train_x, train_y = x[train], y[train]
            eval_x, eval_y = x[hold], y[hold]
        num_train = train_x.shape[0]
        self._fit_normaliser(train_x)
        for group in self.optimizer.param_groups:
            group['lr'] = cfg.lr

        params = list(self.parameters())
        best = torch.full((self.num_members,), math.inf, device=self.device, dtype=self.dtype)
        best_counted = best.clone()
        snapshot = [p.detach().clone() for p in params]
        cap = cfg.max_epochs if max_epochs is None else int(max_epochs)
        if cap < 1:
            raise ValueError(f'max_epochs must be >= 1, got {cap}')
        epochs, since_improved, train_loss = 0, 0, math.nan
        while epochs < cap:
            orders = torch.stack([self._rand('randperm', (), generator, high=num_train)
                                  for _ in range(self.num_members)])
            loss_sum = torch.zeros((), device=self.device, dtype=self.dtype)
            num_batches = 0
            for start in range(0, num_train, cfg.batch_size):
                idx = orders[:, start:start + cfg.batch_size]
                loss = self._loss_xy(train_x[idx], train_y[idx])
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                loss_sum += loss.detach()
                num_batches += 1
            epochs += 1
            train_loss = float(loss_sum) / num_batches
            mse = self._member_mse_xy(eval_x, eval_y)
            with torch.no_grad():
                better = mse < best
                for p, s in zip(params, snapshot):
                    s[better] = p.detach()[better]
                best = torch.where(better, mse, best)
                counted = torch.isinf(best_counted) & torch.isfinite(mse)
                counted |= (best_counted - mse) / best_counted > cfg.improvement_threshold
                best_counted = torch.where(counted, mse, best_counted)
            since_improved = 0 if bool(counted.any()) else since_improved + 1
            if since_improved >= cfg.patience:
                break
        with torch.no_grad():
            for p, s in zip(params, snapshot):
                p.copy_(s)
        self.select_elites(best)
        self.invalidate_cache()
        return {
            'model/holdout_mse': float(best[self.elite_idx].mean()),
            'model/train_loss': train_loss,
            'model/epochs': float(epochs),
            'model/num_train': float(num_train),
            'model/num_holdout': float(num_holdout),
        }
