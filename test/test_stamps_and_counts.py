# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Clocks a deadline cannot be judged on, and every frame counted in exactly one outcome."""

from __future__ import annotations

import threading
import time

from demand_layering_ros.engine.errors import InferenceAborted
from demand_layering_ros.realtime import DeadlinePolicy, Level, Settings
from demand_layering_ros.realtime.stats import FRAME_ENDS
from test_runner import frame, make, S


def ended(counts) -> float:
    return sum(counts[k] for k in FRAME_ENDS)


def test_frames_in_flight_or_waiting_when_the_runner_stops_are_counted_stopped():
    runner, det, clock, published, _ = make(Settings(deadline_policy=DeadlinePolicy.COMPLETE))
    inferring = threading.Event()

    def slow_model(kw):  # runs until cancelled between two units
        inferring.set()
        while not kw['abort']():
            time.sleep(0.005)
        raise InferenceAborted('stopping')
    det.on_detect = slow_model
    runner.start()
    try:
        runner.offer('in flight', clock.ns(), clock.ns())
        assert inferring.wait(5)
        runner.offer('waiting', clock.ns(), clock.ns())
    finally:
        runner.stop()
    counts = runner.stats.counts
    assert counts['stopped'] == 2 and counts['received'] == 2 == ended(counts)
    assert runner.stats.snapshot(clock.ns())['stopped'] == 2
    runner.offer('while stopped', clock.ns(), clock.ns())
    det.on_detect = None
    runner.start()   # a frame from before the start is stale: dropped, and counted
    runner.stop()
    assert counts['stopped'] == 3 and counts['received'] == 3 == ended(counts)
    assert not published
    runner.detach()   # (cleanup) no detector to run a frame
    assert runner.process(frame(clock)) == 'stopped'
    assert counts['stopped'] == 4 and runner.health.assess()[0] == Level.OK


def test_frames_the_camera_sent_while_the_runner_was_stopped_are_not_lost():
    runner, _det, clock, _pub, _ = make()
    period = S // 10   # a 10 Hz camera
    runner.start()
    try:
        for k in range(20):
            runner.offer('m', 10 * S + k * period, clock.ns())
    finally:
        runner.stop()   # deactivated for 1.5 s while the camera goes on
    runner.start()
    try:
        runner.offer('m', 10 * S + 35 * period, clock.ns())
        assert runner.stats.counts['lost'] == 0
        runner.offer('m', 10 * S + 36 * period, clock.ns())
        runner.offer('m', 10 * S + 39 * period, clock.ns())   # the period is still known
        assert runner.stats.counts['lost'] == 2
    finally:
        runner.stop()
