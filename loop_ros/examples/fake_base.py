"""A fake differential-drive base: try the ``robot`` graph before it drives a real one.

A unicycle that follows the velocity commands it receives on ``cmd_vel``
(``geometry_msgs/TwistStamped``, or ``Twist`` with ``command_type: twist``) through a
first-order lag, and publishes ``nav_msgs/Odometry`` on ``odom`` at ``rate_hz`` (pose in
``odom``, twist in ``base_link``), like a base driver. Like most drivers it has its own watchdog:
no command for ``watchdog_s`` and it stops. In two terminals::

    python -m loop_ros.examples.fake_base            # /odom and /cmd_vel
    loop-ros launch robot                              # odom_topic:=/odom cmd_topic:=/cmd_vel

``test/ros/test_robot_adapter.py`` drives the whole graph against it.
"""
from __future__ import annotations

import math
import time
from typing import Any

from geometry_msgs.msg import Twist
from geometry_msgs.msg import TwistStamped
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node

from loop_ros.ros import qos
from loop_ros.ros.clock import ns_to_stamp
from loop_ros.ros.clock import stamp_to_ns
from loop_ros.ros.conversions import odometry_msg
from loop_ros.ros.runner import run_node

PARAMETERS = {
    'rate_hz': (50.0, 'odometry rate (and integration step)'),
    'lag_s': (0.1, 'time constant of the first-order lag from command to velocity'),
    'watchdog_s': (0.5, 'no command for this long: the command becomes zero (as a driver does)'),
    'x': (1.0, 'start position x (m)'),
    'y': (0.0, 'start position y (m)'),
    'yaw': (math.pi / 2, 'start heading (rad): on the example task\'s circle, counter-clockwise'),
    'command_type': ('twist_stamped', "'twist_stamped' or 'twist'"),
}


class FakeBase(Node):
    """Unicycle kinematics behind a first-order lag; odometry out, velocity commands in."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('fake_base', **kwargs)
        for name, (default, text) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=text))
        value = lambda name: self.get_parameter(name).value  # noqa: E731
        self.lag_s = float(value('lag_s'))
        self.watchdog_s = float(value('watchdog_s'))
        self.x, self.y, self.yaw = float(value('x')), float(value('y')), float(value('yaw'))
        self.v = self.w = 0.0
        self.cmd = (0.0, 0.0)
        self.publishing = True
        self._cmd_time = -math.inf
        self._last = time.monotonic()
        stamped = value('command_type') == 'twist_stamped'
        self.odom_pub = self.create_publisher(Odometry, 'odom', qos.ODOMETRY)
        self.create_subscription(TwistStamped if stamped else Twist, 'cmd_vel',
                                 self._on_cmd, qos.ODOMETRY)   # reliable, depth 10
        self.create_timer(1.0 / float(value('rate_hz')), self._tick)

    def _on_cmd(self, msg: Any) -> None:
        twist = getattr(msg, 'twist', msg)
        self.cmd = (twist.linear.x, twist.angular.z)
        self._cmd_time = time.monotonic()
        header = getattr(msg, 'header', None)
        self.on_command(stamp_to_ns(header.stamp) * 1e-9 if header is not None else 0.0,
                        *self.cmd)

    def on_command(self, stamp_s: float, v: float, w: float) -> None:
        """Hook: a command arrived (its stamp in seconds, 0 for Twist)."""

    def _tick(self) -> None:
        now = time.monotonic()
        dt, self._last = now - self._last, now
        v_cmd, w_cmd = self.cmd if now - self._cmd_time <= self.watchdog_s else (0.0, 0.0)
        k = 1.0 - math.exp(-dt / self.lag_s) if self.lag_s > 0.0 else 1.0
        self.v += k * (v_cmd - self.v)
        self.w += k * (w_cmd - self.w)
        self.x += self.v * math.cos(self.yaw) * dt
        self.y += self.v * math.sin(self.yaw) * dt
        self.yaw = math.atan2(math.sin(self.yaw + self.w * dt), math.cos(self.yaw + self.w * dt))
        if self.publishing:
            stamp = ns_to_stamp(self.get_clock().now().nanoseconds)
            self.odom_pub.publish(odometry_msg((self.x, self.y, self.yaw, self.v, 0.0, self.w),
                                               stamp))


def main(args: list[str] | None = None) -> int:
    """Run the fake base until Ctrl-C."""
    return run_node(FakeBase, 'fake_base', args=args)


if __name__ == '__main__':
    import sys
    sys.exit(main())
