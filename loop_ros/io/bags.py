"""rosbag2 bags of ``loop_ros/msg/Transition``, read and written with ``rosbags`` (no rclpy).

* :func:`write_transitions` writes a :class:`TransitionData` as a rosbag2 bag (a directory
  holding ``metadata.yaml`` and one ``.mcap`` or ``.db3`` file), atomically: it is written into
  a temporary sibling directory and renamed into place, so a failure leaves nothing behind.
* :func:`read_transitions` reads one or several bags into one :class:`TransitionData`,
  validating every message (sizes, finiteness, actions in [-1, 1]).
* :func:`bag_info` summarises any bag (``str()`` renders it like ``ros2 bag info``) and
  :func:`read_metadata` returns its ``custom_data``.

Every problem with a bag raises ONE :class:`BagError` whose message names the bag (and the
storage file, topic or message index where that helps): a missing path, a directory that is not
a bag, an empty bag, a missing topic (the message lists the topics that are there), a wrong or
mismatched message type, a truncated or corrupt storage file.

A bag whose ``metadata.yaml`` is missing (a recorder that was killed before it could close the
bag) is read from its single storage file; a sqlite3 file with a hot rollback journal or WAL
is first recovered in a temporary copy (the bag itself is never modified). Such a bag holds
what the recorder had committed at its last flush.

The ``loop_ros`` message types are registered in a rosbags typestore (kilted) from the package's
``msg/*.msg`` text: the source tree's ``msg/`` next to the package, else the installed
``<prefix>/share/loop_ros/msg``. The CDR bytes and RIHS01 type hashes are the ones rclpy uses.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from dataclasses import field
import datetime
import functools
import os
from pathlib import Path
import shutil
import sqlite3
import sys
import tempfile
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
from rosbags.rosbag2 import Reader
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer
from rosbags.typesys import get_types_from_msg
from rosbags.typesys import Stores

__all__ = [
    'ACTION_TOLERANCE', 'BagError', 'BagInfo', 'DEFAULT_TRANSITION_TOPIC', 'STORAGES',
    'TRANSITION_TYPE', 'TopicSummary', 'TransitionData', 'bag_info', 'iter_messages',
    'message_dir', 'open_bag', 'read_metadata', 'read_transitions', 'typestore',
    'write_transitions',
]

TRANSITION_TYPE = 'loop_ros/msg/Transition'
DEFAULT_TRANSITION_TOPIC = '/transition'
ROS_STORE = Stores.ROS2_KILTED
"""The rosbags typestore of the standard messages (the ROS 2 distro of the pinned wheels)."""
STORAGES: dict[str, StoragePlugin] = {'mcap': StoragePlugin.MCAP,
                                      'sqlite3': StoragePlugin.SQLITE3}
"""Storage id (as ``ros2 bag`` names it) -> rosbags plugin."""
STORAGE_SUFFIXES = {'.mcap': 'mcap', '.db3': 'sqlite3'}
ACTION_TOLERANCE = 1e-6
"""Normalised actions may exceed [-1, 1] by this much (float32 rounding)."""
_UINT32 = 2**32


class BagError(ValueError):
    """A bag cannot be read or written; the message names the file and what is wrong."""


# --- message types ------------------------------------------------------------------------------

def message_dir() -> Path:
    """The directory holding loop_ros's ``*.msg`` files.

    The source tree's ``msg/`` (next to the ``loop_ros`` package) first, then
    ``<prefix>/share/loop_ros/msg`` for every prefix of ``AMENT_PREFIX_PATH``, the prefix this
    module is installed under, and ``sys.prefix``.
    """
    here = Path(__file__).resolve()
    candidates = [here.parents[2] / 'msg']
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    if len(here.parents) > 5:   # <prefix>/lib/pythonX.Y/site-packages/loop_ros/io/bags.py
        prefixes.append(str(here.parents[5]))
    prefixes.append(sys.prefix)
    candidates += [Path(p, 'share', 'loop_ros', 'msg') for p in prefixes]
    for path in candidates:
        if (path / 'Transition.msg').is_file():
            return path
    raise BagError('cannot find the loop_ros message definitions (msg/Transition.msg): looked '
                   f"in {', '.join(str(p) for p in candidates)}")


@functools.lru_cache(maxsize=1)
def typestore() -> Any:
    """The rosbags typestore of ROS 2 kilted plus every ``loop_ros/msg/*`` type."""
    from rosbags.typesys import get_typestore
    store = get_typestore(ROS_STORE)
    types: dict[str, Any] = {}
    for path in sorted(message_dir().glob('*.msg')):
        types.update(get_types_from_msg(path.read_text(), f'loop_ros/msg/{path.stem}'))
    store.register(types)
    return store


# --- data ---------------------------------------------------------------------------------------

_FLOAT_ROWS = ('obs', 'action', 'next_obs')
_FLOAT_COLS = ('reward', 'cost')
_BOOL_COLS = ('terminated', 'truncated')
_INT_COLS = ('episode', 'step', 'stream', 'stamp_ns')


@dataclass
class TransitionData:
    """Transitions as numpy arrays, one row per transition, in bag order.

    Construction casts every field to its dtype and checks the shapes (``ValueError``);
    :meth:`check` checks the values.

    Shapes:
        obs, next_obs: (N, O) float32; action: (N, A) float32, normalised to [-1, 1];
        reward, cost: (N,) float32; terminated, truncated: (N,) bool; episode, step, stream,
        stamp_ns: (N,) int64. ``stream`` is the producer index (one per distinct
        ``source`` of a bag, or ``header.frame_id`` where that is empty, in order of first
        appearance), ``stamp_ns`` the header
        stamp (the time ``next_obs`` was observed).
    """

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    cost: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    episode: np.ndarray
    step: np.ndarray
    stream: np.ndarray
    stamp_ns: np.ndarray

    def __post_init__(self) -> None:
        for name in _FLOAT_ROWS + _FLOAT_COLS:
            setattr(self, name, np.ascontiguousarray(getattr(self, name), dtype=np.float32))
        for name in _BOOL_COLS:
            setattr(self, name, np.ascontiguousarray(getattr(self, name), dtype=bool))
        for name in _INT_COLS:
            setattr(self, name, np.ascontiguousarray(getattr(self, name), dtype=np.int64))
        if self.obs.ndim != 2 or self.action.ndim != 2:
            raise ValueError(f'obs and action must be 2-D (N, dim), got shapes {self.obs.shape}'
                             f' and {self.action.shape}')
        n = self.obs.shape[0]
        expect = {'action': (n, self.action.shape[1]), 'next_obs': self.obs.shape,
                  **{k: (n,) for k in _FLOAT_COLS + _BOOL_COLS + _INT_COLS}}
        for name, shape in expect.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f'{name} must have shape {shape}, got '
                                 f'{getattr(self, name).shape}')

    def __len__(self) -> int:
        return int(self.obs.shape[0])

    @property
    def obs_dim(self) -> int:
        """Observation size O."""
        return int(self.obs.shape[1])

    @property
    def act_dim(self) -> int:
        """Action size A."""
        return int(self.action.shape[1])

    @property
    def num_streams(self) -> int:
        """Number of stream indices in use (``max(stream) + 1``; 0 when empty)."""
        return int(self.stream.max()) + 1 if len(self) else 0

    @classmethod
    def empty(cls, obs_dim: int, act_dim: int) -> TransitionData:
        """No transitions, with the given sizes."""
        return cls.from_arrays(np.zeros((0, obs_dim)), np.zeros((0, act_dim)), np.zeros(0),
                               np.zeros((0, obs_dim)))

    @classmethod
    def from_arrays(cls, obs: Any, action: Any, reward: Any, next_obs: Any, *,
                    cost: Any = None, terminated: Any = None, truncated: Any = None,
                    episode: Any = None, step: Any = None, stream: Any = None,
                    stamp_ns: Any = None) -> TransitionData:
        """Build from arrays; omitted columns default to 0 / False (``step``: 0..N-1)."""
        n = int(np.shape(obs)[0])
        zeros = np.zeros(n)
        return cls(obs=obs, action=action, reward=reward,
                   cost=zeros if cost is None else cost, next_obs=next_obs,
                   terminated=zeros if terminated is None else terminated,
                   truncated=zeros if truncated is None else truncated,
                   episode=zeros if episode is None else episode,
                   step=np.arange(n) if step is None else step,
                   stream=zeros if stream is None else stream,
                   stamp_ns=zeros if stamp_ns is None else stamp_ns)

    @classmethod
    def concat(cls, parts: Sequence[TransitionData],
               separate_streams: bool = True) -> TransitionData:
        """Rows of ``parts`` one after the other.

        With ``separate_streams`` the stream indices of each part are shifted past those of the
        parts before it: two recordings are never one trajectory (a replay buffer must not make
        the first transition of one bag the successor of the last of another).
        """
        if not parts:
            raise ValueError('concat needs at least one TransitionData')
        dims = {(p.obs_dim, p.act_dim) for p in parts}
        if len(dims) > 1:
            raise ValueError(f'cannot concatenate transitions of different sizes (obs, act): '
                             f'{sorted(dims)}')
        streams = []
        offset = 0
        for p in parts:
            streams.append(p.stream + offset if separate_streams else p.stream)
            if separate_streams:
                offset += p.num_streams
        cols = {name: np.concatenate([getattr(p, name) for p in parts])
                for name in _FLOAT_ROWS + _FLOAT_COLS + _BOOL_COLS + _INT_COLS
                if name != 'stream'}
        return cls(stream=np.concatenate(streams), **cols)

    def check(self) -> None:
        """Values: finite floats, actions within [-1, 1] (+ tolerance), ids in range.

        Raises:
            ValueError: naming the field and the first bad row.
        """
        for name in _FLOAT_ROWS + _FLOAT_COLS:
            arr = getattr(self, name)
            bad = ~np.isfinite(arr.reshape(len(self), -1)).all(axis=1) if len(self) else arr[:0]
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise ValueError(f'row {row}: {name} is not finite ({arr[row].tolist()})')
        out = (np.abs(self.action) > 1.0 + ACTION_TOLERANCE).any(axis=1)
        if out.any():
            row = int(np.flatnonzero(out)[0])
            raise ValueError(f'row {row}: action {self.action[row].tolist()} outside [-1, 1] '
                             '(Transition actions are normalised)')
        for name, high in (('episode', _UINT32), ('step', _UINT32), ('stream', None),
                           ('stamp_ns', None)):
            arr = getattr(self, name)
            bad = (arr < 0) | (arr >= high) if high else arr < 0
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise ValueError(f'row {row}: {name} {int(arr[row])} out of range '
                                 f"[0, {high - 1 if high else 'inf'}]")


# --- opening bags -------------------------------------------------------------------------------

@dataclass
class _Bag:
    """An open bag: the rosbags reader and where its data came from."""

    path: Path
    reader: Reader
    files: tuple[Path, ...]
    storage: str
    recovered: str = ''
    """Why the bag was read from its storage file alone ('' for a complete bag)."""

    def fail(self, what: str, exc: BaseException | None = None) -> BagError:
        """A BagError naming the bag's storage file(s)."""
        names = ', '.join(str(f) for f in self.files) or str(self.path)
        detail = f' ({type(exc).__name__}: {exc})' if exc is not None else ''
        return BagError(f'{names}: {what}{detail}')


def _storage_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in STORAGE_SUFFIXES and p.is_file())


def _recover_sqlite(db: Path, stack: contextlib.ExitStack) -> Path:
    """``db`` itself, or a recovered copy when a hot journal / WAL lies next to it.

    A recorder killed during a commit leaves a ``-journal`` (or ``-wal``) file; rosbags opens
    sqlite files read-only and immutable, which would ignore it. A copy opened read-write with
    the sqlite3 module rolls the journal back (or replays the WAL), as sqlite does on any open.
    """
    side = [db.with_name(db.name + s) for s in ('-journal', '-wal')]
    if not any(p.is_file() and p.stat().st_size > 0 for p in side):
        return db
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix='loop_ros_bag_')))
    copy = tmp / db.name
    shutil.copy2(db, copy)
    for p in side:
        if p.is_file():
            shutil.copy2(p, tmp / p.name)
    con = sqlite3.connect(str(copy))
    try:
        con.execute('SELECT count(*) FROM sqlite_master').fetchall()
        con.execute('PRAGMA wal_checkpoint(TRUNCATE)').fetchall()
        con.execute('PRAGMA journal_mode=DELETE').fetchall()
    finally:
        con.close()
    return copy


@contextlib.contextmanager
def open_bag(path: str | os.PathLike[str]) -> Iterator[_Bag]:
    """Open a bag directory (or a bare ``.db3`` / ``.mcap`` file) for reading.

    Raises:
        BagError: the path is missing, is not a bag, or its files cannot be read.
    """
    path = Path(path)
    if not path.exists():
        raise BagError(f'{path}: no such bag (the path does not exist)')
    recovered = ''
    if path.is_dir():
        files = _storage_files(path)
        if (path / 'metadata.yaml').is_file():
            source = path
        elif not files:
            raise BagError(f'{path}: not a rosbag2 bag (no metadata.yaml and no .db3 or .mcap '
                           'file in it)')
        elif len(files) > 1:
            raise BagError(f'{path}: metadata.yaml is missing and there are several storage '
                           f"files ({', '.join(f.name for f in files)}): cannot tell their "
                           'order')
        else:
            source = files[0]
            recovered = (f'metadata.yaml is missing (the recorder did not close the bag); '
                         f'read from {files[0].name}')
    elif path.suffix in STORAGE_SUFFIXES:
        source, files = path, [path]
    else:
        raise BagError(f'{path}: not a rosbag2 bag (expected a bag directory, a .db3 or a '
                       '.mcap file)')
    storage = STORAGE_SUFFIXES[files[0].suffix] if files else 'unknown'
    with contextlib.ExitStack() as stack:
        bag = _Bag(path=path, reader=None, files=tuple(files), storage=storage,  # type: ignore
                   recovered=recovered)
        try:
            if source.is_file() and source.suffix == '.db3':
                source = _recover_sqlite(source, stack)
            reader = Reader(source)
            reader.open()
        except Exception as exc:  # rosbags, apsw and sqlite3 raise many types: one BagError
            raise bag.fail('cannot open the bag: corrupt, truncated or not a rosbag2 file',
                           exc) from None
        stack.callback(reader.close)
        bag.reader = reader
        yield bag


def _topics(bag: _Bag) -> dict[str, tuple[str, int]]:
    """Topic -> (type, message count); several types of one topic are joined with '|'."""
    out: dict[str, tuple[str, int]] = {}
    for conn in bag.reader.connections:
        msgtype, count = out.get(conn.topic, ('', 0))
        types = [t for t in msgtype.split('|') if t]
        if conn.msgtype not in types:
            types.append(conn.msgtype)
        out[conn.topic] = ('|'.join(types), count + conn.msgcount)
    return out


def _listing(topics: Mapping[str, tuple[str, int]]) -> str:
    if not topics:
        return 'none (the bag is empty)'
    return ', '.join(f'{name} ({msgtype}, {count} messages)'
                     for name, (msgtype, count) in sorted(topics.items()))


def normalize_topic(topic: str) -> str:
    """``'transition'`` -> ``'/transition'`` (bags store absolute names)."""
    return topic if topic.startswith('/') else '/' + topic


def select_topic(bag: _Bag, topic: str | None, msgtypes: Iterable[str]) -> str:
    """The topic to read: ``topic``, or the only one of one of ``msgtypes`` when None.

    Raises:
        BagError: no such topic (listing the topics there are), several candidates, a type not
            in ``msgtypes``, or no messages on it (an empty bag).
    """
    msgtypes = tuple(msgtypes)
    topics = _topics(bag)
    wanted = ' or '.join(msgtypes)
    if not topics or not sum(c for _, c in topics.values()):
        raise bag.fail(f'the bag is empty (topics: {_listing(topics)})')
    if topic is None:
        found = [name for name, (t, _) in topics.items() if t in msgtypes]
        if not found:
            raise bag.fail(f'no {wanted} topic in the bag; it has: {_listing(topics)}')
        if len(found) > 1:
            raise bag.fail(f'several {wanted} topics ({", ".join(sorted(found))}): name the '
                           'one to read')
        topic = found[0]
    topic = normalize_topic(topic)
    if topic not in topics:
        raise bag.fail(f'no topic {topic} in the bag; it has: {_listing(topics)}')
    msgtype, count = topics[topic]
    if msgtype not in msgtypes:
        raise bag.fail(f'topic {topic} has type {msgtype}, expected {wanted}')
    if count == 0:
        raise bag.fail(f'topic {topic} has no messages (the bag is empty there)')
    return topic


def iter_messages(bag: _Bag, topic: str, check_hash: bool = True
                  ) -> Iterator[tuple[int, int, Any]]:
    """``(index, log time ns, deserialized message)`` of ``topic``, in bag order.

    Types of the kilted store and loop_ros's own are known; any other type is registered from
    the definition stored in the bag (a type without one is an error). With ``check_hash``, a
    bag whose type hash differs from the known definition's is refused (it was recorded with
    another definition of that type).

    Raises:
        BagError: unknown or mismatched type, an undecodable message (its index is named) or a
            storage file that breaks off.
    """
    store = typestore()
    conns = [c for c in bag.reader.connections if c.topic == topic]
    for conn in conns:
        _ensure_type(bag, store, conn, check_hash)
    it = bag.reader.messages(connections=conns)
    index = 0
    while True:
        try:
            conn, stamp, raw = next(it)
        except StopIteration:
            return
        except Exception as exc:
            raise bag.fail(f'topic {topic}: cannot read message {index}: corrupt or truncated '
                           'storage file', exc) from None
        try:
            msg = store.deserialize_cdr(raw, conn.msgtype)
        except Exception as exc:
            raise bag.fail(f'topic {topic}: message {index} cannot be decoded as '
                           f'{conn.msgtype}', exc) from None
        yield index, stamp, msg
        index += 1


def _ensure_type(bag: _Bag, store: Any, conn: Any, check_hash: bool) -> None:
    if conn.msgtype not in store.types:
        text = getattr(conn.msgdef, 'data', '')
        if not text:
            raise bag.fail(f'topic {conn.topic}: unknown message type {conn.msgtype} (not a '
                           'standard or loop_ros type, and the bag stores no definition)')
        try:
            from rosbags.typesys import get_types_from_idl
            parse = get_types_from_idl if text.startswith('=' * 80 + '\nIDL: ') else \
                get_types_from_msg
            store.register(parse(text, conn.msgtype))
        except Exception as exc:
            raise bag.fail(f'topic {conn.topic}: cannot use the definition of {conn.msgtype} '
                           'stored in the bag', exc) from None
        return
    if check_hash and conn.digest:
        try:
            expected = store.hash_rihs01(conn.msgtype)
        except Exception:   # types without a hash (never for the kilted store)
            return
        if conn.digest != expected:
            raise bag.fail(f'topic {conn.topic}: the bag\'s {conn.msgtype} has type hash '
                           f'{conn.digest}, this definition {expected}: it was recorded with '
                           'another version of the message')


# --- reading transitions ------------------------------------------------------------------------

def _read_one(path: Path, topic: str | None, obs_dim: int | None,
              act_dim: int | None) -> TransitionData:
    with open_bag(path) as bag:
        name = select_topic(bag, topic, (TRANSITION_TYPE,))
        where = f'topic {name}'
        obs, action, next_obs = [], [], []
        scalars: list[tuple[float, float, bool, bool, int, int, int, int]] = []
        streams: dict[str, int] = {}
        o_dim, a_dim = obs_dim, act_dim
        for index, _, msg in iter_messages(bag, name):
            o, a, nxt = msg.obs, msg.action, msg.next_obs
            if index == 0:
                o_dim = len(o) if o_dim is None else o_dim
                a_dim = len(a) if a_dim is None else a_dim
            for field_name, vec, size, given in (('obs', o, o_dim, obs_dim),
                                                 ('next_obs', nxt, o_dim, obs_dim),
                                                 ('action', a, a_dim, act_dim)):
                if len(vec) != size:
                    ref = ('obs_dim' if field_name != 'action' else 'act_dim') \
                        if given is not None else 'the size in message 0'
                    raise bag.fail(f'{where}: message {index}: {field_name} has {len(vec)} '
                                   f'values, expected {size} ({ref})')
            obs.append(o)
            action.append(a)
            next_obs.append(nxt)
            stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
            stream = streams.setdefault(getattr(msg, 'source', '') or msg.header.frame_id,
                                        len(streams))
            scalars.append((msg.reward, msg.cost, msg.terminated, msg.truncated, msg.episode,
                            msg.step, stream, stamp))
        if not scalars or o_dim is None or a_dim is None:
            raise bag.fail(f'{where}: no messages (the bag is empty there)')
        cols = list(zip(*scalars))
        data = TransitionData(
            obs=np.stack(obs) if obs else np.zeros((0, o_dim)),
            action=np.stack(action) if action else np.zeros((0, a_dim)),
            next_obs=np.stack(next_obs) if next_obs else np.zeros((0, o_dim)),
            reward=cols[0], cost=cols[1], terminated=cols[2], truncated=cols[3],
            episode=cols[4], step=cols[5], stream=cols[6], stamp_ns=cols[7])
        try:
            data.check()
        except ValueError as exc:
            raise bag.fail(f"{where}: message {str(exc).removeprefix('row ')}") from None
        return data


def read_transitions(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *,
                     topic: str | None = None, obs_dim: int | None = None,
                     act_dim: int | None = None) -> TransitionData:
    """Read the ``loop_ros/msg/Transition`` messages of one or several bags.

    Args:
        paths: a bag (directory, or a bare ``.db3``/``.mcap`` file) or a sequence of them; the
            bags are concatenated in the given order, each bag's streams kept apart
            (:meth:`TransitionData.concat`).
        topic: the topic to read; None takes the bag's only Transition topic.
        obs_dim, act_dim: the sizes every message must have (None: those of the first message
            of the first bag; later bags must match it).

    Raises:
        BagError: naming the bag, the topic and, for a bad message, its index (0-based, in bag
            order): sizes inconsistent (or not the given ones), values not finite, actions
            outside [-1, 1], and the bag-level errors of :func:`open_bag`/:func:`select_topic`.
    """
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise BagError('no bag given')
    parts: list[TransitionData] = []
    for item in items:
        part = _read_one(Path(item), topic, obs_dim, act_dim)
        if parts and (part.obs_dim, part.act_dim) != (parts[0].obs_dim, parts[0].act_dim):
            raise BagError(f'{item}: transitions have obs size {part.obs_dim} and action size '
                           f'{part.act_dim}, but {items[0]} has {parts[0].obs_dim} and '
                           f'{parts[0].act_dim}')
        obs_dim, act_dim = part.obs_dim, part.act_dim
        parts.append(part)
    return parts[0] if len(parts) == 1 else TransitionData.concat(parts)


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The bag's ``custom_data`` (empty when it has none, or lost its metadata.yaml)."""
    with open_bag(path) as bag:
        return _custom_data(bag)


def _custom_data(bag: _Bag) -> dict[str, str]:
    custom = getattr(bag.reader.storage.metadata, 'custom', None) or {}
    return {str(k): str(v) for k, v in custom.items()}


# --- writing transitions ------------------------------------------------------------------------

def _stamp_fields(stamp_ns: int) -> tuple[int, int]:
    return stamp_ns // 1_000_000_000, stamp_ns % 1_000_000_000


def write_transitions(path: str | os.PathLike[str], data: TransitionData, *,
                      storage: str = 'mcap', topic: str = DEFAULT_TRANSITION_TOPIC,
                      metadata: Mapping[str, str] | None = None,
                      sources: Sequence[str] | None = None,
                      overwrite: bool = False) -> Path:
    """Write ``data`` as a rosbag2 bag of ``loop_ros/msg/Transition`` on ``topic``.

    Args:
        path: the bag directory to create.
        storage: ``'mcap'`` or ``'sqlite3'``.
        metadata: string values for the bag's ``custom_data`` (``metadata.yaml``); callers
            ``json.dumps`` structured values.
        sources: the ``source`` (producer) of each stream index (default ``stream<i>``).
        overwrite: replace an existing ``path`` (otherwise that is an error).

    Each message is logged at its header stamp, made strictly increasing (a stamp that does
    not advance is logged 1 ns after the previous message), so both storages read the rows back
    in the order written. The bag is written into a temporary sibling directory and renamed
    into place: on any failure nothing is left behind (and an existing bag is kept).

    Returns:
        ``path``.

    Raises:
        BagError: bad arguments or values (the row is named), ``path`` exists, or the write
            failed.
    """
    path = Path(path)
    if storage not in STORAGES:
        raise BagError(f'{path}: unknown storage {storage!r}; one of: {", ".join(STORAGES)}')
    try:
        data.check()
    except ValueError as exc:
        raise BagError(f'{path}: cannot write transitions: {exc}') from None
    meta = dict(metadata or {})
    bad = [k for k, v in meta.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise BagError(f'{path}: metadata keys and values must be strings (json.dumps '
                       f'structured values); not: {bad}')
    n_streams = data.num_streams
    ids = list(sources) if sources is not None else [f'stream{i}' for i in range(n_streams)]
    if len(ids) < n_streams:
        raise BagError(f'{path}: {len(ids)} sources for {n_streams} streams')
    if path.exists() and not overwrite:
        raise BagError(f'{path} exists already (remove it, or overwrite it)')
    store = typestore()
    Transition = store.types[TRANSITION_TYPE]
    Header = store.types['std_msgs/msg/Header']
    Time = store.types['builtin_interfaces/msg/Time']
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_parent = Path(tempfile.mkdtemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent))
    try:
        target = tmp_parent / path.name
        try:
            with Writer(target, version=9, storage_plugin=STORAGES[storage]) as writer:
                for key, value in meta.items():
                    writer.set_custom_data(key, value)
                conn = writer.add_connection(normalize_topic(topic), TRANSITION_TYPE,
                                             typestore=store)
                log_ns = -1
                for i in range(len(data)):
                    stamp = int(data.stamp_ns[i])
                    log_ns = max(stamp, log_ns + 1)
                    sec, nsec = _stamp_fields(stamp)
                    msg = Transition(
                        header=Header(stamp=Time(sec=sec, nanosec=nsec), frame_id=''),
                        source=ids[int(data.stream[i])],
                        obs=data.obs[i], action=data.action[i], next_obs=data.next_obs[i],
                        reward=float(data.reward[i]), cost=float(data.cost[i]),
                        terminated=bool(data.terminated[i]), truncated=bool(data.truncated[i]),
                        episode=int(data.episode[i]), step=int(data.step[i]))
                    writer.write(conn, log_ns, store.serialize_cdr(msg, TRANSITION_TYPE))
        except Exception as exc:
            raise BagError(f'{path}: writing the bag failed ({type(exc).__name__}: {exc})'
                           ) from None
        _replace(target, path, tmp_parent, overwrite)
    finally:
        shutil.rmtree(tmp_parent, ignore_errors=True)
    return path


def _replace(new: Path, path: Path, tmp_parent: Path, overwrite: bool) -> None:
    """Rename ``new`` to ``path``; an existing ``path`` (``overwrite``) is swapped out first."""
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise BagError(f'{path} exists already (remove it, or overwrite it)')
        old = tmp_parent / (path.name + '.old')
        os.rename(path, old)
        try:
            os.rename(new, path)
        except OSError:
            os.rename(old, path)
            raise
        return
    os.rename(new, path)


# --- bag info -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class TopicSummary:
    """One topic of a bag."""

    name: str
    type: str
    count: int


@dataclass(frozen=True)
class BagInfo:
    """What ``ros2 bag info`` shows: files, storage, time span, topics, custom data."""

    path: Path
    storage: str
    files: tuple[str, ...]
    size_bytes: int
    message_count: int
    start_ns: int
    """Log time of the first message (0 when empty)."""
    end_ns: int
    """Log time of the last message (0 when empty)."""
    topics: tuple[TopicSummary, ...]
    custom_data: dict[str, str] = field(default_factory=dict)
    ros_distro: str = ''
    recovered: str = ''
    """Set when metadata.yaml was missing and the bag was read from its storage file."""

    @property
    def duration_ns(self) -> int:
        """Last minus first log time."""
        return self.end_ns - self.start_ns

    def topic(self, name: str) -> TopicSummary | None:
        """The summary of topic ``name`` (None if absent)."""
        name = normalize_topic(name)
        return next((t for t in self.topics if t.name == name), None)

    def __str__(self) -> str:
        def when(ns: int) -> str:
            t = datetime.datetime.fromtimestamp(ns / 1e9, tz=datetime.timezone.utc)
            return f"{t.strftime('%b %d %Y %H:%M:%S')}.{ns % 1_000_000_000:09d} UTC " \
                   f'({ns // 1_000_000_000}.{ns % 1_000_000_000:09d})'

        lines = [
            ('Files', ', '.join(self.files)),
            ('Bag size', _human_size(self.size_bytes)),
            ('Storage id', self.storage),
            ('ROS Distro', self.ros_distro or 'unknown'),
            ('Duration', f'{self.duration_ns / 1e9:.9f}s'),
            ('Start', when(self.start_ns) if self.message_count else '-'),
            ('End', when(self.end_ns) if self.message_count else '-'),
            ('Messages', str(self.message_count)),
        ]
        out = [f'{k + ":":<19}{v}' for k, v in lines]
        width = max((len(t.name) for t in self.topics), default=0)
        twidth = max((len(t.type) for t in self.topics), default=0)
        rows = [f'Topic: {t.name:<{width}} | Type: {t.type:<{twidth}} | Count: {t.count} | '
                'Serialization Format: cdr' for t in self.topics]
        out.append(f'{"Topic information:":<19}' + (f'\n{"":<19}'.join(rows) or '(none)'))
        if self.custom_data:
            items = [f'{k}: {v}' for k, v in sorted(self.custom_data.items())]
            out.append(f'{"Custom data:":<19}' + f'\n{"":<19}'.join(items))
        if self.recovered:
            out.append(f'{"Note:":<19}{self.recovered}')
        return '\n'.join(out)


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if value < 1024 or unit == 'GiB':
            return f'{value:.1f} {unit}' if unit != 'B' else f'{size} B'
        value /= 1024
    return f'{size} B'


def bag_info(path: str | os.PathLike[str]) -> BagInfo:
    """Summary of the bag at ``path`` (any message types).

    Raises:
        BagError: as :func:`open_bag`.
    """
    with open_bag(path) as bag:
        reader = bag.reader
        topics = tuple(TopicSummary(name, msgtype, count)
                       for name, (msgtype, count) in sorted(_topics(bag).items()))
        count = int(reader.message_count)
        root = bag.path if bag.path.is_dir() else bag.path.parent
        sized = [p for p in root.iterdir() if p.is_file()] if bag.path.is_dir() else [bag.path]
        return BagInfo(
            path=bag.path, storage=bag.storage, files=tuple(f.name for f in bag.files),
            size_bytes=sum(p.stat().st_size for p in sized), message_count=count,
            start_ns=int(reader.start_time) if count else 0,
            end_ns=int(reader.end_time) - 1 if count else 0,
            topics=topics, custom_data=_custom_data(bag),
            ros_distro=str(reader.ros_distro or ''), recovered=bag.recovered)
