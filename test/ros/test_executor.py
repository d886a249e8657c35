"""PooledExecutor: every node's multi-threaded executor (loop_ros/ros/executor.py).

rclpy 9.1.2's MultiThreadedExecutor yields a handler again while it waits in the thread pool's
queue, and its loop does not wait while one does: with the workers busy the spinning thread
loops thousands of times a second, submitting duplicates (ros2/rclpy#1452). That starved the
planner of the RC-car graph. These tests busy both workers and count the spinning thread's turns.
"""
from __future__ import annotations

import threading
import time

import pytest

rclpy = pytest.importorskip('rclpy')

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from std_msgs.msg import Int32  # noqa: E402

from loop_ros.ros.executor import PooledExecutor  # noqa: E402

pytestmark = pytest.mark.ros

BUSY_S = 0.6
"""How long the two blocking callbacks hold both workers."""


@pytest.fixture
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    ctx.try_shutdown()


class BusyNode:
    """Two callbacks that block both workers for ``BUSY_S``, then a subscription that waits."""

    def __init__(self, context) -> None:
        self.node = rclpy.create_node('busy', context=context)
        self.release = threading.Event()
        self.blocked = 0
        self.received: list[int] = []
        for _ in range(2):
            self.node.create_timer(0.01, self._block,
                                   callback_group=MutuallyExclusiveCallbackGroup())
        self.node.create_subscription(Int32, 'numbers', lambda m: self.received.append(m.data), 10,
                                      callback_group=MutuallyExclusiveCallbackGroup())
        self.pub = self.node.create_publisher(Int32, 'numbers', 10)

    def _block(self) -> None:
        if self.blocked < 2:   # each timer blocks once
            self.blocked += 1
            self.release.wait(BUSY_S)


def spin_turns(executor, busy: BusyNode, seconds: float) -> int:
    """Spin for ``seconds`` while both workers are blocked and a message waits; turns taken."""
    end = time.monotonic() + 0.5
    while busy.blocked < 2 and time.monotonic() < end:
        executor.spin_once(timeout_sec=0.05)
    assert busy.blocked == 2, 'the blocking callbacks did not start'
    busy.pub.publish(Int32(data=7))
    turns, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=0.05)
        turns += 1
    return turns


def test_a_queued_handler_does_not_make_the_loop_spin(context) -> None:
    busy = BusyNode(context)
    executor = PooledExecutor(2, context=context)
    executor.add_node(busy.node)
    try:
        turns = spin_turns(executor, busy, BUSY_S / 2)
        # the subscription's handler waits for a worker: the loop sleeps on it (up to 50 ms a
        # turn; 12 turns measured on 2026-12-02, rclpy's executor 1366 in the same time)
        assert executor.queued == 1
        assert turns < 50, turns
        busy.release.set()
        end = time.monotonic() + 2.0
        while not busy.received and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        assert busy.received == [7]   # delivered once, after the workers were free
        assert executor.queued == 0
    finally:
        busy.release.set()
        executor.shutdown()
        busy.node.destroy_node()


def test_rclpys_executor_spins_on_a_queued_handler(context) -> None:
    """The bug this executor exists for, still in the pinned rclpy: if this fails, rclpy was
    fixed (ros2/rclpy#1547) and PooledExecutor can go."""
    busy = BusyNode(context)
    executor = MultiThreadedExecutor(2, context=context)
    executor.add_node(busy.node)
    try:
        turns = spin_turns(executor, busy, BUSY_S / 2)
        assert turns > 200, turns
    finally:
        busy.release.set()
        executor.shutdown()
        busy.node.destroy_node()


def test_a_callbacks_exception_reaches_spin_once(context) -> None:
    node = rclpy.create_node('raising', context=context)

    def fail() -> None:
        raise RuntimeError('callback failed')

    node.create_timer(0.01, fail)
    executor = PooledExecutor(2, context=context)
    executor.add_node(node)
    try:
        with pytest.raises(RuntimeError, match='callback failed'):
            end = time.monotonic() + 2.0
            while time.monotonic() < end:
                executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
        node.destroy_node()


def test_executor_choice(monkeypatch) -> None:
    from rclpy.executors import SingleThreadedExecutor

    from loop_ros.ros.runner import EXECUTOR_ENV, make_executor, run_node
    made = []
    rclpy.init()   # the default context, as in a node's process
    try:
        monkeypatch.delenv(EXECUTOR_ENV, raising=False)   # the default: events, one thread
        made += [make_executor(1), make_executor(2)]
        monkeypatch.setenv(EXECUTOR_ENV, 'pooled')
        made += [make_executor(1), make_executor(2)]
        monkeypatch.setenv(EXECUTOR_ENV, 'rclpy')
        made.append(make_executor(2))
        assert [type(e).__name__ for e in made[:2]] == ['EventsExecutor'] * 2
        assert [type(e) for e in made[2:]] == [SingleThreadedExecutor, PooledExecutor,
                                               MultiThreadedExecutor]
    finally:
        for executor in made:
            executor.shutdown()
        rclpy.shutdown()
    monkeypatch.setenv(EXECUTOR_ENV, 'fast')
    with pytest.raises(ValueError, match="LOOP_ROS_EXECUTOR='fast'"):
        make_executor(2)
    built = []
    assert run_node(lambda: built.append(1), 'probe', args=[]) == 1   # refused before build
    assert not built
