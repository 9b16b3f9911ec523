# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The frame runner without ROS: snapshots, deadlines, clocks, health, threads, auto-tune."""

from __future__ import annotations

import threading
import time

from dataclasses import replace
from functools import partial

import numpy as np
import pytest

from demand_layering_ros.engine.calibrate import Calibrator
from demand_layering_ros.engine.errors import InferenceAborted, StoreCorruptError
from demand_layering_ros.engine.executor import Record, Visit
from demand_layering_ros.engine.plan_worker import PlanWorkerError
from demand_layering_ros.engine.planner import plan_for_deadline
from demand_layering_ros.engine.policy import Config, effective_resident, Layout, Mode
from demand_layering_ros.engine.simulate import Pipeline, simulate
from demand_layering_ros.perception.detections import Detection
from demand_layering_ros.perception.detector import EngineFigures
from demand_layering_ros.perception.errors import ImageError
from demand_layering_ros.realtime import (DeadlinePolicy, DeadlineReference, Frame, FrameRunner,
                                          Health, Level, Settings)
from demand_layering_ros.realtime.auto_tune import AutoTuner, TOLERANCE
from demand_layering_ros.realtime.runner import describe, FrameReport
from demand_layering_ros.realtime.tuning import key, searched, TuningLoop

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

    def figures(self):
        return EngineFigures('pipelined', 2 ** 20, 2 ** 19, 0)


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


def test_a_camera_whose_frames_mostly_never_arrive_is_a_warning_with_its_rate():
    runner, _det, clock, _pub, _ = make()
    period = S // 30
    # of a 30 Hz camera's frames, two in a row arrive, then every third: 8 in 20 arrive
    taken = [k for k in range(200) if k % 20 in (0, 1, 4, 7, 10, 13, 16, 19)]
    for k in taken:
        runner.offer('m', 10 * S + k * period, clock.ns())
    level, message = runner.health.assess()
    assert level == Level.WARN and 'frames the camera stamped never arrived' in message
    assert 'the camera at 30 Hz by its stamps' in message
    truth = taken[-1] + 1 - len(taken)
    assert 0.8 * truth <= runner.stats.counts['lost'] <= truth


def test_errors_say_what_failed_first():
    err = RuntimeError('Weights only load failed.\nIn PyTorch 2.6, we changed ...\n'
                       'setting weights_only to False will likely succeed')
    assert describe(err) == 'RuntimeError: Weights only load failed.'


def test_health_window_is_ok_when_clean():
    clock = FakeClock()
    health = Health(clock=clock)
    health.note('processed')
    assert health.assess() == (Level.OK, 'ok')


# -- auto-tune: a simulated machine -----------------------------------------------------------
# Eight 256 KiB units, each read in 10 ms and computed in 6 ms: I/O-bound, so memory buys speed
# (the planner's curve: 128 ms sequential in one unit's room, 92 ms streamed at the pipelined
# minimum, then 82, 72, 62, 56, 52 ... 48 ms with all eight resident). The deadlines below sit
# 5-7% above a point of it (the tuner aims its p90 at them and the machine jitters by 2%).
UNIT = 64 * 4096
MODEL = Pipeline(Layout((UNIT,) * 8, tuple(range(8)), ((),) * 8), (0.010,) * 8, (0.006,) * 8,
                 stream_bps=UNIT / 0.010)
TRANSPORT_S = 0.005   # camera stamp to the node, per frame


