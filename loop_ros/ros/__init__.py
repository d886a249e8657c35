"""Shared ROS 2 adapters of the nodes: parameters, QoS profiles, message conversions, time.

Everything here may import rclpy and message packages; ``loop_ros.core``, ``loop_ros.sim`` and
``loop_ros.graph`` never import this package (``test/test_layering.py``).
"""
