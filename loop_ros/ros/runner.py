"""The ``main()`` of every loop_ros node: init, build, spin, clean shutdown, exit code."""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from types import FrameType
from typing import Callable

import rclpy
from rclpy.executors import Executor
from rclpy.executors import ExternalShutdownException
from rclpy.executors import MultiThreadedExecutor
from rclpy.executors import SingleThreadedExecutor
from rclpy.experimental import EventsExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from rclpy.task import Future

from loop_ros.launcher import LAUNCHER_PID_ENV
from loop_ros.ros.executor import PooledExecutor


EXECUTOR_ENV = 'LOOP_ROS_EXECUTOR'
"""``events`` (default): rclpy's C++ ``EventsExecutor`` (``rclpy.experimental``) for every node,
one thread: callbacks run one at a time, in the planner and the learner too (their heavy work,
the plan and the training, runs in threads of their own). ``pooled``: :class:`PooledExecutor`
for the planner and the learner (two threads) and rclpy's SingleThreadedExecutor for the
others, the default until 2026-12-03, evening (``bench/node_overhead.py``: about twice the events
executor's node overhead); ``rclpy``: rclpy's own MultiThreadedExecutor instead of the pooled
one, for comparison."""

EXECUTOR_KINDS = ('events', 'pooled', 'rclpy')

SPIN_TIMEOUT_S = 0.2
"""Longest wait inside the executor: a stop request is seen within this time."""

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

PR_SET_PDEATHSIG = 1


class StopRequest:
    """SIGINT/SIGTERM ask the spin loop to stop instead of raising wherever Python happens to be.

    A KeyboardInterrupt raised by Python's default SIGINT handler lands at any bytecode, and
    that includes the Python code rclpy's C++ calls while it takes a message (the message
    class's constructor). pybind11 then reports a ``RuntimeError: Unable to convert call
    argument '0' to Python object`` and the node exits with code 1 on a plain Ctrl-C (seen once
    in CI; here 1 in 20 stops of a node receiving at 2 kHz). So while this context is active
    the first signal only sets :attr:`requested`, which the spin loop checks between
    ``spin_once`` calls; a second signal raises KeyboardInterrupt, for a node that does not
    stop. Outside the main thread (where signals cannot be handled) it does nothing.
    """

    _active: StopRequest | None = None
    """The request whose handlers are installed (nested ``with`` blocks share it)."""

    def __init__(self) -> None:
        self.requested = False  # a plain flag: the handler must take no lock
        self.signal: int | None = None
        self._previous: dict[int, object] = {}
        self._depth = 0

    @classmethod
    def current(cls) -> StopRequest:
        """The active request, or a new one (to be entered with ``with``)."""
        return cls._active if cls._active is not None else cls()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested, self.signal = True, signum

    def __enter__(self) -> StopRequest:
        self._depth += 1
        if self._depth == 1 and threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
            StopRequest._active = self
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)
            self._previous.clear()
            if StopRequest._active is self:
                StopRequest._active = None


def watch_launcher() -> bool:
    """Stop this node when the launcher that started it is gone.

    A launcher killed outright (SIGKILL, or a script around it ended by ``timeout``) cannot stop
    its nodes: they run in their own process groups, so they would go on driving the robot or
    publishing ``/clock`` to the next graph on the machine. With :data:`LAUNCHER_PID_ENV` set
    and that process our parent, the kernel is asked (Linux ``prctl(PR_SET_PDEATHSIG)``) to send
    this process SIGTERM, the clean stop of :class:`StopRequest`, when its parent exits.
    There is no watcher thread (an earlier version polled ``getppid()`` from one). Returns
    whether the request is in place; False without the variable, when started by another
    process (e.g. ``ros2 launch``, which stops its own children), or off Linux.
    """
    text = os.environ.get(LAUNCHER_PID_ENV, '')
    if not text.isdigit() or os.getppid() != int(text) or not sys.platform.startswith('linux'):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        return False
    if os.getppid() != int(text):   # the launcher died before the request was in place
        os.kill(os.getpid(), signal.SIGTERM)
    return True