class Machine:
    """A detector whose frames take what this machine takes, measured as the executor would.

    The machine is the model with its compute stretched by ``speed`` (throttling, another
    process) and a 2% frame-to-frame jitter; every frame's visits reach the calibrator as the
    executor's records do. The first frame of a new configuration also reads its resident
    units, as the executor does before the pass (that time is outside the record). ``unseen``:
    the share of each frame's time spent where the record does not see it (the calibrated
    model cannot learn it; only the tuner's measured / predicted can).
    """

    def __init__(self, clock: FakeClock, calibrator: Calibrator | None, seed: int = 0) -> None:
        self.clock, self.calibrator = clock, calibrator
        self.speed = 1.0
        self.unseen = 0.0
        self.rng = np.random.default_rng(seed)
        self.config = Config(Mode.PIPELINED, MODEL.min_budget('pipelined'), frozenset())
        self.pending: Config | None = None
        self.applied: list[Config] = []

    def apply_plan(self, plan):
        self.reconfigure(Config(Mode(plan.mode), plan.budget_bytes, plan.resident))

    def reconfigure(self, config: Config) -> Config:
        self.pending = config   # applied before the next inference, as the executor does
        return config

    def remaining_s(self) -> float:
        return 0.0

    predicted_s = None

    def figures(self) -> EngineFigures:
        c = self.config
        res = effective_resident(MODEL.layout, c, MODEL.io)
        return EngineFigures(str(c.mode), c.budget_bytes, c.budget_bytes, len(res), c.resident)

    def detect(self, rgb, **kw):
        extra = 0.0
        if self.pending is not None:
            self.config, self.pending = self.pending, None
            self.applied.append(self.config)
            extra = sum(MODEL.read_s[u] for u in effective_resident(MODEL.layout, self.config,
                                                                    MODEL.io))
        c = self.config
        jitter = float(self.rng.lognormal(0.0, 0.02))
        truth = replace(MODEL, compute_s=tuple(x * self.speed * jitter for x in MODEL.compute_s))
        pred = simulate(truth, c.mode, c.budget_bytes, c.resident)
        slow = truth.compute_contention - 1.0 if c.mode == Mode.PIPELINED else 0.0
        visits, t = [], truth.prologue_s
        for k, u in enumerate(truth.visits):
            ready = t + pred.stall_s[k]
            done = ready + truth.compute_s[k] + slow * pred.overlap_s[k]
            read = truth.read_s[u] if c.mode == Mode.SEQUENTIAL else 0.0
            visits.append(Visit(u, t, ready, done, read))
            t = done
        if self.calibrator is not None:
            self.calibrator.observe(Record(c, tuple(visits), pred.bytes_read,
                                           pred.bytes_read / MODEL.stream_bps, t))
        self.clock.t += t * (1.0 + self.unseen) + extra
        return []


def tuned(deadline_ms: float, seed: int = 0):
    """A runner auto-tuning a Machine, driven frame by frame; its frame reports."""
    clock = FakeClock()
    reports: list[FrameReport] = []
    log = Log()
    runner = FrameRunner(convert=lambda m, s: RGB, publish=lambda m, d: None, clock_ns=clock.ns,
                         reporter=log, monotonic=clock, perf=clock, on_frame=reports.append)
    calibrator = Calibrator(MODEL)
    machine = Machine(clock, calibrator, seed)
    runner.attach(machine, AutoTuner(calibrator))
    runner.update(Settings(auto_tune=True, deadline_ms=deadline_ms))
    return runner, machine, clock, reports, log


def drive(runner: FrameRunner, clock: FakeClock, frames: int) -> None:
    for _ in range(frames):
        stamp = clock.ns()
        clock.t += TRANSPORT_S
        assert runner.process(Frame('m', stamp, clock.ns(), clock())) == 'processed'


def least_budget(deadline_ms: float, speed: float = 1.0) -> int:
    """The least memory the machine's own curve needs for ``deadline_ms`` end to end."""
    truth = replace(MODEL, compute_s=tuple(x * speed for x in MODEL.compute_s))
    plan, met = plan_for_deadline(truth, deadline_ms / 1e3 - TRANSPORT_S)
    assert met
    return plan.budget_bytes


