# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Clocks a deadline cannot be judged on, and every frame counted in exactly one outcome."""

from __future__ import annotations

import math
import threading
import time

from demand_layering_ros.engine.errors import InferenceAborted
from demand_layering_ros.realtime import (DeadlinePolicy, DeadlineReference, Frame, Level,
                                          Settings)
from demand_layering_ros.realtime.stats import FRAME_ENDS
from test_runner import frame, make, S

WALL_NS = 1_700_000_000 * S   # a live camera stamps wall time
SIM_TIME_WITHOUT_CLOCK = 0.0  # the node clock with use_sim_time before any /clock


def test_a_node_clock_at_zero_is_a_warning_and_no_deadline_or_latency_is_judged():
    reports = []
    runner, det, clock, published, log = make(Settings(deadline_ms=500.0,
                                                       deadline_policy=DeadlinePolicy.ABORT),
                                              on_frame=reports.append)
    clock.t = SIM_TIME_WITHOUT_CLOCK
    for reference in DeadlineReference:
        runner.update(runner.settings.with_(deadline_reference=reference))
        assert runner.process(Frame('m', WALL_NS, clock.ns(), time.perf_counter())) == 'processed'
    assert len(published) == 2  # the frames still get their detections
    snap = runner.stats.snapshot(clock.ns())
    assert 'latency_ms_p50' not in snap and 'transport_ms_p50' not in snap
    assert snap['deadline_missed'] == 0
    assert all(math.isnan(r.latency_ms) and not r.missed for r in reports)
    level, message = runner.health.assess()
    assert level == Level.WARN
    assert 'use_sim_time is set but no /clock has been received' in message
    assert 'no deadline can be judged' in message
    assert any(kind == 'clock' and 'no /clock' in text for kind, text in log.warnings)


def test_a_clock_set_back_during_a_frame_records_no_latency():
    # a bag that loops with /clock sets the node clock back: in make demo such frames
    # recorded latencies of -2.8 s
    reports = []
    runner, det, clock, published, _ = make(Settings(deadline_ms=500.0),
                                            on_frame=reports.append)
    clock.t = 100.0

    def loop_starts_again(_kw):
        clock.t = 97.0
    det.on_detect = loop_starts_again
    assert runner.process(Frame('m', clock.ns(), clock.ns(), time.perf_counter())) == 'processed'
    assert 'latency_ms_p50' not in runner.stats.snapshot(clock.ns())
    assert math.isnan(reports[-1].latency_ms)


def test_a_frame_that_arrived_before_the_first_clock_is_not_judged_against_it():
    runner, det, clock, published, _ = make(Settings(
        deadline_ms=500.0, deadline_reference=DeadlineReference.ARRIVAL,
        deadline_policy=DeadlinePolicy.COMPLETE))
    clock.t = SIM_TIME_WITHOUT_CLOCK
    arrived = Frame('m', 0, clock.ns(), time.perf_counter())

    def clock_starts(_kw):  # /clock starts during the inference, at a bag's time
        clock.t = 1000.0
    det.on_detect = clock_starts
    assert runner.process(arrived) == 'processed'
    snap = runner.stats.snapshot(clock.ns())
    assert snap['deadline_missed'] == 0 and 'latency_ms_p50' not in snap
    clock.t = SIM_TIME_WITHOUT_CLOCK   # taken only once the clock runs: not dropped either
    waiting = Frame('m', 0, clock.ns(), time.perf_counter())
    clock.t = 1000.0
    det.on_detect = None
    runner.update(runner.settings.with_(deadline_policy=DeadlinePolicy.SKIP_STALE))
    assert runner.process(waiting) == 'processed'


def test_stamps_from_the_future_are_never_late_and_their_latency_is_not_recorded():
    runner, det, clock, _pub, log = make(Settings(deadline_ms=100.0,
                                                  deadline_policy=DeadlinePolicy.ABORT))

    def slow(kw):  # a second of inference: late by any deadline counted from now
        clock.t += 1.0
        if kw['abort']():
            raise InferenceAborted('late')
    det.on_detect = slow
    assert runner.process(frame(clock, age_s=-3600.0)) == 'processed'
    snap = runner.stats.snapshot(clock.ns())
    assert snap['deadline_missed'] == 0 and snap['aborted'] == 0
    assert 'latency_ms_p50' not in snap and 'transport_ms_p50' not in snap
    level, message = runner.health.assess()
    assert level == Level.WARN and '3600.0 s ahead of the node clock' in message
    assert 'look late' not in message
    assert 'no frame is dropped, aborted or counted late' in message
    assert 'latency would be negative' in message and 'deadline_reference: arrival' in message
    # from arrival the same frames are timed as usual (the stamp only misses the transport)
    runner.update(runner.settings.with_(deadline_reference=DeadlineReference.ARRIVAL))
    det.on_detect = None
    assert runner.process(frame(clock, age_s=-3600.0)) == 'processed'
    snap = runner.stats.snapshot(clock.ns())
    assert 'latency_ms_p50' in snap and 'transport_ms_p50' not in snap


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
