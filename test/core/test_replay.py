"""Replay buffer: wraparound, sampling, per-stream next actions, persistence, input checks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from loop_ros.core.checkpoint import CheckpointError
from loop_ros.core.replay import Batch, ReplayBuffer

O, A = 3, 2


def _obs(i: int) -> np.ndarray:
    """Transition i is recognisable: obs = (i, i, i), action = (i, -i)."""
    return np.full(O, float(i))


def _act(i: int) -> np.ndarray:
    return np.array([float(i), -float(i)])


def _add(buf: ReplayBuffer, i: int, stream: int = 0, terminated: bool = False,
         truncated: bool = False) -> None:
    buf.add(_obs(i), _act(i), float(i), 0.1 * i, _obs(i) + 0.5, terminated, truncated,
            stream=stream)


def _ids(t: torch.Tensor) -> list[int]:
    return t[:, 0].round().long().tolist()


def _next_map(buf: ReplayBuffer, draws: int = 2000) -> dict[int, int | None]:
    """id -> id of next_action's transition (None if invalid), from many samples."""
    batch = buf.sample(draws, generator=torch.Generator().manual_seed(1))
    out: dict[int, int | None] = {}
    for i, valid, na in zip(_ids(batch.obs), batch.next_action_valid.tolist(),
                            batch.next_action.tolist()):
        out[i] = int(round(na[0])) if valid else None
        if not valid:
            assert na == [0.0, 0.0]
        else:
            assert na[1] == -na[0]
    return out


def test_wraparound_keeps_newest_in_order() -> None:
    buf = ReplayBuffer(O, A, capacity=5)
    for i in range(8):
        _add(buf, i)
        assert len(buf) == min(i + 1, 5)
    data = buf.all()
    assert _ids(data.obs) == [3, 4, 5, 6, 7]
    assert data.reward.tolist() == [3.0, 4.0, 5.0, 6.0, 7.0]
    assert torch.allclose(data.cost, torch.tensor([0.3, 0.4, 0.5, 0.6, 0.7]))
    assert torch.equal(data.next_obs, data.obs + 0.5)
    assert data.terminated.dtype == torch.float32 and buf.num_added == 8


def test_sampling_covers_all_rows_uniformly() -> None:
    buf = ReplayBuffer(O, A, capacity=10)
    for i in range(13):  # wrapped: ids 3..12
        _add(buf, i)
    batch = buf.sample(5000, generator=torch.Generator().manual_seed(0))
    assert isinstance(batch, Batch) and batch.obs.shape == (5000, O)
    assert batch.action.shape == (5000, A) and batch.reward.shape == (5000,)
    counts = np.bincount(_ids(batch.obs), minlength=13)
    assert counts[:3].sum() == 0
    assert counts[3:].min() > 400 and counts[3:].max() < 600  # 500 expected, sd ~21
    # rows stay consistent across fields
    assert torch.equal(batch.reward, batch.obs[:, 0]) and torch.equal(batch.action[:, 0],
                                                                       batch.obs[:, 0])


def test_sampling_is_reproducible_with_a_generator() -> None:
    buf = ReplayBuffer(O, A, capacity=50)
    for i in range(30):
        _add(buf, i)
    a = buf.sample(64, generator=torch.Generator().manual_seed(7))
    b = buf.sample(64, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a.obs, b.obs)


def test_next_action_per_stream_and_episode_end() -> None:
    buf = ReplayBuffer(O, A, capacity=100)
    # stream 0: 0 -> 2 -> 4 (terminated) | 6 -> 8 ; stream 1: 1 -> 3 -> 5 (truncated) | 7
    _add(buf, 0, stream=0)
    _add(buf, 1, stream=1)
    _add(buf, 2, stream=0)
    _add(buf, 3, stream=1)
    _add(buf, 4, stream=0, terminated=True)
    _add(buf, 5, stream=1, truncated=True)
    _add(buf, 6, stream=0)
    _add(buf, 7, stream=1)
    _add(buf, 8, stream=0)
    expected = {0: 2, 1: 3, 2: 4, 3: 5, 4: None, 5: None, 6: 8, 7: None, 8: None}
    assert _next_map(buf) == expected
    _add(buf, 9, stream=1)  # successor of 7 arrives later
    expected.update({7: 9, 9: None})
    assert _next_map(buf) == expected
    batch = buf.sample(500, generator=torch.Generator().manual_seed(3))
    term = dict(zip(_ids(batch.obs), batch.terminated.tolist()))
    assert term[4] == 1.0 and term[5] == 0.0 and term[0] == 0.0