def settled(reports: list[FrameReport], k: int, deadline_ms: float, speed: float = 1.0) -> None:
    """From frame k + 10 on: p90 within the deadline, the least memory (+10%), one config."""
    after = reports[k + 10:]
    p90 = float(np.quantile([r.latency_ms for r in after], 0.9))
    assert p90 <= deadline_ms, (k, p90, deadline_ms)
    budgets = {r.budget_bytes for r in after}
    assert len(budgets) == 1, f'the configuration changed after frame {k + 10}: {budgets}'
    assert budgets.pop() <= 1.1 * least_budget(deadline_ms, speed)


def test_auto_tune_meets_each_new_deadline_within_10_frames_with_the_least_memory():
    runner, machine, clock, reports, _log = tuned(106.0)   # its first plan keeps 10% aside
    drive(runner, clock, 40)
    settled(reports, 0, 106.0)
    for deadline_ms in (81.0, 64.0, 106.0, 71.0):
        k = len(reports)
        runner.update(runner.settings.with_(deadline_ms=deadline_ms))
        drive(runner, clock, 60)
        settled(reports, k, deadline_ms)
    # never oscillates: one plan per change of deadline, and one configuration each
    assert runner.tuner.state.replans <= 5 + 2
    assert len(machine.applied) <= 5 + 2


def test_auto_tune_follows_a_slower_machine_within_10_frames_and_holds():
    # The tuner notices from its last eight frames (five after a re-plan) and the calibrated
    # model, which both lag a step change: over 100 seeds of the jitter its p90 meets the
    # deadline again by frame k + 2 in every case and every seed ends at the least memory; the
    # configuration is final by k + 10 in 93 and by k + 20 in all (in the other 7 the first
    # re-plan keeps the configuration, which the calibrated model, still rising, says is just
    # fast enough: 20% more compute makes it 6% slower here). This test runs seed 0.
    runner, machine, clock, reports, _log = tuned(71.0)
    drive(runner, clock, 40)
    settled(reports, 0, 71.0)
    before = reports[-1].budget_bytes
    k = len(reports)
    machine.speed = 1.2   # compute 20% slower from now on
    drive(runner, clock, 80)
    settled(reports, k, 71.0, speed=1.2)
    assert reports[-1].budget_bytes > before   # it bought the speed with memory


def test_frames_before_auto_tune_teach_its_first_plan_how_far_the_model_is_off():
    # the machine spends 15% more than the calibrated model can see; a tuner that learned
    # nothing aims its first plan at the model (81 ms: the 72 ms point) and misses by 10%
    runner, machine, clock, reports, _log = tuned(81.0)
    runner.update(runner.settings.with_(auto_tune=False))
    machine.unseen = 0.15
    resident = Config(Mode.PIPELINED, 6 * UNIT, frozenset({0, 1, 2}))
    machine.reconfigure(resident)   # its first frame reads three units in: 30 ms not learned
    drive(runner, clock, 12)
    assert runner.tuner.ratio('pipelined', 1.0) < 1.2
    runner.update(runner.settings.with_(auto_tune=True))
    k = len(reports)
    drive(runner, clock, 40)
    assert runner.tuner.state.replans == 1   # its first plan holds: no re-plan for speed
    assert runner.tuner.state.ratio == pytest.approx(1.15, abs=0.04)
    after = [r.latency_ms for r in reports[k + 1:]]   # from the plan's second frame
    assert float(np.quantile(after, 0.9)) <= 81.0 and len({r.budget_bytes
                                                          for r in reports[k + 1:]}) == 1


def test_a_plan_finished_after_auto_tune_went_off_is_not_applied():
    runner, machine, clock, reports, _log = tuned(80.0)
    s = runner.settings
    manual = Config(Mode.SEQUENTIAL, MODEL.min_budget('sequential'), frozenset())
    # the parameters' configuration is requested with the switch, in one step
    assert runner.update(s.with_(auto_tune=False), partial(machine.reconfigure, manual)) == manual
    runner.tuning.plan_now(s)   # a plan that was under way finishes now: not applied
    drive(runner, clock, 2)
    assert machine.applied == [manual] and runner.tuning.in_force is None
    assert reports[-1].auto_tune is False and reports[-1].mode == 'sequential'
    runner.update(s)   # on again: planned before the next frame
    drive(runner, clock, 1)
    assert len(machine.applied) == 2 and reports[-1].auto_tune
    assert reports[-1].mode == 'pipelined'


