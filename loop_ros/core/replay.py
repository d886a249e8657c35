"""Ring replay buffer of transitions, with per-stream successor tracking for SARSA backups.

Stores (obs, action, reward, cost, next_obs, terminated, truncated) as tensors on one device.
Several robots (``stream`` ids) may feed one buffer; for each transition the buffer remembers
its successor, the next transition of the same stream, so a sample can carry the action
actually taken next (``next_action``, for LOOP-SARSA: ``--algo loop-sarsa`` in
``docs/algorithm.md``).

Bookkeeping uses global insertion counts: the transition with count c lives in row c % capacity
and is present while c >= total - size. A transition's successor is stored as the count offset
to it (-1 when there is none yet, or when the transition ended its episode).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from .checkpoint import load_checkpoint, save_checkpoint

CHECKPOINT_KIND = 'replay_buffer'
"""``kind`` of replay-buffer checkpoints."""
NO_SUCCESSOR = -1
"""Successor offset of a transition without a (valid) successor."""

ArrayLike = torch.Tensor | np.ndarray | float | int | bool | list


@dataclass(frozen=True)
class Batch:
    """A sampled minibatch.

    Shapes:
        obs, next_obs: (B, O); action, next_action: (B, A); reward, cost, terminated: (B,)
        (terminated as float 0/1); next_action_valid: (B,) bool. ``next_action`` is zero where
        it is not valid (episode ended, or the successor has not arrived yet).
    """

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    cost: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    next_action: torch.Tensor
    next_action_valid: torch.Tensor


class Transitions(NamedTuple):
    """Everything stored, oldest first (for model training).

    Shapes:
        obs, next_obs: (N, O); action: (N, A); reward, cost, terminated, truncated: (N,)
        (flags as float 0/1).
    """

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    cost: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor


class ReplayBuffer:
    """Fixed-capacity FIFO of transitions; the oldest are overwritten first.

    Shapes:
        C = capacity, O = obs_dim, A = act_dim; storage obs, next_obs (C, O), action (C, A),
        reward, cost (C,), terminated, truncated (C,) bool, stream, successor offset (C,) long.
    """

    def __init__(self, obs_dim: int, act_dim: int, capacity: int,
                 device: torch.device | str = 'cpu', dtype: torch.dtype = torch.float32) -> None:
        if obs_dim < 1 or act_dim < 1 or capacity < 1:
            raise ValueError(f'obs_dim, act_dim and capacity must be >= 1, got {obs_dim}, '
                             f'{act_dim}, {capacity}')
        self.obs_dim, self.act_dim, self.capacity = int(obs_dim), int(act_dim), int(capacity)
        self.device, self.dtype = torch.device(device), dtype
        f = {'device': self.device, 'dtype': dtype}
        c = self.capacity
        self._obs = torch.zeros(c, self.obs_dim, **f)
        self._action = torch.zeros(c, self.act_dim, **f)
        self._reward = torch.zeros(c, **f)
        self._cost = torch.zeros(c, **f)
        self._next_obs = torch.zeros(c, self.obs_dim, **f)
        self._terminated = torch.zeros(c, dtype=torch.bool, device=self.device)
        self._truncated = torch.zeros(c, dtype=torch.bool, device=self.device)
        self._stream = torch.zeros(c, dtype=torch.long, device=self.device)
        self._succ = torch.full((c,), NO_SUCCESSOR, dtype=torch.long, device=self.device)
        self._size = 0
        self._total = 0
        self._pending: dict[int, int] = {}  # stream -> count of its last non-final transition

    def __len__(self) -> int:
        return self._size

    @property
    def num_added(self) -> int:
        """Transitions ever added (the write pointer is ``num_added % capacity``)."""
        return self._total

    # ------------------------------------------------------------------ input checks

    def _floats(self, value: ArrayLike, name: str, shape: tuple[int | None, ...]) -> torch.Tensor:
        try:
            t = torch.as_tensor(value, dtype=self.dtype, device=self.device)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f'{name} cannot be converted to a tensor: {exc}') from exc
        want = tuple('N' if s is None else s for s in shape)
        if t.dim() != len(shape) or any(s is not None and s != d for s, d in zip(shape, t.shape)):
            raise ValueError(f'{name} must have shape {want}, got {tuple(t.shape)}')
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f'{name} contains NaN or inf')
        return t

    @staticmethod
    def _flags(value: ArrayLike, name: str, n: int) -> torch.Tensor:
        try:
            t = torch.as_tensor(value).to('cpu')
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f'{name} cannot be converted to a tensor: {exc}') from exc
        if t.shape != (n,):
            raise ValueError(f'{name} must have shape ({n},), got {tuple(t.shape)}')
        if t.dtype != torch.bool:
            if t.is_complex() or not bool(((t == 0) | (t == 1)).all()):
                raise ValueError(f'{name} must hold booleans (or 0/1)')
            t = t != 0
        return t

    @staticmethod
    def _streams(value: int | ArrayLike, n: int) -> torch.Tensor:
        try:
            t = torch.as_tensor(value).to('cpu')
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f'stream cannot be converted to a tensor: {exc}') from exc
        if t.dtype.is_floating_point or t.is_complex() or t.dtype == torch.bool:
            raise ValueError(f'stream must be an integer id, got dtype {t.dtype}')
        if t.dim() == 0:
            t = t.expand(n)
        if t.shape != (n,):
            raise ValueError(f'stream must be an int or have shape ({n},), got {tuple(t.shape)}')
        if n and int(t.min()) < 0:
            raise ValueError('stream ids must be >= 0')
        return t.to(torch.long)

    # ------------------------------------------------------------------ writing

    def add(self, obs: ArrayLike, action: ArrayLike, reward: float | ArrayLike,
            cost: float | ArrayLike, next_obs: ArrayLike, terminated: bool | ArrayLike,
            truncated: bool | ArrayLike, stream: int = 0) -> None:
        """Append one transition of robot ``stream``.

        Shapes:
            obs, next_obs: (O,); action: (A,); reward, cost, terminated, truncated: scalars.

        Raises:
            ValueError: wrong shape, non-finite value or bad flag; the buffer is unchanged.
        """
        o = self._floats(obs, 'obs', (self.obs_dim,))
        a = self._floats(action, 'action', (self.act_dim,))
        nxt = self._floats(next_obs, 'next_obs', (self.obs_dim,))
        scalars = []
        for name, value in (('reward', reward), ('cost', cost), ('terminated', terminated),
                            ('truncated', truncated)):
            t = torch.as_tensor(value)
            if t.numel() != 1:
                raise ValueError(f'{name} must be a scalar, got shape {tuple(t.shape)}')
            scalars.append(t.reshape(1))
        self.add_batch(o[None], a[None], scalars[0], scalars[1], nxt[None], scalars[2],
                       scalars[3], stream=stream)

    def add_batch(self, obs: ArrayLike, action: ArrayLike, reward: ArrayLike, cost: ArrayLike,
                  next_obs: ArrayLike, terminated: ArrayLike, truncated: ArrayLike,
                  stream: int | ArrayLike = 0) -> None:
        """Append N transitions in order; ``stream`` is one id or one id per row.

        Within a stream, row k's successor is the next later row of that stream (or the
        stream's next transition in a later call).

        Shapes:
            obs, next_obs: (N, O); action: (N, A); reward, cost, terminated, truncated: (N,);
            stream: int or (N,).

        Raises:
            ValueError: wrong shape, non-finite value or bad flag; the buffer is unchanged.
        """
        o = self._floats(obs, 'obs', (None, self.obs_dim))
        n = o.shape[0]
        a = self._floats(action, 'action', (n, self.act_dim))
        r = self._floats(reward, 'reward', (n,))
        c = self._floats(cost, 'cost', (n,))
        nxt = self._floats(next_obs, 'next_obs', (n, self.obs_dim))
        term = self._flags(terminated, 'terminated', n)
        trunc = self._flags(truncated, 'truncated', n)
        streams = self._streams(stream, n)
        if n == 0:
            return
        # Validated: from here on nothing raises on bad input.
        succ, links = self._link(streams, term | trunc)
        first, cap = self._total, self.capacity
        keep = slice(max(0, n - cap), n)  # rows older than the last `cap` are overwritten
        rows = (torch.arange(first + keep.start, first + n) % cap).to(self.device)
        self._obs[rows] = o[keep]
        self._action[rows] = a[keep]
        self._reward[rows] = r[keep]
        self._cost[rows] = c[keep]
        self._next_obs[rows] = nxt[keep]
        self._terminated[rows] = term[keep].to(self.device)
        self._truncated[rows] = trunc[keep].to(self.device)
        self._stream[rows] = streams[keep].to(self.device)
        self._succ[rows] = succ[keep].to(self.device)
        self._total = first + n
        self._size = min(self._size + n, cap)
        oldest = self._total - self._size
        for count, offset in links:
            if count >= oldest:
                self._succ[count % cap] = offset
        self._pending = {s: cnt for s, cnt in self._pending.items() if cnt >= oldest}

    def _link(self, streams: torch.Tensor, done: torch.Tensor
              ) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """Successor offsets of the new rows, links from pending older rows; updates pending.

        Returns:
            ``(succ, links)``: succ (N,) offsets within the batch (-1 if none yet); links a
            list of (count of an earlier transition, offset to its successor in this batch).
        """
        n = streams.shape[0]
        order = torch.argsort(streams, stable=True)
        s_sorted = streams[order]
        same = s_sorted[1:] == s_sorted[:-1]  # sorted k+1 follows sorted k in the same stream
        succ = torch.full((n,), NO_SUCCESSOR, dtype=torch.long)
        prev, nxt = order[:-1][same], order[1:][same]
        succ[prev] = torch.where(done[prev], NO_SUCCESSOR, nxt - prev)
        starts = torch.ones(n, dtype=torch.bool)
        starts[1:] = ~same
        ends = torch.ones(n, dtype=torch.bool)
        ends[:-1] = ~same
        links = []
        for k in order[starts].tolist():  # first row of each stream in this batch
            pending = self._pending.pop(int(streams[k]), None)
            if pending is not None:
                links.append((pending, self._total + k - pending))
        for k in order[ends].tolist():  # last row of each stream: pending unless it ended
            if not bool(done[k]):
                self._pending[int(streams[k])] = self._total + k
        return succ, links

    # ------------------------------------------------------------------ reading

    def _rows(self, offsets: torch.Tensor) -> torch.Tensor:
        """Rows of the transitions ``offsets`` (0 = oldest stored)."""
        return (offsets + (self._total - self._size)) % self.capacity

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        """Uniform sample with replacement of ``batch_size`` stored transitions.

        Shapes:
            see :class:`Batch` with B = batch_size.
        """
        if self._size == 0:
            raise ValueError('cannot sample from an empty replay buffer')
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        device = generator.device if generator is not None else self.device
        offsets = torch.randint(self._size, (batch_size,), generator=generator, device=device)
        offsets = offsets.to(self.device)
        rows = self._rows(offsets)
        succ = self._succ[rows]
        valid = (succ >= 0) & (offsets + succ < self._size)
        next_rows = torch.where(valid, self._rows(offsets + succ.clamp(min=0)), rows)
        next_action = self._action[next_rows] * valid.unsqueeze(-1).to(self.dtype)
        return Batch(obs=self._obs[rows], action=self._action[rows], reward=self._reward[rows],
                     cost=self._cost[rows], next_obs=self._next_obs[rows],
                     terminated=self._terminated[rows].to(self.dtype), next_action=next_action,
                     next_action_valid=valid)

    def all(self) -> Transitions:
        """Copies of every stored transition, oldest first."""
        rows = self._rows(torch.arange(self._size, device=self.device))
        return Transitions(self._obs[rows], self._action[rows], self._reward[rows],
                           self._cost[rows], self._next_obs[rows],
                           self._terminated[rows].to(self.dtype),
                           self._truncated[rows].to(self.dtype))

    # ------------------------------------------------------------------ persistence

    def state_dict(self) -> dict[str, Any]:
        """The filled part, oldest first, plus the insertion count and pending successors."""
        rows = self._rows(torch.arange(self._size, device=self.device))
        streams = sorted(self._pending)
        return {
            'obs_dim': self.obs_dim, 'act_dim': self.act_dim, 'capacity': self.capacity,
            'total': self._total,
            'obs': self._obs[rows], 'action': self._action[rows], 'reward': self._reward[rows],
            'cost': self._cost[rows], 'next_obs': self._next_obs[rows],
            'terminated': self._terminated[rows], 'truncated': self._truncated[rows],
            'stream': self._stream[rows], 'successor': self._succ[rows],
            'pending_stream': torch.tensor(streams, dtype=torch.long),
            'pending_count': torch.tensor([self._pending[s] for s in streams], dtype=torch.long),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`; a smaller capacity keeps the newest transitions.

        Raises:
            ValueError: missing keys, other obs/act dims or inconsistent sizes (buffer unchanged).
        """
        keys = ('obs_dim', 'act_dim', 'total', 'obs', 'action', 'reward', 'cost', 'next_obs',
                'terminated', 'truncated', 'stream', 'successor', 'pending_stream',
                'pending_count')
        missing = [k for k in keys if k not in state]
        if missing:
            raise ValueError(f'replay state is missing {missing}')
        if (state['obs_dim'], state['act_dim']) != (self.obs_dim, self.act_dim):
            raise ValueError(f'replay state has obs/act dims ({state["obs_dim"]}, '
                             f'{state["act_dim"]}), this buffer ({self.obs_dim}, {self.act_dim})')
        size = int(state['obs'].shape[0])
        total = int(state['total'])
        expect = {'obs': (size, self.obs_dim), 'action': (size, self.act_dim), 'reward': (size,),
                  'cost': (size,), 'next_obs': (size, self.obs_dim), 'terminated': (size,),
                  'truncated': (size,), 'stream': (size,), 'successor': (size,)}
        for key, shape in expect.items():
            if tuple(state[key].shape) != shape:
                raise ValueError(f'replay state {key!r} has shape {tuple(state[key].shape)}, '
                                 f'expected {shape}')
        if total < size or state['pending_stream'].shape != state['pending_count'].shape:
            raise ValueError('replay state is inconsistent (total < size or pending mismatch)')
        keep = min(size, self.capacity)
        drop = size - keep
        new_size, oldest = keep, total - keep
        rows = (torch.arange(keep) + oldest) % self.capacity
        rows = rows.to(self.device)
        for name, key in (('_obs', 'obs'), ('_action', 'action'), ('_reward', 'reward'),
                          ('_cost', 'cost'), ('_next_obs', 'next_obs')):
            dst = getattr(self, name)
            dst.zero_()
            dst[rows] = state[key][drop:].to(device=self.device, dtype=self.dtype)
        for name, key, fill in (('_terminated', 'terminated', False),
                                ('_truncated', 'truncated', False), ('_stream', 'stream', 0),
                                ('_succ', 'successor', NO_SUCCESSOR)):
            dst = getattr(self, name)
            dst.fill_(fill)
            dst[rows] = state[key][drop:].to(device=self.device, dtype=dst.dtype)
        self._size, self._total = new_size, total
        self._pending = {int(s): int(cnt) for s, cnt in zip(state['pending_stream'].tolist(),
                                                           state['pending_count'].tolist())
                         if int(cnt) >= oldest}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`state_dict` as an atomic ``replay_buffer`` checkpoint."""
        return save_checkpoint(path, self.state_dict(), kind=CHECKPOINT_KIND)

    def load(self, path: str | os.PathLike[str]) -> None:
        """Restore from a file written by :meth:`save` (CheckpointError if unreadable)."""
        self.load_state_dict(load_checkpoint(path, kind=CHECKPOINT_KIND))
