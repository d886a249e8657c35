"""The demo's monitor: compute time of planned ticks only, latency, node overhead."""
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


def test_node_overhead_pairs_a_ticks_compute_with_its_actions_latency(monkeypatch) -> None:
    """Overhead = obs->action latency less the compute time of the tick that answered, paired
    by the observation's stamp whichever of action and PlanStats arrives first; a second
    action answering the same observation is not a new latency."""
    import loop_ros.demo as demo
    from loop_ros.msg import Action, Observation, PlanStats

    now = [100.0]
    monkeypatch.setattr(demo.time, 'monotonic', lambda: now[0])
    rclpy.init()
    try:
        monitor = demo.Monitor()

        def stamped(msg, sec):
            msg.header.stamp.sec = sec
            return msg

        monitor._on_obs(stamped(Observation(), 1))
        monitor._on_obs(stamped(Observation(), 2))
        now[0] += 0.030                                   # stamp 1: action first, 30 ms
        monitor._on_action(stamped(Action(), 1))
        monitor._on_plan(stamped(PlanStats(compute_time_ms=25.0), 1))
        monitor._on_plan(stamped(PlanStats(compute_time_ms=10.0), 2))   # stats first
        now[0] += 0.020                                   # stamp 2: 50 ms
        monitor._on_action(stamped(Action(), 2))
        now[0] += 0.100
        monitor._on_action(stamped(Action(), 2))          # the same state answered again
        assert monitor.latency_ms == pytest.approx([30.0, 50.0])
        assert sorted(monitor.overhead_ms) == pytest.approx([5.0, 40.0])
        monitor.node.destroy_node()
    finally:
        rclpy.shutdown()
