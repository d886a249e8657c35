"""LOOP on a gymnasium MuJoCo task: sim bridge(s), ARC planner(s) and one learner.

    ros2 launch loop_ros mujoco.launch.py env:=HalfCheetah-v5 real_time_factor:=0.5

The nodes, arguments, parameters and remappings come from ``loop_ros.graph`` (graph ``mujoco``),
the same description the package's own launcher uses in pip venvs
(``python -m loop_ros.launcher mujoco``); ``ros2 launch loop_ros mujoco.launch.py --show-args``
lists the arguments.
"""
from loop_ros.ros.launch_description import graph_launch_description


def generate_launch_description():
    """The ``mujoco`` graph of loop_ros.graph as launch_ros actions."""
    return graph_launch_description('mujoco')
