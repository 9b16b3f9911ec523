# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Real-time layer: the frame loop, slot, deadlines, settings, health (plain Python, no ROS)."""

from .deadline import Deadline, DeadlinePolicy, DeadlineReference, POLICIES, REFERENCES
from .frame_slot import FrameSlot
from .health import Health, Level
from .runner import Frame, FrameRunner
from .settings import Settings
from .stamps import check_stamp, StampCheck
from .stats import FrameStats, OUTCOMES, STAGES

__all__ = ['Deadline', 'DeadlinePolicy', 'DeadlineReference', 'Frame', 'FrameRunner',
           'FrameSlot', 'FrameStats', 'Health', 'Level', 'OUTCOMES', 'POLICIES', 'REFERENCES',
           'STAGES', 'Settings', 'StampCheck', 'check_stamp']
