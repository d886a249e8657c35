"""loop_ros.io.bags: Transition bags in both storages, metadata, concatenation, bad bags.

Every bag is generated here in ``tmp_path`` (none is committed). Bad bags are built with the
rosbags ``Writer`` directly (``write_transitions`` refuses bad values) or by damaging files.
"""
from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer
from rosbags.typesys import get_types_from_msg
from rosbags.typesys import get_typestore
from rosbags.typesys import Stores

from loop_ros.io import bags
from loop_ros.io.bags import bag_info
from loop_ros.io.bags import BagError
from loop_ros.io.bags import read_metadata
from loop_ros.io.bags import read_transitions
from loop_ros.io.bags import TRANSITION_TYPE
from loop_ros.io.bags import TransitionData
from loop_ros.io.bags import write_transitions

ROOT = Path(__file__).resolve().parents[2]
STORAGES = ('mcap', 'sqlite3')
O, A = 4, 2


def make_data(n: int = 50, seed: int = 0, streams: int = 1) -> TransitionData:
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, O))
    return TransitionData.from_arrays(
        obs, rng.uniform(-1, 1, (n, A)), rng.normal(size=n), obs + 0.1,
        cost=rng.uniform(0, 1, n), terminated=np.arange(n) % 20 == 19,
        truncated=np.arange(n) % 25 == 24, episode=np.arange(n) // 20,
        step=np.arange(n) % 20, stream=np.arange(n) % streams,
        stamp_ns=1_000_000_000 + np.arange(n) * 50_000_000)


def assert_same(a: TransitionData, b: TransitionData) -> None:
    for name in ('obs', 'action', 'reward', 'cost', 'next_obs', 'terminated', 'truncated',
                 'episode', 'step', 'stream', 'stamp_ns'):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name


def raw_bag(path: Path, rows: list[dict], topic: str = '/transition',
            storage: StoragePlugin = StoragePlugin.MCAP) -> Path:
    """A Transition bag written without validation; rows override a valid message."""
    store = bags.typestore()
    T, H, Time = (store.types[TRANSITION_TYPE], store.types['std_msgs/msg/Header'],
                  store.types['builtin_interfaces/msg/Time'])
    with Writer(path, version=9, storage_plugin=storage) as w:
        conn = w.add_connection(topic, TRANSITION_TYPE, typestore=store)
        for i, row in enumerate(rows):
            fields = dict(header=H(stamp=Time(sec=i, nanosec=0), frame_id='r'),
                          obs=np.zeros(O, np.float32), action=np.zeros(A, np.float32),
                          next_obs=np.zeros(O, np.float32), reward=0.0, cost=0.0,
                          terminated=False, truncated=False, episode=0, step=i, source='r')
            fields.update(row)
            w.write(conn, i + 1, store.serialize_cdr(T(**fields), TRANSITION_TYPE))
    return path


# --- round trips --------------------------------------------------------------------------------

@pytest.mark.parametrize('storage', STORAGES)
def test_round_trip(tmp_path: Path, storage: str) -> None:
    data = make_data(60, streams=2)
    path = write_transitions(tmp_path / 'bag', data, storage=storage,
                             metadata={'env_id': 'loop_ros/RCCarCircle-v0', 'n': '60'},
                             sources=["/robot0/sim_bridge", "/robot1/sim_bridge"])
    suffix = '.mcap' if storage == 'mcap' else '.db3'
    assert sorted(p.name for p in path.iterdir()) == ['bag' + suffix, 'metadata.yaml']
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bag']   # no temporary left over
    back = read_transitions(path, obs_dim=O, act_dim=A)
    assert_same(back, data)
    assert len(back) == 60 and back.num_streams == 2
    assert read_metadata(path) == {'env_id': 'loop_ros/RCCarCircle-v0', 'n': '60'}
    info = bag_info(path)
    assert info.storage == storage and info.message_count == 60
    assert info.topics == (bags.TopicSummary('/transition', TRANSITION_TYPE, 60),)
    assert info.start_ns == 1_000_000_000 and info.duration_ns == 59 * 50_000_000
    text = str(info)
    assert 'Topic: /transition | Type: loop_ros/msg/Transition | Count: 60' in text
    assert f'Storage id:        {storage}' in text and 'env_id: loop_ros/RCCarCircle-v0' in text


@pytest.mark.parametrize('storage', STORAGES)
def test_equal_stamps_keep_the_written_order(tmp_path: Path, storage: str) -> None:
    data = make_data(30)
    data.stamp_ns[:] = 0
    back = read_transitions(write_transitions(tmp_path / 'bag', data, storage=storage))
    assert_same(back, data)


