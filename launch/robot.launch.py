"""LOOP on a real base: robot adapter (Odometry in, velocity commands out), planner, learner.

    ros2 launch loop_ros robot.launch.py odom_topic:=/odom cmd_topic:=/cmd_vel

The nodes, arguments, parameters and remappings come from ``loop_ros.graph`` (graph ``robot``),
the same description the package's own launcher uses in pip venvs
(``loop-ros launch robot``); ``ros2 launch loop_ros robot.launch.py --show-args`` lists the
arguments, and docs/integration.md walks through them.
"""
from loop_ros.ros.launch_description import graph_launch_description


def generate_launch_description():
    """The ``robot`` graph of loop_ros.graph as launch_ros actions."""
    return graph_launch_description('robot')
