"""ROS-free simulators of loop_ros, behind the gymnasium API.

Importing this package registers the gymnasium ids and their planner tasks
(:mod:`loop_ros.core.tasks`); registering again is a no-op:

* ``loop_ros/RCCarCircle-v0``, ``loop_ros/RCCarDrift-v0``: the RC car of the LOOP paper
  (:mod:`loop_ros.sim.rc_car`, vehicle model in :mod:`loop_ros.sim.rc_car_dynamics`, pictures in
  :mod:`loop_ros.sim.render`), and ``loop_ros/RCCarCircleXY-v0``, ``loop_ros/RCCarDriftXY-v0``,
  which also observe the car's position (keep-out zones need it);
* the safety-navigation environments of :mod:`loop_ros.sim.safety_nav`.

Nothing here imports ROS; see ``docs/simulators.md``.
"""
from __future__ import annotations

from loop_ros.sim import rc_car, safety_nav

rc_car.register()
safety_nav.register()
