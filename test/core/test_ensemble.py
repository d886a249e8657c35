"""Probabilistic ensemble: exact formulas on constant members, learning, elites, caching."""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from loop_ros.core.checkpoint import load_checkpoint, save_checkpoint
from loop_ros.core.config import EnsembleConfig
from loop_ros.core.ensemble import ProbabilisticEnsemble, layer_decays

TINY = EnsembleConfig(num_members=5, num_elites=3, hidden_size=16, num_layers=2, batch_size=32,
                      max_epochs=5, patience=2)


@pytest.fixture(autouse=True, scope='module')
def _one_thread() -> Iterator[None]:
    """Tiny nets on 2 shared cores: one torch thread is 10-30x faster than two under load."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _model(device: torch.device, cfg: EnsembleConfig = TINY, obs_dim: int = 2, act_dim: int = 1,
           seed: int = 0) -> ProbabilisticEnsemble:
    torch.manual_seed(seed)
    return ProbabilisticEnsemble(obs_dim, act_dim, cfg, device=device)


def _randn(*shape: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(device)


def _set_constant(model: ProbabilisticEnsemble, mean: torch.Tensor, raw_log_var: torch.Tensor
                  ) -> None:
    """Zero weights and hidden biases; output bias = [mean, raw_log_var] per member."""
    with torch.no_grad():
        for w, b in zip(model.weights, model.biases):
            w.zero_()
            b.zero_()
        model.biases[-1].copy_(torch.cat((mean, raw_log_var), dim=-1).unsqueeze(1))


def _soft_bounds(raw: float, lo: float, hi: float) -> float:
    """The documented soft bounds, in float64 by hand."""
    softplus = lambda v: math.log1p(math.exp(-abs(v))) + max(v, 0.0)  # noqa: E731
    lv = hi - softplus(hi - raw)
    return lo + softplus(lv - lo)


# ---------------------------------------------------------------------- structure


def test_layer_decays() -> None:
    assert layer_decays(4) == pytest.approx((2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4), rel=1e-12)
    assert layer_decays(2) == pytest.approx((2.5e-5, 7.5e-5, 1e-4), rel=1e-12)
    assert layer_decays(1, scale=2.0) == pytest.approx((5e-5, 2e-4), rel=1e-12)
    assert len(layer_decays(8)) == 9 and layer_decays(8)[-1] == pytest.approx(1e-4)


def test_init_is_truncated_normal() -> None:
    model = _model(torch.device('cpu'), EnsembleConfig(), obs_dim=17, act_dim=6)
    trunc_factor = 0.87962566  # std of N(0, 1) truncated to [-2, 2]
    for w, b in zip(model.weights, model.biases):
        std = 1.0 / (2.0 * math.sqrt(w.shape[1]))
        w = w.detach()
        assert float(w.abs().max()) <= 2.0 * std + 1e-7
        assert float(w.std()) == pytest.approx(std * trunc_factor, rel=0.03)
        assert torch.count_nonzero(b) == 0
    assert [tuple(w.shape) for w in model.weights] == [
        (7, 23, 200), (7, 200, 200), (7, 200, 200), (7, 200, 200), (7, 200, 36)]


def test_shapes_and_members_differ(device: torch.device) -> None:
    model = _model(device)
    assert model.elites.tolist() == [0, 1, 2] and model.elites.dtype == torch.long
    x = _randn(1, 8, 3, device=device).expand(5, -1, -1)
    mean, log_var = model(x)
    assert mean.shape == log_var.shape == (5, 8, 3) and mean.device.type == device.type
    for i in range(5):
        for j in range(i + 1, 5):
            assert not torch.allclose(mean[i], mean[j])
    obs, act = _randn(5, 8, 2, device=device), _randn(5, 8, 1, device=device, seed=1)
    next_obs, reward = model.predict(obs, act)
    assert next_obs.shape == (5, 8, 2) and reward is not None and reward.shape == (5, 8)
    next_obs, reward = model.predict(obs[:3], act[:3], members=model.elites)
    assert next_obs.shape == (3, 8, 2) and reward.shape == (3, 8)
    one_obs, one_rew = model.predict_random_elite(obs[0], act[0])
    assert one_obs.shape == (8, 2) and one_rew is not None and one_rew.shape == (8,)
    assert set(model.state_dict()) >= {'input_mean', 'input_std', 'elite_idx', 'min_log_var',
                                       'max_log_var', 'weights.0', 'biases.2'}


# ---------------------------------------------------------------------- exact formulas


def test_constant_members_predict_exactly(device: torch.device) -> None:
    model = _model(device)
    mean = torch.arange(15.0, device=device).reshape(5, 3) * 0.5 - 2.0
    raw = torch.tensor([[-30.0, -3.0, 0.0], [0.2, 5.0, -9.0], [1.0, -1.0, 40.0],
                        [-10.0, 0.5, 0.3], [2.0, -2.0, -20.0]], device=device)
    _set_constant(model, mean, raw)
    with torch.no_grad():
        model.elite_idx.copy_(torch.tensor([1, 3, 4]))
    expected_lv = torch.tensor(
        [[_soft_bounds(v, -10.0, 0.5) for v in row] for row in raw.tolist()], device=device)
    obs, act = _randn(5, 6, 2, device=device) * 10, _randn(5, 6, 1, device=device, seed=1)

    f_mean, f_lv = model(torch.cat((obs, act), -1))
    assert torch.equal(f_mean, mean[:, None].expand(-1, 6, -1))
    torch.testing.assert_close(f_lv, expected_lv[:, None].expand(-1, 6, -1), rtol=1e-6,
                               atol=1e-6)

    members = torch.tensor([4, 1, 1], device=device)
    next_obs, reward = model.predict(obs[:3], act[:3], members=members, deterministic=True)
    assert torch.equal(next_obs, obs[:3] + mean[members][:, None, 1:])
    assert torch.equal(reward, mean[members][:, None, 0].expand(-1, 6))

    # Stochastic: y = mean + exp(log_var / 2) * eps with eps from the same generator.
    gen = torch.Generator(device=device).manual_seed(123)
    next_obs, reward = model.predict(obs[:3], act[:3], members=members, generator=gen)
    eps = torch.randn((3, 6, 3), generator=torch.Generator(device=device).manual_seed(123),
                      device=device)
    y = mean[members][:, None] + torch.exp(0.5 * f_lv[members]) * eps
    torch.testing.assert_close(next_obs, obs[:3] + y[..., 1:], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(reward, y[..., 0], rtol=1e-6, atol=1e-6)

    # TS-1: row b uses elite k_b ~ U{elites}, then its own noise.
    gen = torch.Generator(device=device).manual_seed(7)
    next_obs, reward = model.predict_random_elite(obs[0], act[0], generator=gen)
    ref = torch.Generator(device=device).manual_seed(7)
    choice = model.elites[torch.randint(3, (6,), generator=ref, device=device)]
    eps = torch.randn((6, 3), generator=ref, device=device)
    y = mean[choice] + torch.exp(0.5 * f_lv[choice, 0]) * eps
    torch.testing.assert_close(next_obs, obs[0] + y[:, 1:], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(reward, y[:, 0], rtol=1e-6, atol=1e-6)

    # deterministic TS-1: the same elite draws, the chosen elite's mean and no noise
    gen = torch.Generator(device=device).manual_seed(7)
    next_obs, reward = model.predict_random_elite(obs[0], act[0], deterministic=True,
                                                  generator=gen)
    torch.testing.assert_close(next_obs, obs[0] + mean[choice][:, 1:], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(reward, mean[choice][:, 0], rtol=1e-6, atol=1e-6)


def test_random_elite_uses_only_and_all_elites(device: torch.device) -> None:
    model = _model(device)
    mean = torch.zeros(5, 3, device=device)
    mean[:, 0] = torch.tensor([100.0, 1.0, 200.0, 3.0, 4.0])  # reward identifies the member
    _set_constant(model, mean, torch.full((5, 3), -50.0, device=device))  # std ~ 0.0067
    with torch.no_grad():
        model.elite_idx.copy_(torch.tensor([1, 3, 4]))
    obs, act = torch.zeros(3000, 2, device=device), torch.zeros(3000, 1, device=device)
    _, reward = model.predict_random_elite(obs, act, generator=torch.Generator(device=device))
    picked = reward.round().long()
    counts = torch.bincount(picked.cpu(), minlength=201)
    assert counts[[1, 3, 4]].sum() == 3000
    assert counts[[1, 3, 4]].min() > 850  # 1000 expected each


def test_loss_matches_formula(device: torch.device) -> None:
    model = _model(device)
    mean = _randn(5, 3, device=device, seed=2)
    raw = _randn(5, 3, device=device, seed=3) * 3
    _set_constant(model, mean, raw)
    with torch.no_grad():  # hidden weights count for the decay, output weights zero
        model.weights[0].fill_(0.1)
        model.weights[1].fill_(-0.2)
    obs, act = _randn(5, 7, 2, device=device, seed=4), _randn(5, 7, 1, device=device, seed=5)
    target = _randn(5, 7, 3, device=device, seed=6)
    lv = torch.tensor([[_soft_bounds(v, -10.0, 0.5) for v in row] for row in raw.tolist()],
                      dtype=torch.float64)
    y, mu = target.double().cpu(), mean.double().cpu()[:, None]
    nll = (((mu - y) ** 2 * torch.exp(-lv[:, None]) + lv[:, None]).mean(dim=(1, 2))).sum()
    c0, c1, _ = layer_decays(2)
    decay = c0 * (5 * 3 * 16) * 0.01 / 2 + c1 * (5 * 16 * 16) * 0.04 / 2
    loss = model.loss(obs, act, target)
    assert loss.dim() == 0 and loss.requires_grad
    assert float(loss.detach()) == pytest.approx(float(nll) + decay, rel=1e-5)
    # 2-D inputs: every member sees the same batch.
    shared = model.loss(obs[0], act[0], target[0])
    nll2 = (((mu - y[0]) ** 2 * torch.exp(-lv[:, None]) + lv[:, None]).mean(dim=(1, 2))).sum()
    assert float(shared.detach()) == pytest.approx(float(nll2) + decay, rel=1e-5)


def test_predict_subset_equals_forward(device: torch.device) -> None:
    model = _model(device)
    with torch.no_grad():  # a non-trivial normaliser
        model.input_mean.copy_(torch.tensor([0.5, -1.0, 0.2]))
        model.input_std.copy_(torch.tensor([2.0, 0.5, 1.5]))
    members = torch.tensor([3, 1, 3, 0], device=device)
    obs, act = _randn(4, 9, 2, device=device), _randn(4, 9, 1, device=device, seed=1)
    with torch.no_grad():
        mean, _ = model(torch.cat((obs, act), -1), members)
        all_mean, _ = model(torch.cat((obs[[0]], act[[0]]), -1).expand(5, -1, -1))
    next_obs, reward = model.predict(obs, act, members=members, deterministic=True)
    assert torch.equal(next_obs, obs + mean[..., 1:]) and torch.equal(reward, mean[..., 0])
    torch.testing.assert_close(mean[[0]], all_mean[[3]], rtol=1e-5, atol=1e-6)
    next_all, _ = model.predict(obs[[0]].expand(5, -1, -1), act[[0]].expand(5, -1, -1),
                                deterministic=True)
    torch.testing.assert_close(next_all, obs[[0]] + all_mean[..., 1:], rtol=0, atol=0)


def test_log_var_within_soft_bounds(device: torch.device) -> None:
    cfg = dataclasses.replace(TINY, min_log_var=-4.0, max_log_var=0.25)
    model = _model(device, cfg)
    # The composed softplus bounds are soft: the supremum is min + softplus(max - min), which
    # exceeds max by log1p(exp(min - max)) (0.014 here, 2.8e-5 with the defaults -10, 0.5).
    upper = _soft_bounds(1e9, -4.0, 0.25)
    assert upper == pytest.approx(0.25 + math.log1p(math.exp(-4.25)), abs=1e-9)
    x = _randn(5, 200, 3, device=device) * 1e3
    with torch.no_grad():
        _, lv = model(x)
        assert float(lv.min()) >= -4.0 and float(lv.max()) <= upper + 1e-6
        for raw, bound in ((1e4, upper), (-1e4, -4.0)):
            model.biases[-1][..., 3:] = raw
            _, lv = model(_randn(5, 20, 3, device=device))
            torch.testing.assert_close(lv, torch.full_like(lv, bound), rtol=0, atol=1e-4)
    assert not any(b.requires_grad for b in model.buffers())  # bounds are frozen


# ---------------------------------------------------------------------- learning

FIT_CFG = EnsembleConfig(num_members=4, num_elites=3, hidden_size=64, num_layers=2,
                         batch_size=128, max_epochs=60, patience=10)


def _system(s: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """s' = s + 0.1 sin(3a) cos(s); r = cos(s_0) a - 0.1 |s|^2."""
    return s + 0.1 * np.sin(3 * a) * np.cos(s), np.cos(s[:, 0]) * a[:, 0] - 0.1 * (s**2).sum(1)


