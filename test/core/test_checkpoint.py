"""Atomic, versioned checkpoints: exact round trip and clear refusals."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from loop_ros.core import checkpoint as ckpt
from loop_ros.core.checkpoint import (FORMAT_VERSION, CheckpointError, latest_checkpoint,
                                      load_checkpoint, save_checkpoint)


def _payload() -> dict:
    g = torch.Generator().manual_seed(0)
    return {
        'weights': {'w0': torch.randn(7, 5, 3, generator=g), 'b0': torch.zeros(7, 1, 3)},
        'counts': torch.arange(10, dtype=torch.long),
        'mask': torch.tensor([True, False, True]),
        'half': torch.randn(4, generator=g).to(torch.float64),
        'list': [1, 2.5, 'x', None, True, (3, 4)],
        'step': 1234,
        'name': 'ensemble',
        'nested': {0: {'deep': [torch.ones(2)]}},
    }


def _assert_same(a: object, b: object) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    else:
        assert type(a) is type(b) and a == b


def test_round_trip_exact_with_metadata(tmp_path: Path) -> None:
    payload = _payload()
    path = save_checkpoint(tmp_path / 'sub' / 'model.pt', payload, kind='ensemble')
    assert path == tmp_path / 'sub' / 'model.pt' and path.is_file()
    _assert_same(payload, load_checkpoint(path, kind='ensemble'))
    meta = load_checkpoint(path, with_meta=True)
    assert meta['format_version'] == FORMAT_VERSION and meta['kind'] == 'ensemble'
    assert isinstance(meta['loop_ros_version'], str) and meta['loop_ros_version'] != 'unknown'
    assert abs(meta['created_unix'] - time.time()) < 600
    # The file is readable by plain torch.load(weights_only=True).
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {'format_version', 'kind', 'loop_ros_version', 'created_unix', 'payload'}


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match='does not exist'):
        load_checkpoint(tmp_path / 'nope.pt')


@pytest.mark.parametrize('keep', [0.0, 0.01, 0.5, 0.98])
def test_truncated_file_refused(tmp_path: Path, keep: float) -> None:
    path = save_checkpoint(tmp_path / 'a.pt', _payload(), kind='x')
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(CheckpointError, match='truncated or corrupt') as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_garbage_file_refused(tmp_path: Path) -> None:
    path = tmp_path / 'g.pt'
    path.write_bytes(b'\x00garbage' * 100)
    with pytest.raises(CheckpointError, match='truncated or corrupt'):
        load_checkpoint(path)


def test_version_mismatch_refused(tmp_path: Path) -> None:
    path = tmp_path / 'old.pt'
    torch.save({'format_version': 99, 'kind': 'ensemble', 'loop_ros_version': '9.9',
                'created_unix': 0.0, 'payload': {}}, path)
    with pytest.raises(CheckpointError, match='format version 99') as info:
        load_checkpoint(path)
    assert f'version {FORMAT_VERSION}' in str(info.value)


def test_kind_mismatch_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / 'a.pt', {'x': 1}, kind='sac')
    with pytest.raises(CheckpointError, match="'sac'.*expected 'ensemble'"):
        load_checkpoint(path, kind='ensemble')
    assert load_checkpoint(path, kind='sac') == {'x': 1}


def test_foreign_files_refused(tmp_path: Path) -> None:
    plain = tmp_path / 'plain.pt'
    torch.save(torch.ones(3), plain)
    with pytest.raises(CheckpointError, match='not a loop_ros checkpoint'):
        load_checkpoint(plain)
    unsafe = tmp_path / 'unsafe.pt'
    torch.save({'obj': ValueError('arbitrary object')}, unsafe)
    with pytest.raises(CheckpointError, match='weights_only'):
        load_checkpoint(unsafe)


@pytest.mark.parametrize('bad', [np.zeros(3), {'a': object()}, [torch.nn.Linear(2, 2)],
                                 {(1, 2): 3}])
def test_unloadable_payload_refused_before_writing(tmp_path: Path, bad: object) -> None:
    with pytest.raises(CheckpointError, match='payload'):
        save_checkpoint(tmp_path / 'a.pt', {'bad': bad}, kind='x')
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    for step in range(3):
        save_checkpoint(tmp_path / 'model.pt', {'step': step}, kind='x')
    assert [p.name for p in tmp_path.iterdir()] == ['model.pt']
    assert load_checkpoint(tmp_path / 'model.pt')['step'] == 2


def test_failed_save_keeps_existing_checkpoint(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_checkpoint(tmp_path / 'model.pt', {'w': torch.arange(5)}, kind='x')
    before = path.read_bytes()

    def broken_save(obj: object, f: object, *args: object, **kwargs: object) -> None:
        f.write(b'PK\x03\x04 half a checkpoint')  # type: ignore[attr-defined]
        raise OSError('disk full (simulated)')

    monkeypatch.setattr(ckpt.torch, 'save', broken_save)
    with pytest.raises(OSError, match='disk full'):
        save_checkpoint(path, {'w': torch.zeros(5)}, kind='x')
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ['model.pt']
    assert path.read_bytes() == before
    assert torch.equal(load_checkpoint(path)['w'], torch.arange(5))


def test_latest_checkpoint(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path / 'missing') is None
    assert latest_checkpoint(tmp_path) is None
    paths = [save_checkpoint(tmp_path / f'policy_{s:06d}.pt', {'s': s}, kind='x')
             for s in (100, 300, 200)]
    for i, p in enumerate(paths):  # modification order = 100, 300, 200
        os.utime(p, ns=(10**18 + i * 10**9, 10**18 + i * 10**9))
    tmp = tmp_path / '.policy_999999.pt.abc123.tmp'  # an unfinished save, newest of all
    tmp.write_bytes(b'partial')
    os.utime(tmp, ns=(2 * 10**18, 2 * 10**18))
    assert latest_checkpoint(tmp_path) == paths[2]
    assert latest_checkpoint(tmp_path, '*policy*') == paths[2]
    assert latest_checkpoint(tmp_path, 'policy_0003*.pt') == paths[1]
    for p in paths:  # equal times: the name decides
        os.utime(p, ns=(10**18, 10**18))
    assert latest_checkpoint(tmp_path) == paths[1]
