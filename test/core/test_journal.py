"""The transition journal: atomic chunks, compaction after a saved state, replay in order."""
from __future__ import annotations

import numpy as np
import pytest

from loop_ros.core.journal import JournalError, TransitionJournal


def _fill(journal: TransitionJournal, start: int, n: int, stream: int = 0) -> None:
    for i in range(start, start + n):
        journal.append(np.full(3, i, np.float32), np.array([0.5, -0.5], np.float32), float(i),
                       0.1, np.full(3, i + 1, np.float32), i % 7 == 6, False, stream)


def test_chunks_replay_in_order_after_a_sequence_number(tmp_path):
    journal = TransitionJournal(tmp_path / 'j', obs_dim=3, act_dim=2)
    assert journal.flush() == 0 and journal.sequence_numbers() == []   # nothing pending
    _fill(journal, 0, 5)
    assert journal.pending == 5 and journal.flush() == 1 and journal.pending == 0
    _fill(journal, 5, 4, stream=3)
    assert journal.flush() == 2
    rows = [c for c in journal.replay()]
    assert [c.seq for c in rows] == [1, 2] and [len(c) for c in rows] == [5, 4]
    assert rows[1].obs[0, 0] == 5 and rows[1].stream.tolist() == [3] * 4
    assert rows[0].terminated.tolist() == [False] * 5 and rows[0].reward.tolist() == [0, 1, 2, 3, 4]
    assert [c.seq for c in journal.replay(after=1)] == [2]
    # a new journal on the same folder continues the numbering
    again = TransitionJournal(tmp_path / 'j', obs_dim=3, act_dim=2)
    assert again.last_seq == 2
    _fill(again, 9, 1)
    assert again.flush() == 3
    assert again.compact(upto=2) == 2 and again.sequence_numbers() == [3]


def test_a_damaged_or_foreign_chunk_is_named(tmp_path):
    journal = TransitionJournal(tmp_path, obs_dim=3, act_dim=2)
    _fill(journal, 0, 2)
    journal.flush()
    path = tmp_path / 'chunk_0000000001.npz'
    with pytest.raises(JournalError, match='obs has shape'):
        list(TransitionJournal(tmp_path, obs_dim=4, act_dim=2).replay())
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(JournalError, match=f'{path.name} is unreadable'):
        list(journal.replay())


def test_an_interrupted_write_leaves_no_chunk(tmp_path, monkeypatch):
    journal = TransitionJournal(tmp_path, obs_dim=3, act_dim=2)
    _fill(journal, 0, 3)

    def full_disk(*args, **kwargs):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(np, 'savez', full_disk)
    with pytest.raises(JournalError, match='No space left'):
        journal.flush()
    assert journal.pending == 3 and list(tmp_path.iterdir()) == []   # rows kept, no file
    monkeypatch.undo()
    assert journal.flush() == 1 and len(next(journal.replay())) == 3
