# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Test-wide settings: DDS stays on loopback, in a domain of this run's own, sized for frames."""

import os
import random

from demand_layering_ros.ros import dds_profile

# Before anything imports rclpy: no discovery traffic leaves the machine,
# and parallel runs don't meet.
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('FASTDDS_BUILTIN_TRANSPORTS', 'SHM')
if 'DL_TEST_DOMAIN_ID' not in os.environ:
    os.environ['DL_TEST_DOMAIN_ID'] = str(random.Random(os.getpid()).randint(101, 215))
os.environ['ROS_DOMAIN_ID'] = os.environ['DL_TEST_DOMAIN_ID']
# The package's Fast DDS profile, as the launch file applies it: camera-sized best-effort frames
# need a larger shared-memory segment in the publishing process (this one, in the node tests).
dds_profile.apply()
