# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Demand-layered object detection for ROS 2: weights streamed from the SSD within a budget."""
