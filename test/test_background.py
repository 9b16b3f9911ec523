# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Work beside inference runs at the lowest priority; inference gets the GIL back soon."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from demand_layering_ros.realtime.background import (BACKGROUND_NICE, lower_priority,
                                                     SWITCH_INTERVAL_S, switch_often)
from demand_layering_ros.realtime.settings import Settings
from demand_layering_ros.realtime.tuning import TuningLoop


def nice_of(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


def test_only_the_calling_thread_is_lowered():
    seen = {}

    def work() -> None:
        lower_priority()
        seen['tid'] = threading.get_native_id()
        seen['nice'] = nice_of(seen['tid'])
    before = nice_of(threading.get_native_id())
    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen['nice'] == BACKGROUND_NICE
    assert nice_of(threading.get_native_id()) == before


def test_the_planning_thread_runs_at_the_lowest_priority():
    infos: list[str] = []
    loop = TuningLoop(infos.append, lambda plan: True)
    loop.start(lambda: Settings())
    try:
        tid = loop._thread.native_id
        for _ in range(200):   # the thread lowers itself as it starts
            if nice_of(tid) == BACKGROUND_NICE:
                break
            threading.Event().wait(0.01)
        assert nice_of(tid) == BACKGROUND_NICE
    finally:
        loop.stop()


def test_the_switch_interval_is_shortened_never_lengthened():
    old = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        switch_often()
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
        sys.setswitchinterval(0.0002)
        switch_often()
        assert sys.getswitchinterval() == pytest.approx(0.0002, abs=2e-6)
    finally:
        sys.setswitchinterval(old)