def _data(n: int, seed: int, low: float = -1.0, high: float = 1.0
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    s = rng.uniform(low, high, (n, 2)) * rng.choice([-1.0, 1.0], (n, 2))
    a = rng.uniform(-1, 1, (n, 1))
    nxt, r = _system(s, a)
    return s, a, r, nxt


_FITTED: dict[str, tuple[ProbabilisticEnsemble, dict[str, float], float]] = {}


def _fitted(device: torch.device) -> tuple[ProbabilisticEnsemble, dict[str, float], float]:
    """An ensemble fitted once per device on 2000 noisy transitions (about 1-2 s)."""
    if device.type not in _FITTED:
        s, a, r, nxt = _data(2000, seed=0)
        nxt = nxt + 0.01 * np.random.default_rng(1).normal(size=nxt.shape)
        model = _model(device, FIT_CFG)
        ts, ta, tr, tn = _data(1000, seed=2)
        target = np.concatenate([tr[:, None], tn - ts], 1)
        before = float(model.eval_score(ts, ta, target).max())
        info = model.fit(s, a, r, nxt, generator=torch.Generator().manual_seed(0))
        _FITTED[device.type] = (model, info, before)
    return _FITTED[device.type]


def test_fit_learns_nonlinear_system(device: torch.device) -> None:
    model, info, before = _fitted(device)
    ts, ta, tr, tn = _data(1000, seed=2)
    target = np.concatenate([tr[:, None], tn - ts], 1)
    naive = float(((target - target.mean(0)) ** 2).mean())  # predict-the-mean MSE, ~0.086
    after = model.eval_score(ts, ta, target)
    assert before > 0.5 * naive  # random init is no better than the mean
    assert float(after.max()) < 1e-3 < naive / 50
    assert info['model/holdout_mse'] < 1e-3  # includes the 0.01 label noise (~7e-5)
    assert info['model/num_train'] == 1600 and info['model/num_holdout'] == 400
    assert 1 <= info['model/epochs'] <= 60 and math.isfinite(info['model/train_loss'])
    # Deterministic prediction of the true next state.
    obs = torch.as_tensor(ts, dtype=torch.float32, device=device)
    act = torch.as_tensor(ta, dtype=torch.float32, device=device)
    k = len(model.elites)
    nxt, rew = model.predict(obs.expand(k, -1, -1), act.expand(k, -1, -1), members=model.elites,
                             deterministic=True)
    assert float(((nxt.cpu() - torch.as_tensor(tn)) ** 2).mean()) < 1e-3
    assert float(((rew.cpu() - torch.as_tensor(tr)) ** 2).mean()) < 2e-3


def _predictive_std(model: ProbabilisticEnsemble, s: np.ndarray, a: np.ndarray) -> float:
    """Mean over rows and dims of sqrt(mean aleatoric var + variance of the member means)."""
    x = torch.as_tensor(np.concatenate([s, a], 1), dtype=torch.float32, device=model.device)
    with torch.no_grad():
        mean, log_var = model(x.expand(model.num_members, -1, -1))
    return float((log_var.exp().mean(0) + mean.var(0, correction=0)).sqrt().mean())


def test_predicted_std_grows_off_the_data(device: torch.device) -> None:
    model, _, _ = _fitted(device)
    s, a, _, _ = _data(1000, seed=3)
    inside = _predictive_std(model, s, a)
    far_s, far_a, _, _ = _data(1000, seed=4, low=5.0, high=6.0)  # |s| in [5, 6]; trained: [-1, 1]
    assert _predictive_std(model, far_s, far_a) > 5 * inside
    assert inside < 0.05


def test_state_dict_round_trip_reproduces_predictions(device: torch.device,
                                                      tmp_path: Path) -> None:
    model, _, _ = _fitted(device)
    obs, act = _randn(3, 10, 2, device=device), _randn(3, 10, 1, device=device, seed=1)
    path = save_checkpoint(tmp_path / 'ens.pt', model.state_dict(), kind='ensemble')
    for state in (model.state_dict(), load_checkpoint(path, kind='ensemble')):
        other = _model(device, FIT_CFG, seed=99)
        other.predict(obs, act, members=other.elites)  # fill its cache first
        other.load_state_dict(state)
        assert torch.equal(other.elites, model.elites)
        assert torch.equal(other.input_std, model.input_std)
        for m in (model.elites, None):
            n = 3 if m is not None else 4
            o, a = obs[[0]].expand(n, -1, -1), act[[0]].expand(n, -1, -1)
            g1 = torch.Generator(device=device).manual_seed(5)
            g2 = torch.Generator(device=device).manual_seed(5)
            x1, r1 = model.predict(o, a, members=m, generator=g1)
            x2, r2 = other.predict(o, a, members=m, generator=g2)
            assert torch.equal(x1, x2) and torch.equal(r1, r2)


def test_elites_exclude_corrupted_members(device: torch.device) -> None:
    s, a, r, nxt = _data(300, seed=5)
    model = _model(device, dataclasses.replace(TINY, lr=1e-6))  # training barely moves weights
    with torch.no_grad():
        model.biases[-1][[0, 3], :, :3] += 3.0  # members 0 and 3 predict far off
    info = model.fit(s, a, r, nxt, generator=torch.Generator().manual_seed(0), max_epochs=2)
    assert sorted(model.elites.tolist()) == [1, 2, 4]
    assert info['model/holdout_mse'] < 1.0  # a corrupted member has MSE > 8
    # select_elites on an explicit score ranks the same way.
    target = model.targets(torch.as_tensor(s, dtype=torch.float32), torch.as_tensor(r).float(),
                           torch.as_tensor(nxt, dtype=torch.float32))
    scores = model.eval_score(s, a, target)
    assert scores[[0, 3]].min() > 5 * scores[[1, 2, 4]].max()
    explicit = torch.tensor([0.3, 5.0, float('nan'), 0.1, 0.2])  # NaN ranks last
    assert model.select_elites(explicit).tolist() == [0, 3, 4]


def test_fit_restores_best_weights(device: torch.device) -> None:
    s, a, r, nxt = _data(400, seed=6)
    cfg = dataclasses.replace(TINY, lr=0.05, holdout_ratio=0.0, max_epochs=12, patience=12)
    model = _model(device, cfg)  # a large lr makes the last epoch rarely the best one
    info = model.fit(s, a, r, nxt, generator=torch.Generator().manual_seed(0))
    assert info['model/num_holdout'] == 0 and info['model/num_train'] == 400
    target = model.targets(torch.as_tensor(s, dtype=torch.float32), torch.as_tensor(r).float(),
                           torch.as_tensor(nxt, dtype=torch.float32))
    final = model.eval_score(s, a, target)  # training MSE (no holdout) of the final weights
    assert float(final[model.elites].mean()) == pytest.approx(info['model/holdout_mse'],
                                                              rel=1e-5)


def test_fit_tiny_data_and_warm_start(device: torch.device) -> None:
    s, a, r, nxt = _data(3, seed=7)
    model = _model(device)
    params = [id(p) for p in model.parameters()]
    info = model.fit(s[:1], a[:1], r[:1], nxt[:1], max_epochs=2)
    assert info['model/num_train'] == 1 and info['model/num_holdout'] == 0
    assert math.isfinite(info['model/holdout_mse'])
    assert float(model.input_std.min()) == 1.0  # std of one row is 0 -> 1
    info = model.fit(s, a, r.reshape(-1, 1), nxt, max_epochs=3)
    assert info['model/num_train'] == 3  # int(3 * 0.2) = 0 holdout rows
    steps = [int(st['step']) for st in model.optimizer.state.values()]
    assert steps and min(steps) == 2 + 3  # Adam state persists across calls
    assert [id(p) for p in model.parameters()] == params
    # A row-normalised input with a constant feature: std -> 1, no division by zero.
    s_const = np.concatenate([np.ones((20, 1)), np.linspace(-1, 1, 20)[:, None]], 1)
    a_const = np.zeros((20, 1))
    nxt_c, r_c = _system(s_const, a_const)
    model.fit(s_const, a_const, r_c, nxt_c, max_epochs=1)
    assert model.input_std[0] == 1.0 and model.input_std[2] == 1.0


def test_cache_invalidation(device: torch.device) -> None:
    model = _model(device)
    obs, act = _randn(3, 5, 2, device=device), _randn(3, 5, 1, device=device, seed=1)

    def fresh(members: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():  # the autograd path never uses the cache
            mean, _ = model(torch.cat((obs, act), -1), members)
        return (obs + mean[..., 1:]).detach()

    def cached(members: torch.Tensor | None = None) -> torch.Tensor:
        return model.predict(obs, act, members=model.elites if members is None else members,
                             deterministic=True)[0]

    first = cached()
    assert torch.equal(first, fresh(model.elites))
    assert cached() is not first and torch.equal(cached(), first)  # hit: same values
    # optimizer step
    loss = model.loss(obs[0], act[0], _randn(5, 3, device=device))
    model.optimizer.zero_grad()
    loss.backward()
    model.optimizer.step()
    stepped = cached()
    assert not torch.equal(stepped, first) and torch.equal(stepped, fresh(model.elites))
    # in-place write to a parameter
    with torch.no_grad():
        model.biases[-1].add_(0.5)
    assert torch.equal(cached(), fresh(model.elites))
    # elites changed in place, and an equal-valued new index tensor
    model.select_elites(torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0]))
    assert model.elites.tolist() == [2, 3, 4]
    assert torch.equal(cached(), fresh(torch.tensor([2, 3, 4])))
    assert torch.equal(cached(torch.tensor([2, 3, 4])), fresh(torch.tensor([2, 3, 4])))
    # load_state_dict
    other = _model(device, seed=1)
    model.load_state_dict(other.state_dict())
    expected = other.predict(obs, act, members=other.elites, deterministic=True)[0]
    assert torch.equal(cached(), expected)
    # fit
    s, a, r, nxt = _data(50, seed=8)
    model.fit(s, a, r, nxt, max_epochs=1)
    assert not torch.equal(cached(), expected) and torch.equal(cached(), fresh(model.elites))


