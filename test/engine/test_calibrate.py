# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Calibration: measured inferences move the model's figures to what the machine does."""

from dataclasses import replace
import math

import pytest

from demand_layering_ros.engine import DemandLayeredModel, empty_weights, LayerStore
from demand_layering_ros.engine.calibrate import Calibrator, covered
from demand_layering_ros.engine.executor import Record, Visit
from demand_layering_ros.engine.loaders import _Pass
from demand_layering_ros.engine.policy import Config, Layout, Mode
from demand_layering_ros.engine.simulate import Pipeline, simulate
import torch
from .toy import make_toy, Toy

B = 4096
PROFILE = Pipeline(Layout((B,) * 4, (0, 1, 2, 3), ((),) * 4), (0.010,) * 4,
                   (0.020, 0.005, 0.020, 0.005), prologue_s=0.001, stream_bps=B / 0.010)


def timed(mode: Mode, budget: int, compute: list[float], reads: list[float],
          handoff: float = 0.0) -> Record:
    """A record of a pass where nothing overlaps (preload, or sequential reads)."""
    t, visits = 0.001, []
    for u, c in enumerate(compute):
        r = reads[u] if mode == Mode.SEQUENTIAL else 0.0
        h = handoff if r > 0 else 0.0
        visits.append(Visit(u, t, t + r + h, t + r + h + c, r))
        t += r + h + c
    read = B * len(compute) if mode == Mode.SEQUENTIAL else 0
    return Record(Config(mode, budget, frozenset()), tuple(visits), read, sum(reads), t)


def test_compute_and_reads_follow_the_machine():
    cal = Calibrator(PROFILE)
    slower = [1.5 * c for c in PROFILE.compute_s]          # thermal throttling
    for _ in range(30):
        cal.observe(timed(Mode.PRELOAD, 4 * B, slower, [0.0] * 4))
    truth = 0.001 + sum(slower)
    assert cal.predict(Config(Mode.PRELOAD, 4 * B, frozenset())).latency_s == pytest.approx(
        truth, rel=0.01)
    disk = [0.030] * 4                                      # the disk got three times slower
    for _ in range(30):
        cal.observe(timed(Mode.SEQUENTIAL, B, slower, disk))
    seq = cal.predict(Config(Mode.SEQUENTIAL, B, frozenset())).latency_s
    assert seq == pytest.approx(0.001 + sum(slower) + sum(disk), rel=0.02)
    assert simulate(PROFILE, 'sequential', B).latency_s < 0.8 * seq   # the profile alone: off


def test_a_stale_profile_gives_way_within_a_few_frames():
    """A figure starts as the plain mean of its measurements' medians, not 0.2 of each.

    In the bench the machine's compute was 20-45% off its profile minutes later; a moving
    average of weight 0.2 from the start was still 15% off after three frames of 1.3x.
    """
    cal = Calibrator(PROFILE)
    slower = [1.3 * c for c in PROFILE.compute_s]
    for _ in range(3):
        cal.observe(timed(Mode.SEQUENTIAL, B, slower, list(PROFILE.read_s)))
    assert cal.predict(Config(Mode.PRELOAD, 4 * B, frozenset())).latency_s == pytest.approx(
        0.001 + sum(slower), rel=0.01)


def test_the_hand_off_after_a_read_is_learned_from_sequential_frames():
    """Compute that starts 2 ms after its read ended: the sequential plan pays it per read."""
    cal = Calibrator(PROFILE)
    assert PROFILE.handoff_s == 0.0
    for _ in range(3):
        cal.observe(timed(Mode.SEQUENTIAL, B, list(PROFILE.compute_s), list(PROFILE.read_s),
                          handoff=0.002))
    assert cal.pipeline.handoff_s == pytest.approx(0.002)
    assert cal.pipeline.compute_s == pytest.approx(PROFILE.compute_s)
    seq = cal.predict(Config(Mode.SEQUENTIAL, B, frozenset())).latency_s
    assert seq == pytest.approx(simulate(PROFILE, 'sequential', B).latency_s + 4 * 0.002)


def streamed(seconds_per_unit: float, compute: tuple[float, ...] = PROFILE.compute_s) -> Record:
    """A pipelined pass at the minimum whose reads streamed at the given speed."""
    budget = PROFILE.min_budget('pipelined')
    t, visits = 0.001, []
    for u, c in enumerate(compute):
        visits.append(Visit(u, t, t, t + c, 0.0))
        t += c
    return Record(Config(Mode.PIPELINED, budget, frozenset()), tuple(visits), 4 * B,
                  4 * seconds_per_unit, t)


