# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The frame runner without ROS: snapshots, deadlines, clocks, health window, threads, split."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from demand_layering_ros.engine.errors import InferenceAborted, StoreCorruptError
from demand_layering_ros.perception.detections import Detection
from demand_layering_ros.perception.errors import ImageError
from demand_layering_ros.realtime import (DeadlinePolicy, DeadlineReference, Frame, FrameRunner,
                                          Health, Level, Settings)
from demand_layering_ros.realtime.runner import describe

S = 1_000_000_000
RGB = np.zeros((4, 4, 3), np.uint8)


class FakeClock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def ns(self) -> int:
        return int(self.t * S)


class FakeDetector:
    """Records what it was asked; fails or aborts on request."""

    predicted_s = 0.05

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.fail: Exception | None = None
        self.on_detect = None

    def detect(self, rgb, **kw):
        self.calls.append(kw)
        if self.on_detect is not None:
            self.on_detect(kw)
        if self.fail is not None:
            raise self.fail
        return [Detection(1, 'person', 0.9, (0, 0, 2, 2))]

    def remaining_s(self) -> float:
        return 0.0

    def apply_plan(self, plan):
        self.plan = plan


class Log:
    def __init__(self) -> None:
        self.warnings: list[tuple[str, str]] = []
        self.infos: list[str] = []

    def warn(self, kind: str, text: str) -> None:
        self.warnings.append((kind, text))

    def info(self, text: str) -> None:
        self.infos.append(text)


def make(settings: Settings = Settings(), **kw):
    clock = FakeClock()
    published: list = []
    log = Log()
    runner = FrameRunner(convert=kw.pop('convert', lambda m, s: RGB),
                         publish=lambda m, d: published.append((m, d)), clock_ns=clock.ns,
                         reporter=log, settings=settings, monotonic=clock, **kw)
    det = FakeDetector()
    runner.attach(det, None)
    return runner, det, clock, published, log


def frame(clock: FakeClock, msg: str = 'm', age_s: float = 0.0, stamp_ns: int | None = None):
    now = clock.ns()
    return Frame(msg, now - int(age_s * S) if stamp_ns is None else stamp_ns, now,
                 time.perf_counter())


def test_one_frame_is_processed_with_one_snapshot_even_if_settings_change_meanwhile():
    runner, det, clock, published, _ = make(Settings(score_threshold=0.3, max_detections=7))

    def change_mid_frame(_kw):  # another thread applies a multi-parameter update mid-frame
        runner.update(runner.settings.with_(score_threshold=0.9, max_detections=1))
    det.on_detect = change_mid_frame
    assert runner.process(frame(clock)) == 'processed'
    assert det.calls[0]['score_threshold'] == 0.3 and det.calls[0]['max_detections'] == 7
    det.on_detect = None
    runner.process(frame(clock))
    assert det.calls[1]['score_threshold'] == 0.9 and det.calls[1]['max_detections'] == 1
    assert len(published) == 2


def test_latency_is_split_into_stages():
    runner, _det, clock, _pub, _ = make()
    runner.process(Frame('m', clock.ns() - 30_000_000, clock.ns(), time.perf_counter() - 0.02))
    snap = runner.stats.snapshot(clock.ns())
    for stage in ('transport', 'queue', 'convert', 'inference', 'publish', 'convert_publish',
                  'latency'):
        assert f'{stage}_ms_p50' in snap and f'{stage}_ms_p99' in snap, stage
    assert snap['transport_ms_p50'] == pytest.approx(30.0)
    assert snap['queue_ms_p50'] >= 20.0


def test_stale_frames_are_dropped_by_stamp_and_kept_by_arrival():
    runner, det, clock, published, log = make(Settings(deadline_ms=500.0))
    hour_ago = frame(clock, age_s=3600.0)
    assert runner.process(hour_ago) == 'dropped_stale'
    level, message = runner.health.assess()
    assert level == Level.WARN and '3600.0 s behind the node clock' in message
    assert 'deadline_reference: arrival' in message
    assert log.warnings[0][0] == 'clock' and '3600.0 s behind' in log.warnings[0][1]
    runner.update(runner.settings.with_(deadline_reference=DeadlineReference.ARRIVAL))
    assert runner.process(frame(clock, age_s=3600.0)) == 'processed'
    assert published and 'transport_ms_p50' not in runner.stats.snapshot(clock.ns())


def test_unset_stamps_are_reported_whatever_the_reference():
    runner, _det, clock, _pub, log = make(Settings(deadline_reference=DeadlineReference.ARRIVAL))
    assert runner.process(frame(clock, stamp_ns=0)) == 'processed'
    assert any(k == 'unset_stamp' and 'unset' in t for k, t in log.warnings)
    assert runner.health.assess()[0] == Level.WARN


def test_stamps_from_the_future_are_named():
    runner, _det, clock, _pub, _log = make()
    runner.process(frame(clock, age_s=-7.0))
    assert '7.0 s ahead of the node clock' in runner.health.assess()[1]