def test_frame_reports_carry_the_configuration_and_the_calibrated_prediction():
    runner, _machine, clock, reports, log = tuned(100.0)
    drive(runner, clock, 12)
    r = reports[-1]
    assert r.mode == 'pipelined' and r.deadline_ms == 100.0 and not r.missed
    assert r.latency_ms == pytest.approx(r.inference_ms + TRANSPORT_S * 1e3)
    # the tuner's median: within the machine's 2% jitter of what the frames measured
    assert r.predicted_ms == pytest.approx(np.median([x.inference_ms for x in reports[2:]]),
                                           rel=0.03)
    assert 'auto_tune: pipelined' in log.infos[0] and 'planned in' in log.infos[0]
    q = runner.predicted_quantiles_s((0.5, 0.9, 0.99))
    assert q[0.5] * 1e3 == pytest.approx(r.predicted_ms) and q[0.5] <= q[0.9] <= q[0.99]
    runner.update(runner.settings.with_(auto_tune=False))
    assert runner.predicted_quantiles_s((0.99,)) == {}   # no tuner's plan in force


def test_frames_are_reported_only_while_wanted():
    reports = []
    wanted = [False]
    runner, det, clock, _pub, _ = make(on_frame=reports.append, want_frames=lambda: wanted[0])
    runner.process(frame(clock))
    wanted[0] = True
    runner.process(frame(clock))
    assert len(reports) == 1 and reports[0].weight_bytes == 2 ** 19
    assert reports[0].predicted_ms == pytest.approx(50.0)  # the detector's when not tuning


def test_the_target_follows_the_node_clock_rate_and_the_time_outside_inference():
    # a bag replayed at rate 0.2 with use_sim_time: the node clock runs at a fifth of the wall
    wall = FakeClock()
    node = FakeClock(1000.0)
    runner = FrameRunner(convert=lambda m, s: RGB, publish=lambda m, d: None,
                         clock_ns=node.ns, reporter=Log(), monotonic=wall, perf=wall)
    det = FakeDetector()

    def infer(_kw):
        wall.t += 0.1
        node.t += 0.02
    det.on_detect = infer
    runner.attach(det, None)
    for _ in range(10):
        stamp = node.ns()
        node.t += 0.004   # transport, on the node clock
        runner.process(Frame('m', stamp, node.ns(), wall()))
    assert runner.tuning.clock_rate() == pytest.approx(0.2)
    # 100 ms of the node clock: 4 ms outside inference leave 96 ms, 480 ms of wall-clock
    # inference, less the tuner's tolerance (it re-plans only beyond its target + tolerance)
    target = runner.tuning.target_s(Settings(deadline_ms=100.0))
    assert target == pytest.approx(0.48 / (1 + TOLERANCE), rel=1e-3)


def test_the_time_outside_inference_comes_off_at_the_quantile_auto_tune_aims():
    runner = FrameRunner(convert=lambda m, s: RGB, publish=lambda m, d: None,
                         clock_ns=FakeClock().ns, reporter=Log())
    for k in range(30):   # 29 frames with 10 ms outside inference, one with 60 ms
        runner.tuning.after_frame(Settings(), None, 0.1, 110.0 + (50.0 if k == 7 else 0.0),
                                  0.1, 0.1)
    at = {q: runner.tuning.target_s(Settings(deadline_ms=500.0, auto_tune_quantile=q))
          for q in (0.9, 0.99)}
    assert at[0.9] == pytest.approx(0.49 / (1 + TOLERANCE), rel=1e-3)
    # the slow frame counts at the 99th percentile (29.71 of 30 ranks: 10 + 0.71 x 50 ms)
    assert at[0.99] == pytest.approx((0.5 - 0.0455) / (1 + TOLERANCE), rel=1e-3)