def test_reads_follow_the_disk_while_only_streaming():
    """A node that only streams still predicts sequential plans at the disk's speed now."""
    cal = Calibrator(PROFILE)
    for _ in range(30):
        cal.observe(streamed(0.030))                        # the disk got three times slower
    assert cal.pipeline.stream_bps == pytest.approx(B / 0.030, rel=0.02)
    assert cal.pipeline.read_s == pytest.approx([0.030] * 4, rel=0.02)
    seq = cal.predict(Config(Mode.SEQUENTIAL, B, frozenset())).latency_s
    assert seq == pytest.approx(0.001 + sum(PROFILE.compute_s) + 4 * 0.030, rel=0.02)
    # then sequential frames measure the reads themselves: learned at today's speed, no more
    for _ in range(30):
        cal.observe(timed(Mode.SEQUENTIAL, B, list(PROFILE.compute_s), [0.020] * 4))
    assert cal.pipeline.read_s == pytest.approx([0.020] * 4, rel=0.02)


def test_each_entry_keeps_its_own_last_measurements():
    """Visits measured in one frame of three still move: the others' frames push nothing out.

    At the pipelined minimum only the first and last visits run with no read beside them
    (the simulator's account), so the middle two learn compute from sequential frames only.
    """
    slower = tuple(1.3 * c for c in PROFILE.compute_s)
    assert simulate(PROFILE, 'pipelined', PROFILE.min_budget('pipelined')).overlap_s[1] > 0
    cal = Calibrator(PROFILE)
    for _ in range(3):
        cal.observe(timed(Mode.SEQUENTIAL, B, list(slower), list(PROFILE.read_s)))
        for _ in range(2):
            cal.observe(streamed(0.010, slower))
    assert cal.pipeline.compute_s == pytest.approx(slower)


def test_a_time_that_is_not_a_number_is_not_learned():
    """A NaN in a record (a broken clock) reaches no figure, not even through a clamp."""
    profile = replace(PROFILE, handoff_s=0.001, compute_contention=1.2)
    cal = Calibrator(profile)

    def broken(rec: Record) -> Record:
        visits = list(rec.visits)
        visits[1] = visits[1]._replace(ready=float('nan'), done=float('nan'))
        return rec._replace(visits=tuple(visits))
    for _ in range(3):
        cal.observe(broken(streamed(0.030)))
        cal.observe(broken(timed(Mode.SEQUENTIAL, B, list(PROFILE.compute_s),
                                 list(PROFILE.read_s))))
    p = cal.pipeline
    assert all(math.isfinite(f) for f in [*p.compute_s, *p.read_s, p.stream_bps])
    assert p.handoff_s == profile.handoff_s
    assert p.compute_contention == profile.compute_contention


def test_another_path_through_the_model_is_not_learned_from():
    cal = Calibrator(PROFILE)
    rec = timed(Mode.PRELOAD, 4 * B, [1.0] * 3, [0.0] * 3)   # three visits, not four
    cal.observe(rec)
    assert cal.pipeline is PROFILE and cal.frames == 0


def test_the_executor_hands_over_records_of_real_passes(tmp_path):
    model = make_toy()
    x = torch.randn(1, 3, 16, 16)
    store = LayerStore.export(model, tmp_path / 'toy.dls', (x,))
    with empty_weights():
        skeleton = Toy()
    dl = DemandLayeredModel(skeleton, store, mode='pipelined')
    records = []
    dl.observe(records.append)
    for _ in range(3):
        dl(x)
    assert len(records) == 3
    rec = records[-1]
    assert [v.unit for v in rec.visits] == list(store.schedule)
    assert rec.bytes_read > 0 and rec.read_seconds > 0 and rec.latency_s > 0
    assert all(v.entered <= v.ready <= v.done for v in rec.visits)
    assert rec.visits[-1].done <= rec.latency_s
    assert 0 < rec.request_lag_s < rec.latency_s      # its requests waited for a reader a bit
    dl.reconfigure(mode='preload')
    dl(x)
    dl(x)
    assert records[-1].request_lag_s is None          # nothing streamed
    dl.close()


def test_a_request_lag_is_from_its_turn_to_its_read():
    """Its turn: its gate entered (the pass's start for -1), a reader free (queue_depth back)."""
    budget = PROFILE.min_budget('pipelined')
    plan = PROFILE.plan('pipelined', budget)
    assert plan.io.queue_depth == 2 and [r.gate for r in plan.requests] == [-1, -1, 1, 2]
    p = _Pass(plan)
    p.begun = 10.0
    p.entered_at = [10.1, 10.2, 10.3, 10.4]
    p.read_from = [10.01, 10.02, 10.25, 10.5]   # 2: its gate (10.2), 3: read 1's end (10.4)
    p.read_to = [10.2, 10.4, 10.45, 10.6]
    assert p.request_lags() == pytest.approx([0.01, 0.02, 0.05, 0.1])
    # the reads end out of order: read 1 first (10.15), so read 2's reader came free then
    # and its gate (10.2) was its turn; read 3's reader came free as read 0 ended (10.3)
    p.read_to = [10.3, 10.15, 10.45, 10.6]
    p.read_from[3] = 10.5
    assert p.request_lags() == pytest.approx([0.01, 0.02, 0.05, 0.2])
    p.reread = {2}                                # read again: it waited for something else
    assert p.request_lags() == pytest.approx([0.01, 0.02, 0.2])
    p.read_from[3] = 0.0                          # not read (a pass that ended early)
    assert p.request_lags() == pytest.approx([0.01, 0.02])