def test_next_action_across_wraparound() -> None:
    buf = ReplayBuffer(O, A, capacity=4)
    for i in range(10):
        _add(buf, i, stream=i % 2)
    # stored: 6, 7, 8, 9; 6 -> 8, 7 -> 9, 8 and 9 wait for successors
    assert _next_map(buf) == {6: 8, 7: 9, 8: None, 9: None}
    _add(buf, 10, stream=0)  # overwrites 6; 8 -> 10
    assert _next_map(buf) == {7: 9, 8: 10, 9: None, 10: None}


def test_pending_transition_overwritten_before_its_successor() -> None:
    buf = ReplayBuffer(O, A, capacity=3)
    _add(buf, 0, stream=1)
    for i in range(1, 5):
        _add(buf, i, stream=0)  # row of transition 0 is overwritten
    _add(buf, 5, stream=1)  # stream 1's predecessor is gone: nothing to link
    assert _next_map(buf) == {3: 4, 4: None, 5: None}


def _flat_state(buf: ReplayBuffer) -> dict:
    return {k: (v.clone() if isinstance(v, torch.Tensor) else v)
            for k, v in buf.state_dict().items()}


def _assert_state_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert torch.equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], k


def _random_stream(n: int, seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, O))
    act = rng.normal(size=(n, A))
    rew, cost = rng.normal(size=n), rng.uniform(size=n)
    nxt = rng.normal(size=(n, O))
    term, trunc = rng.uniform(size=n) < 0.1, rng.uniform(size=n) < 0.05
    streams = rng.integers(0, 3, size=n)
    return obs, act, rew, cost, nxt, term, trunc, streams


@pytest.mark.parametrize('capacity', [7, 40, 100])
def test_add_batch_equals_sequential_adds(capacity: int) -> None:
    data = _random_stream(50, seed=capacity)
    seq, bat = ReplayBuffer(O, A, capacity), ReplayBuffer(O, A, capacity)
    for k in range(50):
        seq.add(*(d[k] for d in data[:7]), stream=int(data[7][k]))
    bat.add_batch(*(d[:20] for d in data[:7]), stream=data[7][:20])
    bat.add_batch(*(d[20:] for d in data[:7]), stream=data[7][20:])
    _assert_state_equal(_flat_state(seq), _flat_state(bat))
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    a, b = seq.sample(64, generator=g1), bat.sample(64, generator=g2)
    assert torch.equal(a.next_action, b.next_action)
    assert torch.equal(a.next_action_valid, b.next_action_valid)


def test_state_dict_round_trip_and_continuation(tmp_path: Path) -> None:
    data = _random_stream(60, seed=0)
    buf = ReplayBuffer(O, A, capacity=32)
    buf.add_batch(*(d[:45] for d in data[:7]), stream=data[7][:45])
    state = buf.state_dict()
    assert state['obs'].shape == (32, O)  # only the filled part
    small = ReplayBuffer(O, A, capacity=100)
    small.add_batch(*(d[:5] for d in data[:7]), stream=data[7][:5])
    assert small.state_dict()['obs'].shape == (5, O)

    restored = ReplayBuffer(O, A, capacity=32)
    restored.load_state_dict(state)
    from_file = ReplayBuffer(O, A, capacity=32)
    from_file.load(buf.save(tmp_path / 'replay.pt'))
    for other in (restored, from_file):
        _assert_state_equal(_flat_state(buf), _flat_state(other))
        for x, y in zip(buf.all(), other.all()):
            assert torch.equal(x, y)
    # Successor tracking continues identically after the restore.
    for target in (buf, restored, from_file):
        target.add_batch(*(d[45:] for d in data[:7]), stream=data[7][45:])
    for other in (restored, from_file):
        a = buf.sample(128, generator=torch.Generator().manual_seed(5))
        b = other.sample(128, generator=torch.Generator().manual_seed(5))
        for field in ('obs', 'action', 'reward', 'cost', 'next_obs', 'terminated',
                      'next_action', 'next_action_valid'):
            assert torch.equal(getattr(a, field), getattr(b, field)), field


