"""ROS 2 launch descriptions built from :mod:`loop_ros.graph` (used by ``launch/*.launch.py``).

Imports ``launch``/``launch_ros``, which only a ROS 2 install has (not the PyPI wheels): import
this module from launch files only. The package's own launcher (:mod:`loop_ros.launcher`) turns
the same graph description into processes where ``ros2 launch`` does not exist.
"""
from __future__ import annotations

from typing import Any

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.actions import OpaqueFunction
from launch.actions import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from loop_ros import graph


def node_actions(context: Any, graph_name: str) -> list[Node]:
    """Resolve the declared arguments and build one launch_ros Node per graph NodeSpec."""
    description = graph.get_graph(graph_name)
    given = {a.name: LaunchConfiguration(a.name).perform(context)
             for a in description.arguments}
    specs = description.nodes(given, get_package_share_directory(graph.PACKAGE))
    return [
        Node(package=s.package, executable=s.executable, name=s.name, namespace=s.namespace,
             parameters=[*s.params_files, dict(s.parameters)], remappings=list(s.remappings),
             ros_arguments=['--log-level', s.log_level], respawn=s.respawn,
             respawn_delay=s.respawn_delay_s, output='screen', additional_env=dict(s.env),
             on_exit=Shutdown(reason=f'required node {s.label} exited') if s.required else None)
        for s in specs
    ]


def graph_launch_description(graph_name: str) -> LaunchDescription:
    """One DeclareLaunchArgument per graph argument, then the nodes (resolved at launch)."""
    description = graph.get_graph(graph_name)
    return LaunchDescription([
        *(DeclareLaunchArgument(a.name, default_value=a.default, description=a.description,
                                choices=list(a.choices) or None)
          for a in description.arguments),
        OpaqueFunction(function=node_actions, args=[graph_name]),
    ])
