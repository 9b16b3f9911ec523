# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Child processes started in a session of their own, stopped as a terminal stops them."""

from __future__ import annotations

import os
import signal
import subprocess


def stop(proc: subprocess.Popen, grace_s: float = 20.0) -> None:
    """SIGINT to the process group, then SIGKILL if it has not ended within ``grace_s``."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
