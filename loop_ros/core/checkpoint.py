"""Atomic, versioned checkpoints that load with ``torch.load(weights_only=True)``.

A checkpoint file holds one dict::

    {'format_version': FORMAT_VERSION, 'kind': 'ensemble' | 'sac' | 'replay_buffer' | ...,
     'loop_ros_version': '0.1.0', 'created_unix': 1.7e9, 'payload': {...}}

The payload may contain only what ``weights_only`` loading accepts: tensors, dicts, lists,
tuples, str, int, float, bool and None (so loading never runs arbitrary pickled code).
Writes go to a temporary file in the target directory, are flushed and fsynced, then renamed
over the target (``os.replace``) and the directory is fsynced: a reader sees either the old or
the new checkpoint, never a partial one, even across a crash.
"""
from __future__ import annotations

import io
import os
import pickle
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import torch

FORMAT_VERSION = 1
"""Version of the wrapper layout above; bump when it changes incompatibly."""
TEMP_SUFFIX = '.tmp'
"""Suffix of the temporary files written next to the target (hidden, dot-prefixed)."""
FILE_MODE = 0o644
"""Permissions of a written checkpoint (the temporary file starts as 0o600)."""

_WRAPPER_KEYS = ('format_version', 'kind', 'loop_ros_version', 'created_unix', 'payload')
_LEAF_TYPES = (str, int, float, bool, type(None))


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written or read (missing, corrupt, wrong version or kind)."""


def _loop_ros_version() -> str:
    package = sys.modules.get('loop_ros')
    return str(getattr(package, '__version__', 'unknown'))


def _check_content(value: Any, where: str) -> None:
    """Raise CheckpointError unless ``value`` is weights_only-loadable."""
    if isinstance(value, torch.Tensor):
        if type(value) not in (torch.Tensor, torch.nn.Parameter):
            raise CheckpointError(f'{where} is a tensor subclass {type(value).__name__}; '
                                  'store a plain tensor')
        return
    if isinstance(value, _LEAF_TYPES):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise CheckpointError(f'{where} has a key {key!r} of type {type(key).__name__}; '
                                      'keys must be str or int')
            _check_content(item, f'{where}[{key!r}]')
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_content(item, f'{where}[{i}]')
        return
    raise CheckpointError(f'{where} has type {type(value).__module__}.{type(value).__qualname__}, '
                          'which weights_only loading refuses; use tensors, dicts, lists, str, '
                          'int, float, bool or None')


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f'{type(exc).__name__}: {text[0] if text else ""}'


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. platforms that cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any], kind: str) -> Path:
    """Write ``payload`` atomically as a ``kind`` checkpoint at ``path``; return the path.

    The parent directory is created if needed. On any failure the temporary file is removed
    and an existing checkpoint at ``path`` is left untouched.

    Raises:
        CheckpointError: the payload is not a dict or holds content weights_only refuses.
        OSError: the file system refused the write (propagated after cleaning up).
    """
    path = Path(path)
    if not isinstance(payload, dict):
        raise CheckpointError(f'checkpoint payload must be a dict, got {type(payload).__name__}')
    if not isinstance(kind, str) or not kind:
        raise CheckpointError(f'checkpoint kind must be a non-empty string, got {kind!r}')
    _check_content(payload, 'payload')
    wrapped = {
        'format_version': FORMAT_VERSION,
        'kind': kind,
        'loop_ros_version': _loop_ros_version(),
        'created_unix': time.time(),
        'payload': payload,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f'.{path.name}.', suffix=TEMP_SUFFIX,
                                    dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(wrapped, f)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    return path


def load_checkpoint(path: str | os.PathLike[str], kind: str | None = None,
                    map_location: str | torch.device | None = 'cpu',
                    with_meta: bool = False) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    Args:
        path: the checkpoint file.
        kind: expected kind; None accepts any.
        map_location: passed to ``torch.load``.
        with_meta: return the whole wrapper (``format_version``, ``kind``, ``loop_ros_version``,
            ``created_unix``, ``payload``) instead of the payload only.

    Returns:
        The payload dict (or the wrapper when ``with_meta``).

    Raises:
        CheckpointError: missing file, truncated or corrupt file, content weights_only refuses,
            format version or kind mismatch.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f'checkpoint {path} does not exist')
    if not path.is_file():
        raise CheckpointError(f'checkpoint {path} is not a regular file')
    return _load(path, f'checkpoint {path}', kind, map_location, with_meta)


def load_checkpoint_bytes(data: bytes, kind: str | None = None, name: str = 'checkpoint bytes',
                          map_location: str | torch.device | None = 'cpu',
                          with_meta: bool = False) -> dict[str, Any]:
    """:func:`load_checkpoint` of a file's content received in memory (e.g. over a topic).

    ``name`` says where the bytes came from in errors. Same checks, same errors.
    """
    if not data:
        raise CheckpointError(f'{name} is empty')
    return _load(io.BytesIO(bytes(data)), name, kind, map_location, with_meta)


def checkpoint_bytes(path: str | os.PathLike[str]) -> bytes:
    """The content of a checkpoint file (what :func:`load_checkpoint_bytes` reads)."""
    return Path(path).read_bytes()


def _load(source: Path | io.BytesIO, name: str, kind: str | None,
          map_location: str | torch.device | None, with_meta: bool) -> dict[str, Any]:
    try:
        wrapped = torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = 'weights only' in str(exc).lower() or 'weights_only' in str(exc).lower()
        if isinstance(source, io.BytesIO):
            source.seek(0)
        if refused and zipfile.is_zipfile(source):  # a complete file with disallowed objects
            raise CheckpointError(f'{name} holds objects that weights_only loading '
                                  f'refuses (not written by loop_ros?): {_first_line(exc)}'
                                  ) from exc
        raise CheckpointError(f'{name} is truncated or corrupt: not a complete torch '
                              f'zip archive ({_first_line(exc)})') from exc
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError, KeyError,
            AttributeError, IndexError, TypeError) as exc:
        raise CheckpointError(f'{name} is truncated or corrupt: '
                              f'{_first_line(exc)}') from exc
    if not isinstance(wrapped, dict) or any(k not in wrapped for k in _WRAPPER_KEYS):
        raise CheckpointError(f'{name} is not a loop_ros checkpoint (expected a dict '
                              f'with keys {list(_WRAPPER_KEYS)})')
    version = wrapped['format_version']
    if version != FORMAT_VERSION:
        raise CheckpointError(f'{name} has format version {version!r}, but this '
                              f'loop_ros ({_loop_ros_version()}) reads version {FORMAT_VERSION} '
                              f'(written by loop_ros {wrapped["loop_ros_version"]})')
    if kind is not None and wrapped['kind'] != kind:
        raise CheckpointError(f'{name} is a {wrapped["kind"]!r} checkpoint, '
                              f'expected {kind!r}')
    if not isinstance(wrapped['payload'], dict):
        raise CheckpointError(f'{name} has a payload of type '
                              f'{type(wrapped["payload"]).__name__}, expected a dict')
    return wrapped if with_meta else wrapped['payload']


def latest_checkpoint(directory: str | os.PathLike[str], pattern: str = '*.pt') -> Path | None:
    """Newest regular file in ``directory`` matching ``pattern``, or None.

    Newest means the latest modification time; ties break on the name (so zero-padded step
    numbers order correctly). Temporary files of an unfinished save are ignored.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return None
    candidates = []
    for p in directory.glob(pattern):
        if p.name.startswith('.') and p.name.endswith(TEMP_SUFFIX):
            continue
        try:
            if p.is_file():
                candidates.append((p.stat().st_mtime_ns, p.name, p))
        except OSError:  # removed between glob and stat
            continue
    if not candidates:
        return None
    return max(candidates, key=lambda c: (c[0], c[1]))[2]