def test_load_into_smaller_capacity_keeps_newest() -> None:
    buf = ReplayBuffer(O, A, capacity=10)
    for i in range(10):
        _add(buf, i, stream=i % 2)
    small = ReplayBuffer(O, A, capacity=4)
    small.load_state_dict(buf.state_dict())
    assert len(small) == 4 and _ids(small.all().obs) == [6, 7, 8, 9]
    assert _next_map(small) == {6: 8, 7: 9, 8: None, 9: None}
    _add(small, 10, stream=0)
    assert _next_map(small) == {7: 9, 8: 10, 9: None, 10: None}


def test_load_refuses_other_dims_and_wrong_kind(tmp_path: Path) -> None:
    buf = ReplayBuffer(O, A, capacity=4)
    _add(buf, 0)
    with pytest.raises(ValueError, match='obs/act dims'):
        ReplayBuffer(O + 1, A, capacity=4).load_state_dict(buf.state_dict())
    from loop_ros.core.checkpoint import save_checkpoint
    path = save_checkpoint(tmp_path / 'other.pt', {'x': 1}, kind='sac')
    with pytest.raises(CheckpointError, match='expected'):
        buf.load(path)


@pytest.mark.parametrize('field, value, message', [
    ('obs', np.zeros(O + 1), 'obs must have shape'),
    ('obs', np.zeros((1, O)), 'obs must have shape'),
    ('action', np.zeros(A + 1), 'action must have shape'),
    ('next_obs', np.array([0.0, np.nan, 0.0]), 'next_obs contains NaN'),
    ('obs', np.array([0.0, np.inf, 0.0]), 'obs contains NaN or inf'),
    ('reward', float('nan'), 'reward contains NaN'),
    ('cost', [1.0, 2.0], 'cost must be a scalar'),
    ('terminated', 2, 'terminated must hold booleans'),
    ('stream', -1, 'stream ids must be >= 0'),
    ('stream', 1.5, 'stream must be an integer'),
])
def test_bad_input_refused_and_buffer_unchanged(field: str, value: object, message: str) -> None:
    buf = ReplayBuffer(O, A, capacity=4)
    for i in range(6):
        _add(buf, i, stream=i % 2)
    before = _flat_state(buf)
    args = {'obs': _obs(9), 'action': _act(9), 'reward': 9.0, 'cost': 0.9,
            'next_obs': _obs(9), 'terminated': False, 'truncated': False, 'stream': 0}
    args[field] = value
    with pytest.raises(ValueError, match=message):
        buf.add(**args)  # type: ignore[arg-type]
    _assert_state_equal(before, _flat_state(buf))
    assert len(buf) == 4 and buf.num_added == 6


def test_bad_batch_refused_and_buffer_unchanged() -> None:
    buf = ReplayBuffer(O, A, capacity=8)
    data = list(_random_stream(5, seed=1))
    buf.add_batch(*data[:7], stream=data[7])
    before = _flat_state(buf)
    for k, bad in ((1, np.zeros((4, A))), (2, np.zeros(6)), (5, np.zeros((5, 1))),
                   (4, np.full((5, O), np.nan))):
        args = list(data)
        args[k] = bad
        with pytest.raises(ValueError):
            buf.add_batch(*args[:7], stream=args[7])
    with pytest.raises(ValueError, match='stream'):
        buf.add_batch(*data[:7], stream=np.zeros(4, dtype=int))
    _assert_state_equal(before, _flat_state(buf))


def test_empty_buffer_cannot_be_sampled() -> None:
    buf = ReplayBuffer(O, A, capacity=4)
    with pytest.raises(ValueError, match='empty'):
        buf.sample(2)
    assert len(buf.all().obs) == 0


def test_buffer_on_device(device: torch.device) -> None:
    buf = ReplayBuffer(O, A, capacity=6, device=device)
    for i in range(9):
        _add(buf, i, stream=i % 2, terminated=(i == 5))
    gen = torch.Generator(device=device).manual_seed(0)
    batch = buf.sample(200, generator=gen)
    assert batch.obs.device.type == device.type
    assert _next_map(buf) == {3: 5, 4: 6, 5: None, 6: 8, 7: None, 8: None}
