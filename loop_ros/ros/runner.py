"""The ``main()`` of every loop_ros node: init, build, spin, clean shutdown, exit code."""
from __future__ import annotations

from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node


def spin_multithreaded(node: Node, threads: int = 2) -> None:
    """Spin with a multi-threaded executor (callback groups run in parallel)."""
    executor = MultiThreadedExecutor(num_threads=threads)
    executor.add_node(node)
    try:
        executor.spin()
    finally:
        executor.shutdown()


def run_node(build: Callable[[], Node], name: str,
             errors: tuple[type[BaseException], ...] = (ValueError,),
             spin: Callable[[Node], None] = spin_multithreaded,
             args: list[str] | None = None) -> int:
    """Build the node and spin it until Ctrl-C or shutdown.

    A setup error of a type in ``errors`` is logged as fatal and gives exit code 1; Ctrl-C and
    an external shutdown give 0. The node's ``close()`` (if any) runs before it is destroyed.
    """
    try:
        with rclpy.init(args=args):
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
