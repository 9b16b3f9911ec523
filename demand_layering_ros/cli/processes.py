# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Child processes started in a session of their own, stopped as a terminal stops them."""

from __future__ import annotations

import os
from pathlib import Path
import signal
import subprocess
import time


KILLED_S = 10.0   # after SIGKILL: what still runs is in uninterruptible sleep (a stuck read)


def stop(proc: subprocess.Popen, grace_s: float = 20.0, killed_s: float = KILLED_S) -> None:
    """SIGINT to the process group, then SIGKILL to what still runs after ``grace_s``.

    Returns once no process of the group runs: a child may outlive the leader (``dd`` ends
    only after the direct read it is in; the bench's test once found it still there). A process
    still running ``killed_s`` after SIGKILL is in uninterruptible sleep (a read on a disk that
    does not answer) and ends only when that read does: TimeoutError says so, rather than a
    test or the demo waiting for it without end.
    """
    if proc.poll() is None or _running(proc.pid):
        _signal(proc.pid, signal.SIGINT)
    end, killed = time.monotonic() + grace_s, False
    while proc.poll() is None or _running(proc.pid):
        if time.monotonic() > end:
            if killed:
                raise TimeoutError(f'process group {proc.pid} still runs {killed_s:g} s after '
                                   'SIGKILL: a process of it is in uninterruptible sleep (a read '
                                   'on a disk that does not answer?)')
            _signal(proc.pid, signal.SIGKILL)
            end, killed = time.monotonic() + killed_s, True
        time.sleep(0.01)


def _signal(group: int, sig: int) -> None:
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        pass   # the last of them ended meanwhile


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
