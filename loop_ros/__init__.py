"""loop_ros: LOOP (Learning Off-Policy with Online Planning) as a ROS 2 package.

The Python sources and the generated ROS 2 interfaces (``loop_ros.msg``) form one package.
``extend_path`` makes ``loop_ros`` span every ``loop_ros/`` directory on ``sys.path``, so a
source checkout that shadows the installed package (cwd = repo root) still finds the generated
messages in site-packages or a colcon install prefix. Keep this file light: no eager imports.
"""
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

__version__ = '0.1.0'