def test_failing_frames_are_error_with_the_last_error_and_clear_after_the_window():
    runner, det, clock, _pub, log = make()
    det.fail = StoreCorruptError("unit 'backbone.features.3' does not match its checksum")
    for _ in range(3):
        assert runner.process(frame(clock)) == 'failed'
    level, message = runner.health.assess()
    assert level == Level.ERROR
    assert message.startswith('3 of 3 frames failed in the last 10 s: StoreCorruptError: unit '
                              "'backbone.features.3'")
    det.fail = None
    clock.t += 5.0
    runner.process(frame(clock))
    assert runner.health.assess()[0] == Level.ERROR  # the failures are still in the window
    clock.t += 6.0
    runner.process(frame(clock))
    assert runner.health.assess() == (Level.OK, 'ok')
    assert runner.stats.counts['failed'] == 3  # counters stay cumulative


def test_warn_names_which_problem_and_clears():
    runner, _det, clock, _pub, _ = make(convert=lambda m, s: (_ for _ in ()).throw(
        ImageError('encoding 32FC1 not supported')))
    runner.process(frame(clock))
    level, message = runner.health.assess()
    assert level == Level.WARN and '1 frames rejected (encoding 32FC1 not supported)' in message
    clock.t += 11.0
    assert runner.health.assess()[0] == Level.OK


def test_abort_policy_and_stop_cancel_through_the_abort_predicate():
    runner, det, clock, _pub, _ = make(Settings(deadline_policy=DeadlinePolicy.ABORT,
                                                deadline_ms=100.0))

    def late(kw):
        clock.t += 1.0  # the clock passes the deadline during inference
        if kw['abort']():
            raise InferenceAborted('aborted')
    det.on_detect = late
    assert runner.process(frame(clock)) == 'aborted'

    def stopping(kw):
        runner._stopping.set()
        if kw['abort']():
            raise InferenceAborted('stopping')
    runner.update(Settings(deadline_policy=DeadlinePolicy.COMPLETE))
    det.on_detect = stopping
    assert runner.process(frame(clock)) == 'stopped'  # shutdown is not a failure
    assert runner.stats.counts['failed'] == 0 and runner.stats.counts['aborted'] == 1


def test_auto_tune_plans_before_the_next_frame_and_on_drift():
    runner, det, clock, _pub, log = make()
    plans = []

    class Tuner:
        class state:
            plan = None
            ratio = 1.0
            met = True
            target_s = 0.0

        def plan(self, target_s, cap):
            plans.append((target_s, cap))
            Tuner.state.plan = 'p'
            Tuner.state.target_s = target_s
            return type('Plan', (), dict(mode='sequential', budget_bytes=2 ** 20,
                                         resident=frozenset()))()

        def observe(self, measured_s):
            return True  # drift every frame

        def predicted_s(self):
            return 0.2
    runner.attach(det, Tuner())
    runner.update(Settings(auto_tune=True, deadline_ms=1000.0, budget_cap_bytes=5 * 2 ** 20))
    runner.process(frame(clock))
    assert plans == [(pytest.approx(0.9), 5 * 2 ** 20)]  # 10% of the deadline kept for the rest
    assert det.plan.mode == 'sequential' and runner.predicted_s == 0.2
    runner.process(frame(clock))  # the drift seen on the first frame re-plans the second
    assert len(plans) == 2 and 'auto_tune: sequential' in log.infos[0]


def test_debug_images_are_drawn_on_their_own_thread_without_delaying_inference():
    drawn: list[str] = []
    release = threading.Event()

    def slow_debug(msg, rgb, dets):
        drawn.append(threading.current_thread().name)
        release.wait(5)  # a slow drawing must not hold the next frame back
    runner, det, clock, published, _ = make(debug=slow_debug, want_debug=lambda: True)
    inference_threads: list[str] = []
    det.on_detect = lambda _kw: inference_threads.append(threading.current_thread().name)
    runner.start()
    try:
        for i in range(3):
            runner.offer(f'm{i}', clock.ns(), clock.ns())
            deadline = time.monotonic() + 5
            while len(published) <= i and time.monotonic() < deadline:
                time.sleep(0.01)
        assert len(published) == 3  # all three inferred while the first drawing still waits
        assert drawn and drawn[0] == 'dl-debug' and set(inference_threads) == {'dl-infer'}
    finally:
        release.set()
        runner.stop()


def test_a_newer_frame_supersedes_a_waiting_one():
    runner, _det, clock, _pub, _ = make()
    runner.offer('a', clock.ns(), clock.ns())
    runner.offer('b', clock.ns(), clock.ns())
    assert runner.stats.counts['superseded'] == 1 and runner.stats.counts['received'] == 2
    assert runner.slot.take(timeout=0).message == 'b'


def test_errors_say_what_failed_first():
    err = RuntimeError('Weights only load failed.\nIn PyTorch 2.6, we changed ...\n'
                       'setting weights_only to False will likely succeed')
    assert describe(err) == 'RuntimeError: Weights only load failed.'


def test_health_window_is_ok_when_clean():
    clock = FakeClock()
    health = Health(clock=clock)
    health.note('processed')
    assert health.assess() == (Level.OK, 'ok')
