# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Test-wide settings: DDS stays on loopback, in a domain of this run's own."""

import os
import random

# Before anything imports rclpy: no discovery traffic leaves the machine,
# and parallel runs don't meet.
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('FASTDDS_BUILTIN_TRANSPORTS', 'SHM')
if 'DL_TEST_DOMAIN_ID' not in os.environ:
    os.environ['DL_TEST_DOMAIN_ID'] = str(random.Random(os.getpid()).randint(101, 215))
os.environ['ROS_DOMAIN_ID'] = os.environ['DL_TEST_DOMAIN_ID']