def test_the_outside_quantile_is_taken_over_the_frames_it_needs():
    runner = FrameRunner(convert=lambda m, s: RGB, publish=lambda m, d: None,
                         clock_ns=FakeClock().ns, reporter=Log())

    def frames(slow_at: set[int], n: int) -> None:   # 10 ms outside inference, 60 ms when slow
        for k in range(n):
            runner.tuning.after_frame(Settings(), None, 0.1,
                                      110.0 + (50.0 if k in slow_at else 0.0), 0.1, 0.1)

    def target(q: float) -> float:
        return runner.tuning.target_s(Settings(deadline_ms=500.0, auto_tune_quantile=q))

    frames({185}, 200)   # one slow frame in the last 200 (half a percent), among the last 30
    usual = 0.49 / (1 + TOLERANCE)
    assert target(0.99) == pytest.approx(usual, rel=1e-3)   # rarer than 1%: not the p99
    assert target(0.9) == pytest.approx(usual, rel=1e-3)    # 1 in the last 30
    frames({0, 1}, 2)    # three in 200 (1.5%): now the 99th percentile is a slow frame's
    assert target(0.99) < 0.45


class BlockingTuner(AutoTuner):
    """Planning that takes as long as the test wants; counts the frames it judged."""

    def __init__(self, model) -> None:
        super().__init__(model)
        self.go = threading.Event()
        self.planning = threading.Event()
        self.judged = 0

    def plan(self, target_s, max_budget, quantile=0.9, **kw):
        self.planning.set()
        assert self.go.wait(10)
        self.planning.clear()
        self.searched_by = kw.get('search')
        return super().plan(target_s, max_budget, quantile, **kw)

    def observe(self, measured_s):
        self.judged += 1
        return super().observe(measured_s)


class ConfigDetector(FakeDetector):
    """Runs whatever configuration it was last given from its next frame, as the executor."""

    def __init__(self) -> None:
        super().__init__()
        self.running = ('pipelined', 2 ** 20, frozenset())
        self.pending = None
        self.given: list[tuple[str, int]] = []   # (thread, frames started before)
        self.started = 0

    def apply_plan(self, plan):
        self.given.append((threading.current_thread().name, self.started))
        self.pending = key(plan)

    def detect(self, rgb, **kw):
        self.started += 1
        if self.pending is not None:
            self.running, self.pending = self.pending, None
        time.sleep(0.01)
        return []

    def figures(self):
        mode, budget, resident = self.running
        return EngineFigures(mode, budget, 0, len(resident), resident)


