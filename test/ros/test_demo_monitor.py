"""The demo's monitor reports the planner's compute time of planned ticks only."""
from __future__ import annotations

import pytest

rclpy = pytest.importorskip('rclpy')


def test_random_exploration_ticks_are_not_plan_times() -> None:
    from loop_ros.demo import Monitor
    from loop_ros.demo import percentile
    from loop_ros.msg import PlanStats

    rclpy.init()
    try:
        monitor = Monitor()
        for i in range(30):   # exploration before start_steps: no plan, ~0 ms
            monitor._on_plan(PlanStats(random_action=True, compute_time_ms=0.01))
        for ms in (20.0, 30.0, 40.0):
            monitor._on_plan(PlanStats(random_action=False, compute_time_ms=ms))
        assert percentile(monitor.compute_ms, 50) == pytest.approx(30.0)
        assert monitor.random_actions == 30
        monitor.node.destroy_node()
    finally:
        rclpy.shutdown()
