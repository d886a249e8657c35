"""LOOP on the simulated RC car: sim bridge(s), ARC planner(s) and one learner.

    ros2 launch loop_ros rccar.launch.py robots:=2 real_time_factor:=2.0

The nodes, arguments, parameters and remappings come from ``loop_ros.graph`` (graph ``rccar``),
the same description the package's own launcher uses in pip venvs
(``python -m loop_ros.launcher rccar``); ``ros2 launch loop_ros rccar.launch.py --show-args``
lists the arguments.
"""
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.actions import OpaqueFunction
from launch.actions import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from loop_ros import graph

GRAPH = 'rccar'


def node_actions(context, *args, **kwargs):
    """Resolve the declared arguments and build one launch_ros Node per graph NodeSpec."""
    description = graph.get_graph(GRAPH)
    given = {a.name: LaunchConfiguration(a.name).perform(context)
             for a in description.arguments}
    specs = description.nodes(given, get_package_share_directory(graph.PACKAGE))
    return [
        Node(package=s.package, executable=s.executable, name=s.name, namespace=s.namespace,
             parameters=[*s.params_files, dict(s.parameters)], remappings=list(s.remappings),
             ros_arguments=['--log-level', s.log_level], respawn=s.respawn,
             respawn_delay=s.respawn_delay_s, output='screen',
             on_exit=Shutdown(reason=f'required node {s.label} exited') if s.required else None)
        for s in specs
    ]


def generate_launch_description():
    """One DeclareLaunchArgument per graph argument, then the nodes (resolved at launch)."""
    description = graph.get_graph(GRAPH)
    return LaunchDescription([
        *(DeclareLaunchArgument(a.name, default_value=a.default, description=a.description,
                                choices=list(a.choices) or None)
          for a in description.arguments),
        OpaqueFunction(function=node_actions),
    ])
