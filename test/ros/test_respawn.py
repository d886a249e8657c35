"""``respawn:=true``: the graph marks sim_bridge, planner and learner respawning and not required,
and the package's launcher restarts an exited node after its delay (no ROS needed)."""
from __future__ import annotations

import io
import re
import sys
import threading
import time

from loop_ros import graph
from loop_ros.graph import NodeSpec
from loop_ros.launcher import Launcher

SHARE = str(graph.__file__).rsplit('/loop_ros/', 1)[0]


def test_respawn_argument_marks_the_three_nodes() -> None:
    for name in ('rccar', 'mujoco'):
        arg = graph.get_graph(name).argument('respawn')
        assert arg.default == 'false' and arg.kind == 'bool'
    default = graph.node_specs('rccar', {'record': '/tmp/bag', 'robots': '2'}, SHARE)
    assert all(s.required and not s.respawn for s in default)
    specs = graph.node_specs('rccar', {'record': '/tmp/bag', 'robots': '2',
                                       'respawn': 'true'}, SHARE)
    by_name: dict[str, list[NodeSpec]] = {}
    for s in specs:
        by_name.setdefault(s.name, []).append(s)
    assert len(by_name['planner']) == len(by_name['sim_bridge']) == 2
    for name in ('sim_bridge', 'planner', 'learner'):
        assert all(s.respawn and not s.required and s.respawn_delay_s > 0
                   for s in by_name[name]), name
    (recorder,) = by_name['recorder']
    assert recorder.required and not recorder.respawn   # a bag is not restarted half-way


class Output(io.StringIO):
    """Thread-safe enough for the launcher's locked writes; read with getvalue()."""


def test_launcher_restarts_an_exited_respawning_node() -> None:
    crasher = NodeSpec(name='crasher', executable='sim_bridge_node', respawn=True,
                       required=False, respawn_delay_s=0.3)
    keeper = NodeSpec(name='keeper', executable='planner_node')   # required
    out = Output()
    launcher = Launcher([crasher, keeper], out=out, sigint_timeout=2.0, sigterm_timeout=2.0)
    launcher.procs[0].cmd = [sys.executable, '-c', 'import sys; sys.exit(3)']
    launcher.procs[1].cmd = [sys.executable, '-c', 'import time; time.sleep(60)']
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(launcher.run()))
    started = time.monotonic()
    thread.start()
    end = started + 30.0
    while out.getvalue().count('started crasher') < 3 and time.monotonic() < end:
        time.sleep(0.02)
    third_start = time.monotonic() - started
    launcher.request_shutdown()
    thread.join(timeout=30.0)
    text = out.getvalue()
    assert not thread.is_alive()
    assert text.count('started crasher') >= 3, text      # restarted, again and again
    assert text.count('started keeper') == 1
    assert 'required node' not in text                   # the graph kept running
    assert result == [3]                                 # the first failure's exit code
    assert third_start >= 2 * crasher.respawn_delay_s    # each restart waited its delay
    assert len(re.findall(r'crasher exited with code 3 \(failure\)', text)) >= 2


def test_launcher_does_not_restart_without_respawn() -> None:
    once = NodeSpec(name='once', executable='sim_bridge_node', required=False)
    keeper = NodeSpec(name='keeper', executable='planner_node')
    out = Output()
    launcher = Launcher([once, keeper], out=out, sigint_timeout=2.0, sigterm_timeout=2.0)
    launcher.procs[0].cmd = [sys.executable, '-c', 'import sys; sys.exit(0)']
    launcher.procs[1].cmd = [sys.executable, '-c', 'import time; time.sleep(60)']
    thread = threading.Thread(target=launcher.run)
    thread.start()
    end = time.monotonic() + 20.0
    while 'once exited with code 0' not in out.getvalue() and time.monotonic() < end:
        time.sleep(0.05)
    time.sleep(1.0)                                      # longer than any respawn delay
    launcher.request_shutdown()
    thread.join(timeout=30.0)
    assert out.getvalue().count('started once') == 1
