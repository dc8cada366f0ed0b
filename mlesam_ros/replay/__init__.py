"""Bag replay without ROS: the node core on a recorded bag, its topics written to a new bag.

``transport`` (the bag as a node transport), ``output`` (the partial output bag), ``scoring``
(summary and mIoU against ground truth), ``run`` (:func:`~mlesam_ros.replay.run.replay_bag`),
``commands`` (``mlesam replay``). Importing the package imports none of them, so the command
line registers ``mlesam replay`` without loading the node core.
"""