def test_no_reward_model(device: torch.device) -> None:
    model = _model(device, dataclasses.replace(TINY, learn_reward=False))
    assert model.out_dim == 2 and model.weights[-1].shape[-1] == 4
    s, a, _, nxt = _data(64, seed=9)
    info = model.fit(s, a, None, nxt, max_epochs=1)
    assert math.isfinite(info['model/holdout_mse'])
    obs, act = _randn(5, 4, 2, device=device), _randn(5, 4, 1, device=device)
    next_obs, reward = model.predict(obs, act)
    assert next_obs.shape == (5, 4, 2) and reward is None
    assert model.predict_random_elite(obs[0], act[0])[1] is None


def test_shape_errors_are_clear(device: torch.device) -> None:
    model = _model(device)
    obs, act = _randn(5, 4, 2, device=device), _randn(5, 4, 1, device=device)
    with pytest.raises(ValueError, match=r'obs must be \(M, B, 2\)'):
        model.predict(obs[..., :1], act)
    with pytest.raises(ValueError, match=r'act must be \(M, B, 1\)'):
        model.predict(obs, act[0])
    with pytest.raises(ValueError, match='disagree'):
        model.predict(obs, act[:, :3])
    with pytest.raises(ValueError, match='member slices'):
        model.predict(obs, act, members=model.elites)
    with pytest.raises(ValueError, match=r'members must lie in \[0, 5\)'):
        model.predict(obs[:2], act[:2], members=torch.tensor([0, 5]))
    with pytest.raises(ValueError, match='integer'):
        model.predict(obs[:2], act[:2], members=torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r'x must be \(M, B, 3\)'):
        model(obs)
    with pytest.raises(ValueError, match=r'obs must be \(B, 2\)'):
        model.predict_random_elite(obs, act)
    s, a, r, nxt = _data(10, seed=0)
    with pytest.raises(ValueError, match='next_obs must be'):
        model.fit(s, a, r, nxt[:9])
    with pytest.raises(ValueError, match='reward must be'):
        model.fit(s, a, r[:9], nxt)
    with pytest.raises(ValueError, match='reward is required'):
        model.fit(s, a, None, nxt)
    with pytest.raises(ValueError, match='NaN or inf'):
        model.fit(s, a, np.full(10, np.nan), nxt)
    with pytest.raises(ValueError, match='target must be'):
        model.loss(s, a, np.zeros((10, 2)))
    with pytest.raises(ValueError, match='one slice per member'):
        model.loss(obs[:2], act[:2], torch.zeros(2, 4, 3))
