"""Offline LOOP (paper sec. 4.3): datasets, offline training and evaluation, without ROS.

* :mod:`loop_ros.offline.dataset`: D4RL-style datasets made by training SAC (``loop-ros dataset``);
* :mod:`loop_ros.offline.training`: CRR and the ensemble from a Transition bag
  (``loop-ros train-offline``);
* :mod:`loop_ros.offline.evaluation`: the base policy against LOOP on it
  (``loop-ros eval-offline``), in the shape of the paper's Table 1.
"""
