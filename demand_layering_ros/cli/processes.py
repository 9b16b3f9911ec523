# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Child processes started in a session of their own, stopped as a terminal stops them."""

from __future__ import annotations

import os
from pathlib import Path
import signal
import subprocess
import time


def stop(proc: subprocess.Popen, grace_s: float = 20.0) -> None:
    """SIGINT to the process group, then SIGKILL if it has not ended within ``grace_s``.

    Returns once no process of the group runs: a child may outlive the leader (``dd`` ends
    only after the direct read it is in; the bench's test once found it still there).
    """
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    end = time.monotonic() + grace_s
    while _running(proc.pid):
        if time.monotonic() > end:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                return   # the last of them ended meanwhile
            end = float('inf')
        time.sleep(0.01)


def _running(group: int) -> bool:
    """Whether a process of the group runs (zombies, waiting to be reaped, do not count)."""
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try:
            state, _ppid, pgrp = stat.read_text().rsplit(')', 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue   # ended meanwhile
        if int(pgrp) == group and state != 'Z':
            return True
    return False