def test_concatenation_keeps_streams_apart(tmp_path: Path) -> None:
    a, b = make_data(30, seed=1, streams=2), make_data(20, seed=2)
    pa = write_transitions(tmp_path / 'a', a, storage='mcap')
    pb = write_transitions(tmp_path / 'b', b, storage='sqlite3')
    both = read_transitions([pa, str(pb)])
    assert len(both) == 50
    assert np.array_equal(both.obs, np.concatenate([a.obs, b.obs]))
    assert both.stream[:30].tolist() == a.stream.tolist()
    assert set(both.stream[30:].tolist()) == {2}   # bag b's only stream comes after a's two


def test_topic_argument_and_bare_storage_file(tmp_path: Path) -> None:
    data = make_data(10)
    path = write_transitions(tmp_path / 'bag', data, topic='robot/transition')
    assert bag_info(path).topics[0].name == '/robot/transition'
    assert_same(read_transitions(path, topic='robot/transition'), data)
    assert_same(read_transitions(path / 'bag.mcap'), data)   # a bare storage file reads too


def test_overwrite_and_existing_path(tmp_path: Path) -> None:
    path = write_transitions(tmp_path / 'bag', make_data(10))
    with pytest.raises(BagError, match='exists already'):
        write_transitions(path, make_data(5))
    assert len(read_transitions(path)) == 10
    write_transitions(path, make_data(5), storage='sqlite3', overwrite=True)
    assert len(read_transitions(path)) == 5 and bag_info(path).storage == 'sqlite3'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bag']


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = bags.typestore()
    real = store.serialize_cdr
    calls = []

    def flaky(msg: object, typename: str) -> bytes:
        calls.append(1)
        if len(calls) == 7:
            raise RuntimeError('disk on fire')
        return real(msg, typename)

    monkeypatch.setattr(store, 'serialize_cdr', flaky)
    with pytest.raises(BagError, match='disk on fire'):
        write_transitions(tmp_path / 'bag', make_data(20))
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    bad = make_data(5)
    bad.action[3, 1] = 1.5
    with pytest.raises(BagError, match=r'row 3: action .* outside \[-1, 1\]'):
        write_transitions(tmp_path / 'bag', bad)
    with pytest.raises(BagError, match='must be strings'):
        write_transitions(tmp_path / 'bag', make_data(5), metadata={'a': 1})  # type: ignore
    with pytest.raises(BagError, match="unknown storage 'rosbag1'"):
        write_transitions(tmp_path / 'bag', make_data(5), storage='rosbag1')
    assert list(tmp_path.iterdir()) == []


def test_transition_data_checks_shapes() -> None:
    with pytest.raises(ValueError, match=r'next_obs must have shape \(3, 4\)'):
        TransitionData.from_arrays(np.zeros((3, 4)), np.zeros((3, 2)), np.zeros(3),
                                   np.zeros((3, 5)))
    empty = TransitionData.empty(4, 2)
    assert len(empty) == 0 and empty.obs_dim == 4 and empty.act_dim == 2


# --- bad bags: one BagError each, naming the file -----------------------------------------------

def test_missing_path_and_not_a_bag(tmp_path: Path) -> None:
    with pytest.raises(BagError, match='no such bag'):
        read_transitions(tmp_path / 'nope')
    (tmp_path / 'dir').mkdir()
    (tmp_path / 'dir' / 'notes.txt').write_text('hello')
    with pytest.raises(BagError, match='not a rosbag2 bag'):
        bag_info(tmp_path / 'dir')
    with pytest.raises(BagError, match='not a rosbag2 bag'):
        read_transitions(tmp_path / 'dir' / 'notes.txt')
    with pytest.raises(BagError, match='no bag given'):
        read_transitions([])


@pytest.mark.parametrize('storage', STORAGES)
def test_empty_bags(tmp_path: Path, storage: str) -> None:
    path = write_transitions(tmp_path / 'bag', TransitionData.empty(O, A), storage=storage)
    assert bag_info(path).message_count == 0
    with pytest.raises(BagError, match='the bag is empty'):
        read_transitions(path)
    plugin = bags.STORAGES[storage]
    with Writer(tmp_path / 'none', version=9, storage_plugin=plugin):
        pass
    with pytest.raises(BagError, match=r'the bag is empty \(topics: none'):
        read_transitions(tmp_path / 'none')


def test_missing_topic_lists_the_topics(tmp_path: Path) -> None:
    path = write_transitions(tmp_path / 'bag', make_data(5))
    with pytest.raises(BagError, match=r'bag\.mcap: no topic /odom in the bag; it has: '
                       r'/transition \(loop_ros/msg/Transition, 5 messages\)'):
        read_transitions(path, topic='/odom')