def test_planning_runs_off_the_inference_thread_and_never_stalls_frames():
    reports: list[FrameReport] = []
    det = ConfigDetector()
    runner = FrameRunner(convert=lambda m, s: RGB, publish=lambda m, d: None,
                         clock_ns=time.monotonic_ns, reporter=Log(), on_frame=reports.append)
    tuner = BlockingTuner(MODEL)
    runner.attach(det, tuner)
    runner.start()

    def frames_while(cond, at_least: int) -> None:
        end = time.monotonic() + 10
        n = len(reports)
        while (cond() or len(reports) < n + at_least) and time.monotonic() < end:
            runner.offer('m', time.monotonic_ns(), time.monotonic_ns())
            time.sleep(0.005)
    try:
        runner.update(Settings(auto_tune=True, deadline_ms=1000.0))
        assert tuner.planning.wait(5)
        frames_while(lambda: False, 10)   # frames flow while the plan is being made
        assert det.given == [] and tuner.judged == 0
        assert max(r.inference_ms for r in reports) < 500   # none waited for the planner
        tuner.go.set()
        frames_while(lambda: not det.given, 3)
        frames_while(lambda: False, 2)   # the plan runs from the frame after it was handed
        assert det.given[0][0] == 'dl-plan'   # handed over by the planning thread ...
        assert tuner.searched_by is None      # ... searched there: no frame had run yet
        # ... and run from the next frame on: every frame since then was the plan's
        time.sleep(0.2)   # the last frame offered is done
        first = det.given[0][1]
        assert tuner.judged == det.started - first
        assert reports[-1].budget_bytes == tuner.state.plan.budget_bytes
        # a new deadline: frames of the old plan go on, and are not judged, while planning
        tuner.go.clear()
        # frames take 10 ms where the model says 128: 5 ms asks for more memory
        runner.update(runner.settings.with_(deadline_ms=5.0))
        assert tuner.planning.wait(5)
        judged = tuner.judged
        frames_while(lambda: False, 10)
        assert tuner.judged == judged and len(det.given) == 1
        tuner.go.set()
        frames_while(lambda: len(det.given) < 2, 3)
        frames_while(lambda: False, 2)
        assert len(det.given) == 2 and tuner.state.plan is runner.tuning.in_force
        assert tuner.state.plan.budget_bytes > MODEL.min_budget('sequential')
        assert reports[-1].budget_bytes == tuner.state.plan.budget_bytes
        assert tuner.searched_by is None   # frames ran over the target: searched at once
        # frames meet a looser deadline: the planning process searches, and they go on
        runner.update(runner.settings.with_(deadline_ms=1000.0))
        frames_while(lambda: len(det.given) < 3, 3)
        assert len(det.given) == 3 and tuner.searched_by.__self__.pid is not None
        assert tuner.state.plan.budget_bytes == MODEL.min_budget('sequential')
    finally:
        tuner.go.set()
        runner.stop()
    assert not any(t.name == 'dl-plan' and t.is_alive() for t in threading.enumerate())


def test_a_plan_is_searched_in_the_planning_process_only_while_frames_keep_up():
    calls: list[object] = []
    warned: list[str] = []

    def plan(search=None):
        calls.append(search)
        return 'plan'

    def child(*args):
        return 'child plan'

    def failing(*args):
        raise PlanWorkerError('the planning process ended without an answer')

    assert searched(plan, child, False, warned.append) == ('plan', True)
    assert calls == [child]
    assert searched(plan, child, True, warned.append) == ('plan', False)   # frames behind
    assert searched(plan, None, False, warned.append) == ('plan', False)   # no process
    assert calls[1:] == [None, None] and warned == []
    # the process failed: said, and the plan is made here instead of being lost
    calls.clear()
    assert searched(lambda search=None: failing() if search else plan(), failing, False,
                    warned.append) == ('plan', False)
    assert calls == [None]
    assert warned == ['the planning process ended without an answer; this plan is made on the '
                      'planning thread (the frames beside it run slower)']


def test_a_frame_of_the_old_plan_is_not_judged_against_the_new_one():
    plans = []
    loop = TuningLoop(lambda _text: None, lambda plan: plans.append(plan) is None)
    tuner = BlockingTuner(MODEL)
    tuner.go.set()
    loop.attach(tuner)
    s = Settings(auto_tune=True, deadline_ms=200.0)
    first = loop.plan_now(s).plan
    assert plans == [first] and loop.in_force is first is tuner.state.plan
    loop.after_frame(s, key(first), 0.1, 105.0, 0.105, 0.105)
    assert tuner.judged == 1
    second = loop.plan_now(s.with_(deadline_ms=60.0)).plan   # made while a frame runs ...
    assert key(second) != key(first) and plans == [first, second]
    loop.after_frame(s, key(first), 0.1, 105.0, 0.105, 0.105)   # ... that ran the first plan
    assert tuner.judged == 1
    loop.after_frame(s, key(second), 0.05, 55.0, 0.055, 0.055)
    assert tuner.judged == 2