def test_the_lag_before_a_streamed_read_is_learned_from_pipelined_frames():
    cal = Calibrator(PROFILE)
    for _ in range(3):
        cal.observe(timed(Mode.SEQUENTIAL, B, list(PROFILE.compute_s), list(PROFILE.read_s)))
    assert cal.pipeline.request_lag_s == 0.0          # sequential reads have no such lag
    for _ in range(3):
        cal.observe(streamed(0.010)._replace(request_lag_s=0.002))
    assert cal.pipeline.request_lag_s == pytest.approx(0.002)
    cfg = Config(Mode.PIPELINED, PROFILE.min_budget('pipelined'), frozenset())
    assert cal.predict(cfg).latency_s > simulate(
        replace(cal.pipeline, request_lag_s=0.0), 'pipelined', cfg.budget_bytes).latency_s


def test_one_slow_frame_moves_nothing():
    """A frame stalled by the machine (every visit 3x) leaves every figure where it was."""
    cal = Calibrator(PROFILE)
    usual = list(PROFILE.compute_s)
    cal.observe(timed(Mode.SEQUENTIAL, B, [3 * c for c in usual], [0.030] * 4))   # the first
    assert cal.pipeline.compute_s == pytest.approx(PROFILE.compute_s)
    assert cal.pipeline.read_s == pytest.approx(PROFILE.read_s)
    for _ in range(5):
        cal.observe(timed(Mode.SEQUENTIAL, B, usual, [0.010] * 4))
    before = cal.pipeline
    cal.observe(timed(Mode.SEQUENTIAL, B, [3 * c for c in usual], [0.030] * 4))
    assert cal.pipeline.compute_s == pytest.approx(before.compute_s)
    assert cal.pipeline.read_s == pytest.approx(before.read_s)
    cal.observe(timed(Mode.SEQUENTIAL, B, [3 * c for c in usual], [0.030] * 4))
    assert cal.pipeline.compute_s[0] > 1.2 * before.compute_s[0]   # twice in three: it moves


def test_a_prediction_is_reused_only_until_the_figures_move():
    """A node asks after each frame, observe() before the next: one simulation, not two."""
    cal = Calibrator(PROFILE)
    cfg = Config(Mode.PIPELINED, PROFILE.min_budget('pipelined'), frozenset())
    first = cal.predict(cfg)
    assert cal.predict(cfg) is first
    other = Config(Mode.SEQUENTIAL, B, frozenset())
    assert cal.predict(other).latency_s == simulate(PROFILE, 'sequential', B).latency_s
    slower = [1.5 * c for c in PROFILE.compute_s]
    for _ in range(3):
        cal.observe(timed(Mode.SEQUENTIAL, B, slower, list(PROFILE.read_s)))
    moved = cal.predict(cfg)
    assert moved == simulate(cal.pipeline, 'pipelined', cfg.budget_bytes)
    assert moved.latency_s > first.latency_s


def test_covered_is_the_visits_time_with_a_read_running():
    visits = [Visit(0, 0.0, 0.0, 1.0, 0.0), Visit(1, 1.0, 1.0, 3.0, 0.0),
              Visit(2, 3.0, 3.5, 4.0, 0.0)]
    reads = ((0.5, 1.5), (1.2, 1.8), (2.5, 3.6), (5.0, 6.0))   # overlapping, out of order
    assert covered(reads, visits) == pytest.approx([0.5, 0.8 + 0.5, 0.1])
    assert covered((), visits) == pytest.approx([0.0, 0.0, 0.0])


def test_a_visit_a_read_ran_beside_teaches_no_compute_whatever_the_model_said():
    """The disk slower than predicted: reads ran beside a visit the model had alone."""
    budget = PROFILE.min_budget('pipelined')
    pred = simulate(PROFILE, 'pipelined', budget)
    k = max(i for i, o in enumerate(pred.overlap_s) if o == 0.0)   # predicted alone
    slowed = list(PROFILE.compute_s)
    slowed[k] *= 2                                                  # ... slowed by reads
    rec = streamed(0.010, tuple(slowed))
    v = rec.visits[k]
    beside = rec._replace(reads=((0.0, 0.001), (v.ready, v.done)))
    cal = Calibrator(PROFILE)
    for _ in range(3):
        cal.observe(beside)
    assert cal.pipeline.compute_s[k] == pytest.approx(PROFILE.compute_s[k])
    blind = Calibrator(PROFILE)    # without the reads' times: the model's account
    for _ in range(3):
        blind.observe(rec)
    assert blind.pipeline.compute_s[k] == pytest.approx(2 * PROFILE.compute_s[k])
    # a visit no read ran beside teaches its compute even where the model had reads there
    over = [i for i, o in enumerate(pred.overlap_s) if o > 0.0]
    assert over
    slow = [1.5 * c for c in PROFILE.compute_s]
    apart = streamed(0.010, tuple(slow))._replace(reads=((0.0, 0.0005),))
    cal = Calibrator(PROFILE)
    for _ in range(3):
        cal.observe(apart)
    assert cal.pipeline.compute_s == pytest.approx(slow)
