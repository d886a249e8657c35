"""ROS-free input/output: rosbag2 bags through the ``rosbags`` library (no rclpy).

:mod:`loop_ros.io.bags` reads and writes bags of ``loop_ros/msg/Transition`` (both rosbag2
storages, sqlite3 and mcap) and reports on any bag; the CLI's ``loop-ros bag`` verbs, the
learner's ``replay_bags`` and the recorder node build on it. ``test/test_layering.py`` keeps this
package free of ROS imports.
"""
from loop_ros.io.bags import bag_info
from loop_ros.io.bags import BagError
from loop_ros.io.bags import BagInfo
from loop_ros.io.bags import DEFAULT_TRANSITION_TOPIC
from loop_ros.io.bags import read_metadata
from loop_ros.io.bags import read_transitions
from loop_ros.io.bags import TopicSummary
from loop_ros.io.bags import TRANSITION_TYPE
from loop_ros.io.bags import TransitionData
from loop_ros.io.bags import write_transitions

__all__ = [
    'BagError', 'BagInfo', 'DEFAULT_TRANSITION_TOPIC', 'TRANSITION_TYPE', 'TopicSummary',
    'TransitionData', 'bag_info', 'read_metadata', 'read_transitions', 'write_transitions',
]
