# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Stopping what a command started: the whole process group, not only its leader."""

import subprocess
import time

from demand_layering_ros.cli.processes import _running, stop


def test_a_child_that_outlives_its_leader_is_stopped_too():
    # the child ignores SIGINT (as dd finishing a direct read does not end at once); bash,
    # its leader, ends on it
    proc = subprocess.Popen(['bash', '-c', '(trap "" INT; exec sleep 30) & wait'],
                            start_new_session=True)
    time.sleep(0.5)
    assert _running(proc.pid)
    t0 = time.monotonic()
    stop(proc, grace_s=1.0)
    assert not _running(proc.pid)
    assert time.monotonic() - t0 < 5


def test_a_group_that_outlives_sigkill_is_reported_not_waited_for(monkeypatch):
    # a process in uninterruptible sleep outlives SIGKILL until its read ends: here the check
    # of the group is made to say so for a group that has long ended
    proc = subprocess.Popen(['true'], start_new_session=True)
    proc.wait()
    monkeypatch.setattr('demand_layering_ros.cli.processes._running', lambda group: True)
    t0 = time.monotonic()
    try:
        stop(proc, grace_s=0.2, killed_s=0.3)
    except TimeoutError as err:
        assert 'uninterruptible sleep' in str(err)
    else:
        raise AssertionError('stop() returned while the group still ran')
    assert 0.5 <= time.monotonic() - t0 < 3
