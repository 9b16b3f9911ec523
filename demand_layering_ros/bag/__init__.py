# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Bag tools: record and play rosbag2 bags (rosbags file format, rclpy transport), demo stream."""