def make_executor(threads: int) -> Executor:
    """rclpy's EventsExecutor, whatever ``threads`` asks for (it has one thread); with
    ``LOOP_ROS_EXECUTOR=pooled`` or ``rclpy``, one thread: rclpy's SingleThreadedExecutor, more:
    :class:`PooledExecutor` (pooled) or rclpy's MultiThreadedExecutor (rclpy)."""
    kind = executor_kind()
    if kind == 'events':
        return EventsExecutor()
    if threads <= 1:
        return SingleThreadedExecutor()
    if kind == 'rclpy':
        return MultiThreadedExecutor(num_threads=threads)
    return PooledExecutor(threads)


def executor_kind() -> str:
    """The ``LOOP_ROS_EXECUTOR`` setting; ValueError for anything but :data:`EXECUTOR_KINDS`."""
    kind = os.environ.get(EXECUTOR_ENV, 'events')
    if kind not in EXECUTOR_KINDS:
        raise ValueError(f"{EXECUTOR_ENV}={kind!r}: use 'events' (default), 'pooled' or 'rclpy'")
    return kind


def spin_until(node: Node, done: Future | None = None, threads: int = 2) -> None:
    """Spin (in :func:`make_executor`'s executor for ``threads``) until ``done`` completes or a
    stop request.

    Short ``spin_once`` waits return to Python regularly, so a stop request (SIGINT/SIGTERM,
    see :class:`StopRequest`; :func:`run_node`'s when it is active) is honoured within
    :data:`SPIN_TIMEOUT_S` plus the callback that is running.
    """
    executor = make_executor(threads)
    executor.add_node(node)
    with StopRequest.current() as request:
        try:
            while not request.requested and (done is None or not done.done()):
                executor.spin_once(timeout_sec=SPIN_TIMEOUT_S)
        finally:
            executor.shutdown()


def share_compute(node: Node) -> None:
    """This process's share of a small computer, from the node's ``torch_threads`` and
    ``nice`` parameters (those it declares): torch intra-op threads, and a niceness raised to
    ``nice`` (never lowered). Process-wide, so only :func:`run_node` applies it."""
    if node.has_parameter('torch_threads'):
        threads = int(node.get_parameter('torch_threads').value)
        if threads > 0:
            import torch
            torch.set_num_threads(threads)
    if node.has_parameter('nice'):
        nice = int(node.get_parameter('nice').value)
        try:
            if os.getpriority(os.PRIO_PROCESS, 0) < nice:
                os.setpriority(os.PRIO_PROCESS, 0, nice)
        except OSError as exc:   # a sandbox without the permission: say so, carry on
            node.get_logger().warning(f'cannot set niceness {nice}: {exc}')


def run_node(build: Callable[[], Node], name: str,
             errors: tuple[type[BaseException], ...] = (ValueError,),
             spin: Callable[[Node], None] = spin_until,
             args: list[str] | None = None) -> int:
    """Build the node and spin it until SIGINT/SIGTERM or shutdown.

    A setup error of a type in ``errors`` (or a bad ``LOOP_ROS_EXECUTOR``, a ValueError) is
    logged as fatal and gives exit code 1; a stop
    signal and an external shutdown give 0. The node's ``close()`` (if any) runs before it is
    destroyed. :func:`share_compute` sets the process's torch threads and niceness.

    rclpy's own signal handler is off: it would shut the context down at once, under the feet
    of a node's worker threads (the learner's training thread was seen to segfault publishing
    on a context that had gone). While spinning, a signal is a stop request the spin loop
    honours (:class:`StopRequest`), so ``close()`` stops the workers first and the context goes
    down last. During ``build()`` Ctrl-C is a KeyboardInterrupt as usual.
    """
    try:
        with rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO):
            try:
                executor_kind()   # a bad LOOP_ROS_EXECUTOR fails before the node is built
                node = build()
            except errors + (ValueError,) as exc:
                rclpy.logging.get_logger(name).fatal(str(exc))
                return 1
            share_compute(node)
            with StopRequest():
                watch_launcher()
                try:
                    spin(node)
                finally:
                    close = getattr(node, 'close', None)
                    if callable(close):
                        close()
                    node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0
