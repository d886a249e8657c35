"""``recorder``: writes topics to a rosbag2 bag, for pip venvs without ``ros2 bag record``.

* Records ``topics`` (default: the relative ``transition``, i.e. the graph's shared Transition
  topic) and, with ``all_transitions``, every ``loop_ros/msg/Transition`` topic that appears on
  the graph. A topic is subscribed once a publisher shows its type (the graph is searched every
  ``discovery_period_s``); its QoS is reliable unless a publisher is best effort.
* The subscriptions take the serialized CDR bytes (``raw=True``) and hand them to the rosbags
  ``Writer`` unchanged, logged at the node clock (simulated time under ``use_sim_time``). The
  message definitions and RIHS01 type hashes come from ``loop_ros.io.bags.typestore()`` (the
  kilted store plus loop_ros's messages; other types from ``<prefix>/share/<pkg>/msg``).
* ``storage: sqlite3`` (default) commits every ``flush_period_s`` of wall time: a recorder killed
  by SIGKILL leaves a bag that ``loop_ros.io.bags`` reads up to its last commit (it has no
  ``metadata.yaml``; the reader rebuilds it from the database). ``mcap`` is complete only after a
  clean stop (SIGINT/SIGTERM), which closes the bag and writes ``metadata.yaml``.
* Everything runs in one thread (the sqlite connection belongs to it): a single-threaded
  executor, timers on the steady clock.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path
import sys
import time
from typing import Any

from rclpy.clock import Clock
from rclpy.clock import ClockType
from rclpy.node import Node
from rclpy.qos import HistoryPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from rclpy.task import Future
from rosbags.rosbag2 import Writer

from loop_ros.core.config import ConfigError
from loop_ros.core.node_config import NODE_PARAMETERS
from loop_ros.core.node_config import RecorderNodeConfig
from loop_ros.io import bags
from loop_ros.ros import qos
from loop_ros.ros.diagnostics import DiagnosticsPublisher
from loop_ros.ros.node_diagnostics import RecorderDiagnostics
from loop_ros.ros.params import declare_groups
from loop_ros.ros.params import read_config
from loop_ros.ros.runner import run_node
from loop_ros.ros.runner import spin_until

OTHER_DEPTH = 100
"""History depth of the subscriptions to non-Transition topics."""


def message_class(msgtype: str) -> type:
    """The rclpy class of ``pkg/msg/Name``; ValueError when it cannot be imported."""
    pkg, kind, name = msgtype.split('/')
    try:
        return getattr(importlib.import_module(f'{pkg}.{kind}'), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f'cannot import the Python class of {msgtype}: {exc}') from None


def ensure_type(store: Any, msgtype: str) -> None:
    """Register ``msgtype`` in the rosbags store from ``<prefix>/share/<pkg>/msg/<Name>.msg``."""
    if msgtype in store.types:
        return
    from rosbags.typesys import get_types_from_msg
    pkg, _, name = msgtype.split('/')
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    for prefix in [*prefixes, sys.prefix]:
        path = Path(prefix, 'share', pkg, 'msg', f'{name}.msg')
        if path.is_file():
            store.register(get_types_from_msg(path.read_text(), msgtype))
            return
    raise ValueError(f'no message definition of {msgtype} (looked for share/{pkg}/msg/'
                     f'{name}.msg under AMENT_PREFIX_PATH and {sys.prefix})')


class RecorderNode(Node):
    """Subscribes to the wanted topics as raw CDR and writes them to one bag."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('recorder', **kwargs)
        declare_groups(self, NODE_PARAMETERS['recorder'])
        self.cfg: RecorderNodeConfig = read_config(self, RecorderNodeConfig)
        if not self.cfg.output:
            raise ConfigError("parameter 'output' must name the bag to create")
        self.path = Path(self.cfg.output).expanduser()
        if self.path.exists():
            raise ConfigError(f'{self.path} exists already: the recorder creates a new bag')
        self.store = bags.typestore()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.writer: Writer | None = Writer(self.path, version=9,
                                            storage_plugin=bags.STORAGES[self.cfg.storage])
        self.writer.open()
        self.wanted = {self.resolve_topic_name(t) for t in self.cfg.topics}
        self.connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self._skipped: set[str] = set()
        self._subs: list[Any] = []
        self.done = Future()
        self._started = time.monotonic()
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(self.cfg.discovery_period_s, self.discover, clock=steady)
        self.create_timer(self.cfg.flush_period_s, self._on_flush_timer, clock=steady)
        self.discover()
        self.diagnostics = DiagnosticsPublisher(self, 'recording', RecorderDiagnostics(self))
        self.get_logger().info(
            f'recording to {self.path} ({self.cfg.storage}, commit every '
            f'{self.cfg.flush_period_s:g} s): {", ".join(sorted(self.wanted)) or "-"}'
            + (' and every loop_ros/msg/Transition topic' if self.cfg.all_transitions else ''))

    def discover(self) -> None:
        """Subscribe to wanted topics whose type the graph now shows."""
        for name, types in self.get_topic_names_and_types():
            if name in self.connections or name in self._skipped:
                continue
            if not (name in self.wanted or (self.cfg.all_transitions
                                            and bags.TRANSITION_TYPE in types)):
                continue
            if len(types) != 1:
                self._skip(name, f'it has several types {types}')
                continue
            try:
                msg_class = message_class(types[0])
                ensure_type(self.store, types[0])
            except ValueError as exc:
                self._skip(name, str(exc))
                continue
            self._subscribe(name, types[0], msg_class)

    def _skip(self, name: str, why: str) -> None:
        self._skipped.add(name)
        self.get_logger().warning(f'not recording {name}: {why}')

    def _subscribe(self, name: str, msgtype: str, msg_class: type) -> None:
        publishers = self.get_publishers_info_by_topic(name)
        best_effort = any(p.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
                          for p in publishers)
        transitions = msgtype == bags.TRANSITION_TYPE   # training data: keep all, like the learner
        profile = QoSProfile(history=HistoryPolicy.KEEP_ALL if transitions
                             else HistoryPolicy.KEEP_LAST,
                             depth=qos.TRANSITION_DEPTH if transitions else OTHER_DEPTH,
                             reliability=ReliabilityPolicy.BEST_EFFORT if best_effort
                             else ReliabilityPolicy.RELIABLE)
        assert self.writer is not None
        conn = self.writer.add_connection(name, msgtype, typestore=self.store)
        self.connections[name] = conn
        self.counts[name] = 0
        self._subs.append(self.create_subscription(
            msg_class, name, lambda raw, n=name: self._on_message(n, raw), profile, raw=True))
        self.get_logger().info(f'recording {name} ({msgtype}, '
                               f"{'best effort' if best_effort else 'reliable'})")

    def _on_message(self, name: str, raw: bytes) -> None:
        if self.writer is None:
            return
        self.writer.write(self.connections[name], self.get_clock().now().nanoseconds, raw)
        self.counts[name] += 1

    def _on_flush_timer(self) -> None:
        self.flush()
        if self.cfg.max_duration_s and \
                time.monotonic() - self._started >= self.cfg.max_duration_s and \
                not self.done.done():
            self.done.set_result(True)

    def flush(self) -> None:
        """Commit what was written so far (sqlite3; the mcap writer buffers until close)."""
        storage = getattr(self.writer, 'storage', None)
        conn = getattr(storage, 'conn', None)
        if conn is not None:
            conn.commit()

    def close(self) -> None:
        """Close the bag (writes metadata.yaml); called by run_node before destruction."""
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.close()
            total = sum(self.counts.values())
            self.get_logger().info(f'wrote {total} messages on {len(self.counts)} topic(s) to '
                                   f'{self.path}')


def main(args: list[str] | None = None) -> int:
    """Record until SIGINT/SIGTERM (or ``max_duration_s``); one thread."""
    return run_node(RecorderNode, 'recorder', (ConfigError, ValueError),
                    spin=lambda node: spin_until(node, node.done, threads=1), args=args)


if __name__ == '__main__':
    sys.exit(main())
