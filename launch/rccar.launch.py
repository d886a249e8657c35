"""LOOP on the simulated RC car: sim bridge(s), ARC planner(s) and one learner.

    ros2 launch loop_ros rccar.launch.py robots:=2 real_time_factor:=2.0

The nodes, arguments, parameters and remappings come from ``loop_ros.graph`` (graph ``rccar``),
the same description the package's own launcher uses in pip venvs
(``python -m loop_ros.launcher rccar``); ``ros2 launch loop_ros rccar.launch.py --show-args``
lists the arguments.
"""
from loop_ros.ros.launch_description import graph_launch_description


def generate_launch_description():
    """The ``rccar`` graph of loop_ros.graph as launch_ros actions."""
    return graph_launch_description('rccar')
