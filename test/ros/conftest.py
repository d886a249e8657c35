"""The ROS tests need ROS: a missing rclpy, message package or built message is an error here.

Several test modules start with ``pytest.importorskip('rclpy')``; on their own they would turn
a broken or incomplete install into skipped tests and a green run. ``make test`` (and so CI)
installs the ROS 2 wheels and builds ``loop_ros.msg``, so when this directory is collected,
whatever of that does not import fails the collection, naming the missing piece. On a machine
without ROS, leave these tests out on purpose: ``pytest --ignore=test/ros``.
"""
from __future__ import annotations

import importlib
from pathlib import Path
import re

import pytest

ROOT = Path(__file__).resolve().parents[2]


def required_modules() -> list[str]:
    """rclpy, the message packages pinned in requirements.txt, and ``loop_ros.msg``."""
    text = (ROOT / 'requirements.txt').read_text()
    pinned = re.findall(r'^ros-([a-z0-9-]+?-(?:msgs|srvs|interfaces))==', text, re.M)
    return ['rclpy', *sorted(name.replace('-', '_') for name in pinned), 'loop_ros.msg']


def missing_ros() -> list[str]:
    """``'<module>: <error>'`` for each required module or built message that does not import."""
    missing = []
    for name in required_modules():
        try:
            importlib.import_module(name)
        except Exception as exc:  # ImportError, or a wheel that fails while loading
            missing.append(f'{name}: {type(exc).__name__}: {exc}')
    if not any(m.startswith('loop_ros.msg:') for m in missing):
        import loop_ros.msg
        missing += [f'loop_ros.msg.{msg.stem}: msg/{msg.name} is not in the built messages'
                    for msg in sorted((ROOT / 'msg').glob('*.msg'))
                    if not hasattr(loop_ros.msg, msg.stem)]
    return missing


_MISSING = missing_ros()
if _MISSING:
    raise ImportError(
        'the ROS tests in test/ros cannot run; missing:\n  ' + '\n  '.join(_MISSING)
        + '\n`make test` installs the ROS 2 wheels (requirements.txt) and builds the messages '
        '(`make msgs`); to leave these tests out on purpose: pytest --ignore=test/ros')


@pytest.fixture
def context():
    """An own rclpy context, initialised for the test; SIGINT is left alone (a stray signal
    must not shut it down mid-test)."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions
    ctx = rclpy.Context()
    rclpy.init(context=ctx, signal_handler_options=SignalHandlerOptions.NO)
    yield ctx
    rclpy.shutdown(context=ctx)


@pytest.fixture
def feed_observations():
    """:func:`_feed_observations`, for fixtures that drive a planner."""
    return _feed_observations


def _feed_observations(executor, publisher, clock_node, condition, timeout_s: float = 10.0,
                      data=(0.5, -0.2, 0.0, 0.1), stamp_offset_s: float = 0.0,
                      spin_s: float = 0.02) -> bool:
    """Publish ``loop_ros/Observation`` s (stamped ``stamp_offset_s`` from ``clock_node``'s now)
    and spin ``executor`` until ``condition()`` holds or ``timeout_s`` passes; its last value."""
    import time

    from loop_ros.msg import Observation
    end = time.monotonic() + timeout_s
    while time.monotonic() < end and not condition():
        msg = Observation(data=[float(v) for v in data], episode=0, step=0)
        stamp = clock_node.get_clock().now().nanoseconds + int(stamp_offset_s * 1e9)
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 10**9)
        publisher.publish(msg)
        executor.spin_once(timeout_sec=spin_s)
    return condition()
