"""Simulated time as integer nanoseconds, and its ROS messages.

The sim bridge advances time by exactly ``dt`` per step. Keeping it as an integer number of
nanoseconds avoids float drift over long runs (1e6 steps of 0.05 s stay exact).
"""
from __future__ import annotations

from builtin_interfaces.msg import Time
from rosgraph_msgs.msg import Clock

NS_PER_S = 1_000_000_000


def seconds_to_ns(seconds: float) -> int:
    """Seconds -> integer nanoseconds (rounded)."""
    return int(round(seconds * NS_PER_S))


def ns_to_stamp(ns: int) -> Time:
    """Integer nanoseconds -> ``builtin_interfaces/Time``."""
    if ns < 0:
        raise ValueError(f'time must be >= 0, got {ns} ns')
    sec, nanosec = divmod(int(ns), NS_PER_S)
    return Time(sec=sec, nanosec=nanosec)


def stamp_to_ns(stamp: Time) -> int:
    """``builtin_interfaces/Time`` -> integer nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def clock_msg(ns: int) -> Clock:
    """A ``rosgraph_msgs/Clock`` at ``ns`` nanoseconds."""
    return Clock(clock=ns_to_stamp(ns))


class SimClock:
    """Simulated time advancing in fixed steps of ``dt``.

    Args:
        dt: step of the simulation in seconds (> 0).
        start_ns: initial time in nanoseconds.
    """

    def __init__(self, dt: float, start_ns: int = 0) -> None:
        if not dt > 0.0:
            raise ValueError(f'dt must be > 0, got {dt}')
        self.dt_ns = seconds_to_ns(dt)
        if self.dt_ns <= 0:
            raise ValueError(f'dt={dt} s is below 1 ns')
        self.ns = int(start_ns)

    def advance(self) -> int:
        """Step the clock by ``dt``; return the new time in nanoseconds."""
        self.ns += self.dt_ns
        return self.ns

    @property
    def seconds(self) -> float:
        """Current time in seconds."""
        return self.ns / NS_PER_S

    def stamp(self) -> Time:
        """Current time as ``builtin_interfaces/Time``."""
        return ns_to_stamp(self.ns)
