"""The ``main()`` of every loop_ros node: init, build, spin, clean shutdown, exit code."""
from __future__ import annotations

from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.executors import MultiThreadedExecutor
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from rclpy.task import Future


SPIN_TIMEOUT_S = 0.2
"""Longest wait inside the executor: Ctrl-C is handled within this time."""


def spin_until(node: Node, done: Future | None = None, threads: int = 2) -> None:
    """Spin (multi-threaded when ``threads`` > 1) until ``done`` completes or Ctrl-C.

    Short ``spin_once`` waits return to Python regularly, so the KeyboardInterrupt of Ctrl-C is
    raised here (see :func:`run_node`).
    """
    executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 \
        else SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while done is None or not done.done():
            executor.spin_once(timeout_sec=SPIN_TIMEOUT_S)
    finally:
        executor.shutdown()


def run_node(build: Callable[[], Node], name: str,
             errors: tuple[type[BaseException], ...] = (ValueError,),
             spin: Callable[[Node], None] = spin_until,
             args: list[str] | None = None) -> int:
    """Build the node and spin it until Ctrl-C or shutdown.

    A setup error of a type in ``errors`` is logged as fatal and gives exit code 1; Ctrl-C and
    an external shutdown give 0. The node's ``close()`` (if any) runs before it is destroyed.

    rclpy's own SIGINT handler is off: it would shut the context down at once, under the feet of
    a node's worker threads (the learner's training thread was seen to segfault publishing on a
    context that had gone). Ctrl-C is a KeyboardInterrupt in the spinning thread instead, so
    ``close()`` stops the workers first and the context goes down last.
    """
    try:
        with rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO):
            try:
                node = build()
            except errors as exc:
                rclpy.logging.get_logger(name).fatal(str(exc))
                return 1
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