def _other_bag(path: Path, topics: dict[str, str], storage: str = 'mcap') -> Path:
    store = get_typestore(Stores.ROS2_KILTED)
    String = store.types['std_msgs/msg/String']
    with Writer(path, version=9, storage_plugin=bags.STORAGES[storage]) as w:
        for topic, msgtype in topics.items():
            conn = w.add_connection(topic, msgtype, typestore=store)
            w.write(conn, 1, store.serialize_cdr(String(data='x'), 'std_msgs/msg/String'))
    return path


@pytest.mark.parametrize('storage', STORAGES)
def test_wrong_type(tmp_path: Path, storage: str) -> None:
    path = _other_bag(tmp_path / 'bag', {'/transition': 'std_msgs/msg/String'}, storage)
    with pytest.raises(BagError, match='topic /transition has type std_msgs/msg/String, '
                       'expected loop_ros/msg/Transition'):
        read_transitions(path, topic='/transition')
    with pytest.raises(BagError, match=r'no loop_ros/msg/Transition topic in the bag; it has: '
                       r'/transition \(std_msgs/msg/String, 1 messages\)'):
        read_transitions(path)
    assert bag_info(path).topics[0].type == 'std_msgs/msg/String'


def test_several_transition_topics(tmp_path: Path) -> None:
    path = raw_bag(tmp_path / 'bag', [{}])
    store = bags.typestore()
    # a second bag with two Transition topics
    with Writer(tmp_path / 'two', version=9, storage_plugin=StoragePlugin.MCAP) as w:
        for topic in ('/a/transition', '/b/transition'):
            conn = w.add_connection(topic, TRANSITION_TYPE, typestore=store)
            with bags.open_bag(path) as bag:
                for _, stamp, raw in bag.reader.messages():
                    w.write(conn, stamp, raw)
    with pytest.raises(BagError, match=r'several loop_ros/msg/Transition topics '
                       r'\(/a/transition, /b/transition\)'):
        read_transitions(tmp_path / 'two')
    assert len(read_transitions(tmp_path / 'two', topic='/b/transition')) == 1


