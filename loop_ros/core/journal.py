"""Append-only journal of transitions on disk: what a learner received survives ``kill -9``.

The learner keeps its replay buffer in memory and writes its whole state only with each
checkpoint (``learner_state.pt``). Between two such states the transitions go to this journal:
rows are collected in memory and every ``flush`` writes them as one **chunk** file
``chunk_<seq>.npz`` (numpy arrays, no pickle), atomically (temporary file, fsync, rename, fsync of
the directory). A crash therefore loses at most the rows since the last flush (the learner
flushes every ``journal_flush_s``), never a chunk half written.

After a learner state is saved with ``journal_seq = flush()``, every chunk up to that sequence
number is inside the state and :meth:`TransitionJournal.compact` removes them. On restart,
:meth:`TransitionJournal.replay` yields the chunks *after* the state's ``journal_seq`` in order;
with no state at all (a crash before the first checkpoint) it yields every chunk.

Chunk arrays (N rows): ``obs`` (N, O) float32, ``action`` (N, A) float32, ``next_obs`` (N, O)
float32, ``reward``, ``cost`` (N,) float32, ``terminated``, ``truncated`` (N,) bool, ``stream``
(N,) int64.
"""
from __future__ import annotations

import os
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from loop_ros.core.checkpoint import fsync_directory

CHUNK_RE = re.compile(r'^chunk_(\d{10})\.npz$')
FIELDS = ('obs', 'action', 'next_obs', 'reward', 'cost', 'terminated', 'truncated', 'stream')


class JournalError(RuntimeError):
    """A chunk cannot be written or read (the file is named)."""


@dataclass(frozen=True)
class Chunk:
    """The rows of one chunk file."""

    seq: int
    obs: np.ndarray
    action: np.ndarray
    next_obs: np.ndarray
    reward: np.ndarray
    cost: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    stream: np.ndarray

    def __len__(self) -> int:
        return int(self.reward.shape[0])


class TransitionJournal:
    """Chunks of transitions in ``directory`` (created if needed); see the module docstring."""

    def __init__(self, directory: str | os.PathLike[str], obs_dim: int, act_dim: int) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self._rows: list[tuple] = []
        seqs = self.sequence_numbers()
        self.last_seq = seqs[-1] if seqs else 0
        """Sequence number of the newest chunk on disk (0: none yet)."""

    def sequence_numbers(self) -> list[int]:
        """Sequence numbers of the chunk files on disk, ascending."""
        return sorted(int(m.group(1)) for p in self.directory.iterdir()
                      if (m := CHUNK_RE.match(p.name)))

    @property
    def pending(self) -> int:
        """Rows appended but not flushed yet (lost by a crash now)."""
        return len(self._rows)

    def append(self, obs: np.ndarray, action: np.ndarray, reward: float, cost: float,
               next_obs: np.ndarray, terminated: bool, truncated: bool, stream: int) -> None:
        """Remember one transition until the next :meth:`flush`."""
        self._rows.append((obs, action, next_obs, reward, cost, terminated, truncated, stream))

    def flush(self) -> int:
        """Write the pending rows as the next chunk (if any); return the newest sequence number.

        Raises:
            JournalError: the write failed (the rows stay pending, nothing partial is left).
        """
        if not self._rows:
            return self.last_seq
        rows = self._rows
        cols = list(zip(*rows))
        arrays = {
            'obs': np.asarray(cols[0], np.float32).reshape(len(rows), self.obs_dim),
            'action': np.asarray(cols[1], np.float32).reshape(len(rows), self.act_dim),
            'next_obs': np.asarray(cols[2], np.float32).reshape(len(rows), self.obs_dim),
            'reward': np.asarray(cols[3], np.float32), 'cost': np.asarray(cols[4], np.float32),
            'terminated': np.asarray(cols[5], bool), 'truncated': np.asarray(cols[6], bool),
            'stream': np.asarray(cols[7], np.int64),
        }
        seq = self.last_seq + 1
        path = self.directory / f'chunk_{seq:010d}.npz'
        fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=self.directory)
        try:
            with os.fdopen(fd, 'wb') as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise JournalError(f'cannot write {path}: {exc}') from exc
        fsync_directory(self.directory)
        self._rows = []
        self.last_seq = seq
        return seq

    def compact(self, upto: int) -> int:
        """Remove the chunks with sequence number <= ``upto`` (they are in a saved state).

        Returns the number of files removed. Temporary files of an interrupted write go too.
        """
        removed = 0
        for p in self.directory.iterdir():
            m = CHUNK_RE.match(p.name)
            stale_tmp = p.name.startswith('.chunk_') and p.name.endswith('.tmp')
            if (m and int(m.group(1)) <= upto) or stale_tmp:
                p.unlink(missing_ok=True)
                removed += 1
        return removed

    def replay(self, after: int = 0) -> Iterator[Chunk]:
        """The chunks with sequence number > ``after``, oldest first.

        Raises:
            JournalError: a chunk is unreadable or has other sizes than this journal (named).
        """
        for seq in self.sequence_numbers():
            if seq > after:
                yield self._read(seq)

    def _read(self, seq: int) -> Chunk:
        path = self.directory / f'chunk_{seq:010d}.npz'
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in FIELDS}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            raise JournalError(f'journal chunk {path} is unreadable ({type(exc).__name__}: '
                               f'{exc})') from exc
        n = arrays['reward'].shape[0]
        expect = {'obs': (n, self.obs_dim), 'action': (n, self.act_dim),
                  'next_obs': (n, self.obs_dim)}
        for name in FIELDS:
            shape = expect.get(name, (n,))
            if arrays[name].shape != shape:
                raise JournalError(f'journal chunk {path}: {name} has shape '
                                   f'{arrays[name].shape}, expected {shape}')
        return Chunk(seq=seq, **arrays)
