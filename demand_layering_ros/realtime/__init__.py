# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Real-time layer: the newest-frame slot, deadlines, statistics (plain Python, injected clock)."""

from .deadline import Deadline, POLICIES
from .frame_slot import FrameSlot
from .stats import FrameStats, OUTCOMES

__all__ = ['Deadline', 'FrameSlot', 'FrameStats', 'OUTCOMES', 'POLICIES']
