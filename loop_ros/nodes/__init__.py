"""Thin rclpy nodes, one ``main()`` each: ``sim_bridge_node``, ``planner_node``, ``learner_node``.

Nodes hold no math: they map parameters to config dataclasses (``loop_ros.ros.params``), convert
messages (``loop_ros.ros.conversions``), call one core method and publish.
"""
