# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Work beside inference (planning, the debug image) that must not slow it down.

Inference runs in torch's kernels, but it comes back to Python between modules and at every
unit's hook, and takes the GIL each time. A thread busy in Python meanwhile (the planner
simulates dozens of configurations a plan) keeps the GIL for up to the switch interval (5 ms by
default) at each of those returns, and on a small machine takes a core as well. Measured on
this 2-core VM (fasterrcnn_mobilenet_v3_large_320_fpn at 29.8 MiB, a thread planning without
pause): frames of 97-109 ms alone took 865-1169 ms beside it; 162-230 ms with the planning
thread at the lowest priority; 119-123 ms with that and a 1 ms switch interval, a plan then
taking about 150 ms instead of 45. In `make demo` one plan (98-199 ms) made the frame beside it
2.3x slower, and a deadline miss the tuner took for a slow plan.
"""

from __future__ import annotations

import os
import sys
import threading

BACKGROUND_NICE = 19        # the lowest CPU priority (Linux nice value)
SWITCH_INTERVAL_S = 0.001   # a thread waiting for the GIL gets it after at most this


def lower_priority() -> None:
    """Run the calling thread at the lowest CPU priority (on Linux each thread has its own)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
    except (AttributeError, OSError):
        pass   # not Linux, or not allowed: the thread keeps the process's priority


def switch_often() -> None:
    """A thread waiting for the GIL gets it after ``SWITCH_INTERVAL_S`` (process-wide; or less)."""
    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