def test_mismatched_transition_definition(tmp_path: Path) -> None:
    """A bag recorded with another definition of loop_ros/msg/Transition is refused."""
    text = (ROOT / 'msg' / 'Transition.msg').read_text() + '\nfloat32 extra\n'
    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg(text, TRANSITION_TYPE))
    T = store.types[TRANSITION_TYPE]
    msg = T(header=store.types['std_msgs/msg/Header'](
        stamp=store.types['builtin_interfaces/msg/Time'](sec=0, nanosec=0), frame_id=''),
        obs=np.zeros(O, np.float32), action=np.zeros(A, np.float32),
        next_obs=np.zeros(O, np.float32), reward=0.0, cost=0.0, terminated=False,
        truncated=False, episode=0, step=0, source='', extra=1.0)
    with Writer(tmp_path / 'bag', version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conn = w.add_connection('/transition', TRANSITION_TYPE, typestore=store)
        w.write(conn, 1, store.serialize_cdr(msg, TRANSITION_TYPE))
    with pytest.raises(BagError, match='recorded with another version of the message'):
        read_transitions(tmp_path / 'bag')


def test_unknown_type_without_definition(tmp_path: Path) -> None:
    with Writer(tmp_path / 'bag', version=9, storage_plugin=StoragePlugin.SQLITE3) as w:
        conn = w.add_connection('/thing', 'foo_msgs/msg/Thing', msgdef='', rihs01='RIHS01_00')
        w.write(conn, 1, b'\x00\x01\x00\x00')
    with bags.open_bag(tmp_path / 'bag') as bag:
        with pytest.raises(BagError, match='unknown message type foo_msgs/msg/Thing'):
            list(bags.iter_messages(bag, '/thing'))
    assert bag_info(tmp_path / 'bag').topics[0].type == 'foo_msgs/msg/Thing'


@pytest.mark.parametrize('storage', STORAGES)
def test_truncated_storage_file(tmp_path: Path, storage: str) -> None:
    path = write_transitions(tmp_path / 'bag', make_data(500), storage=storage)
    (storage_file,) = [p for p in path.iterdir() if p.suffix in ('.mcap', '.db3')]
    size = storage_file.stat().st_size
    with open(storage_file, 'r+b') as f:
        f.truncate(size // 2)
    with pytest.raises(BagError) as err:
        read_transitions(path)
    assert str(storage_file) in str(err.value)
    assert 'Traceback' not in str(err.value)


@pytest.mark.parametrize('storage', STORAGES)
def test_corrupt_storage_file(tmp_path: Path, storage: str) -> None:
    path = write_transitions(tmp_path / 'bag', make_data(500), storage=storage)
    (storage_file,) = [p for p in path.iterdir() if p.suffix in ('.mcap', '.db3')]
    raw = bytearray(storage_file.read_bytes())
    raw[: len(raw) // 2] = os.urandom(len(raw) // 2)
    storage_file.write_bytes(bytes(raw))
    with pytest.raises(BagError, match=str(storage_file).replace('.', r'\.')):
        read_transitions(path)


def test_bad_messages_name_their_index(tmp_path: Path) -> None:
    nan_obs = np.zeros(O, np.float32)
    nan_obs[2] = np.nan
    cases = {
        'nan': ([{}, {}, {'obs': nan_obs}], r'message 2: obs is not finite'),
        'reward': ([{}, {'reward': float('inf')}], r'message 1: reward is not finite'),
        'action': ([{}, {'action': np.array([0.5, -1.2], np.float32)}],
                   r'message 1: action \[0\.5, -1\.2.*\] outside \[-1, 1\]'),
        'size': ([{}, {}, {}, {'obs': np.zeros(O + 1, np.float32)}],
                 r'message 3: obs has 5 values, expected 4 \(the size in message 0\)'),
        'next': ([{'next_obs': np.zeros(2, np.float32)}],
                 r'message 0: next_obs has 2 values, expected 4'),
    }
    for name, (rows, pattern) in cases.items():
        path = raw_bag(tmp_path / name, rows)
        with pytest.raises(BagError, match=rf'{name}\.mcap: topic /transition: {pattern}'):
            read_transitions(path)
    good = raw_bag(tmp_path / 'good', [{}, {}])
    assert len(read_transitions(good, obs_dim=O, act_dim=A)) == 2
    with pytest.raises(BagError, match=r'message 0: obs has 4 values, expected 6 \(obs_dim\)'):
        read_transitions(good, obs_dim=6)
    with pytest.raises(BagError, match=r'message 0: action has 2 values, expected 1 \(act_dim\)'):
        read_transitions(good, act_dim=1)
    other = write_transitions(tmp_path / 'other', TransitionData.from_arrays(
        np.zeros((2, 3)), np.zeros((2, A)), np.zeros(2), np.zeros((2, 3))))
    with pytest.raises(BagError, match='expected 4'):
        read_transitions([good, other])


def test_bag_without_metadata_yaml(tmp_path: Path) -> None:
    """A recorder that never closed its bag: read from the storage file, noted in the info."""
    data = make_data(15)
    path = write_transitions(tmp_path / 'bag', data, storage='mcap')
    (path / 'metadata.yaml').unlink()
    assert_same(read_transitions(path), data)
    info = bag_info(path)
    assert info.message_count == 15 and 'metadata.yaml is missing' in str(info)


def test_sqlite_hot_journal_is_rolled_back(tmp_path: Path) -> None:
    """Killed mid-transaction (pages spilled into the db, hot journal): the committed rows.

    The uncommitted part also zeroes the committed messages, so a reader that ignored the
    journal would see them changed.
    """
    path = tmp_path / 'bag'
    script = textwrap.dedent(f'''
        import os, numpy as np
        from rosbags.rosbag2 import StoragePlugin, Writer
        from loop_ros.io import bags
        store = bags.typestore()
        T = store.types[bags.TRANSITION_TYPE]
        H = store.types['std_msgs/msg/Header']
        Time = store.types['builtin_interfaces/msg/Time']
        w = Writer({str(path)!r}, version=9, storage_plugin=StoragePlugin.SQLITE3)
        w.open()
        conn = w.add_connection('/transition', bags.TRANSITION_TYPE, typestore=store)
        def put(i):
            m = T(header=H(stamp=Time(sec=i, nanosec=0), frame_id='r'),
                  obs=np.full(1000, i, np.float32), action=np.zeros(2, np.float32),
                  next_obs=np.zeros(1000, np.float32), reward=0.0, cost=0.0,
                  terminated=False, truncated=False, episode=0, step=i, source='r')
            w.write(conn, i + 1, store.serialize_cdr(m, bags.TRANSITION_TYPE))
        for i in range(10):
            put(i)
        w.storage.conn.commit()
        w.storage.conn.execute('PRAGMA cache_size=1')
        w.storage.conn.execute('UPDATE messages SET data = zeroblob(length(data))')
        for i in range(10, 400):
            put(i)
        os._exit(0)
    ''')
    env = {**os.environ, 'PYTHONPATH': str(ROOT)}
    subprocess.run([sys.executable, '-c', script], check=True, env=env, timeout=60)
    journal = path / 'bag.db3-journal'
    assert journal.is_file() and journal.stat().st_size > 0
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    back = read_transitions(path)
    assert back.obs[:, 0].tolist() == list(range(10))
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before   # the bag is untouched
