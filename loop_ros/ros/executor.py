"""A multi-threaded rclpy executor that queues each ready callback once.

rclpy 9.1 (kilted)'s ``MultiThreadedExecutor`` hands every ready callback to a thread pool and
returns. Its wait loop yields "tasks in progress" first: every handler that is not executing
and not done, including those still waiting in the pool's queue. So a handler queued behind a
busy worker is submitted again on every turn of the loop, and while one is queued the loop
does not wait at all: the spinning thread holds the GIL, the workers start even later, more
duplicates pile up (ros2/rclpy#1452; fixed upstream by ros2/rclpy#1547, not in 9.1.2).

Measured on 2026-12-02 (2 cores): a planner that configured while the bridge already published
``/clock`` at 80 Hz (``real_time_factor`` 8) spun one core at 100 % and ran about four
callbacks a second; its ``/clock`` fell seconds behind the observations' stamps, it rejected
them as "from the future", and the bridge applied the safe action in 50-100 % of the steps.
:class:`PooledExecutor` is the same executor with one change: a handler already in the pool is
not submitted again, and the spinning thread sleeps until a worker has started it. The same
graph then ran every one of its callbacks (``test/ros/test_executor.py``).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
import threading
from typing import Any, Callable

from rclpy.context import Context
from rclpy.executors import ConditionReachedException
from rclpy.executors import Executor
from rclpy.executors import ExternalShutdownException
from rclpy.executors import ShutdownException
from rclpy.executors import TimeoutException

QUEUED_WAIT_S = 0.05
"""Longest sleep of the spinning thread while a handler it was given waits in the pool."""


class PooledExecutor(Executor):
    """Runs callbacks in ``num_threads`` worker threads; each ready handler is queued once.

    A handler that rclpy yields again while it still waits in the pool is not submitted again:
    the spinning thread sleeps until a queued handler starts (at most :data:`QUEUED_WAIT_S`),
    so it neither floods the pool nor holds the GIL the workers need. A callback's exception is
    raised from a later :meth:`spin_once`, as rclpy's ``MultiThreadedExecutor`` does.
    """

    def __init__(self, num_threads: int = 2, *, context: Context | None = None) -> None:
        super().__init__(context=context)
        self._pool = ThreadPoolExecutor(num_threads, thread_name_prefix='ros')
        self._started = threading.Condition()
        self._queued: set[Any] = set()      # handlers (rclpy Tasks) in the pool, not started
        self._finished: list[Any] = []      # handlers that ran: their exceptions are raised here

    @property
    def queued(self) -> int:
        """Handlers submitted to the pool that no worker has started."""
        with self._started:
            return len(self._queued)

    def _spin_once_impl(self, timeout_sec: float | None = None,
                        wait_condition: Callable[[], bool] = lambda: False) -> None:
        try:
            handler, _, _ = self.wait_for_ready_callbacks(timeout_sec, None, wait_condition)
        except (ExternalShutdownException, ShutdownException, TimeoutException,
                ConditionReachedException):
            handler = None
        if handler is not None:
            with self._started:
                if handler in self._queued:   # yielded again before a worker took it
                    self._started.wait(QUEUED_WAIT_S)
                    handler = None
                else:
                    self._queued.add(handler)
        if handler is not None:
            self._pool.submit(self._run, handler)
        self._raise_callback_errors()

    def _run(self, handler: Any) -> None:
        """Worker thread: mark the handler started, run it, keep it for its exception."""
        with self._started:
            self._queued.discard(handler)
            self._started.notify_all()
        handler()
        with self._started:
            self._finished.append(handler)

    def _raise_callback_errors(self) -> None:
        """A handler (an rclpy Task) keeps its callback's exception; ``result()`` raises it."""
        with self._started:
            finished, self._finished = self._finished, []
        for handler in finished:
            if handler.done():
                handler.result()

    def spin_once(self, timeout_sec: float | None = None) -> None:
        """Wait for one ready callback (at most ``timeout_sec``) and queue it in the pool."""
        self._spin_once_impl(timeout_sec)

    def spin_once_until_future_complete(self, future: Any,
                                        timeout_sec: float | None = None) -> None:
        future.add_done_callback(lambda _: self.wake())
        self._spin_once_impl(timeout_sec, future.done)

    def shutdown(self, timeout_sec: float | None = None) -> bool:
        """Stop executing callbacks; wait for the running ones to finish."""
        success = super().shutdown(timeout_sec)
        self._pool.shutdown(wait=True)
        return success
