# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Calibration while running: measured inferences folded into the profile's figures.

The executor hands over a :class:`executor.Record` per inference (its visits' times, the bytes
read and the disk's busy time). Each figure is updated only from frames that measure it alone,
so the model keeps its parts apart instead of smearing one error over all of them:

- a visit's compute time, from visits no read overlapped: all of them in preload and in
  sequential mode; in pipelined frames those the executor's read times say no read ran
  beside (on CUDA, where reads and compute keep different clocks, those the simulator's account
  of the frame says so);
- a unit's read time, from sequential frames (its read ran alone), and the hand-off from a
  read's end to the compute that waited for it (their median);
- the disk's streaming throughput, from frames that streamed (bytes / the disk's busy time);
  the disk's speed drifts as a whole, so the read times follow it: they are kept at the
  profile's streaming speed and scaled by how much that speed moved (a node that streams
  for an hour still predicts a sequential plan at today's disk: the bench measured the
  sequential minimum 6-24% slower than predicted, always on the side the disk had drifted);
- how much slower compute is while reads run, from frames where reads overlapped compute;
- a streamed request's lag from its turn to its read's start, from frames that streamed;
- the time before the first unit.

Each (per visit, per unit) is a running mean of the median of its own last ``MEDIAN_OF``
measurements, so one slow frame (the VM stalled, another process took the core) moves nothing.
The mean starts as the plain mean of those medians (a stale profile gives way within a few
frames: the profile's compute was 20-45% off the machine minutes later in the bench) and
becomes an exponentially weighted one (weight ``alpha`` for the new median) once the plain
mean would weigh a new median less, so predictions follow thermal throttling, other processes
and disk drift. What the model still does not explain is left to the auto-tuner, which keeps
measured / predicted over recent frames.
"""

from __future__ import annotations

from dataclasses import replace
import threading
from typing import Any

import numpy as np

from .executor import Record
from .policy import Config, Mode
from .simulate import Pipeline, Prediction, simulate

ALPHA = 0.2          # weight of a new measurement in the moving averages
MIN_OVERLAP_S = 1e-3  # frames with less read-compute overlap say nothing about contention
MEDIAN_OF = 3         # a figure moves towards the median of its last this many measurements
ALONE = 0.02          # a visit with reads beside it for at most this share of it ran alone


class Calibrator:
    """Keeps a pipeline's figures true to the machine as it runs."""

    def __init__(self, pipeline: Pipeline, alpha: float = ALPHA) -> None:
        self._base = pipeline
        self.alpha = alpha
        self._lock = threading.Lock()
        self._compute = np.array(pipeline.compute_s, dtype=float)
        self._read = np.array(pipeline.read_s, dtype=float)
        self._prologue = pipeline.prologue_s
        self._handoff = pipeline.handoff_s
        self._stream = pipeline.stream_bps
        self._contention = pipeline.compute_contention
        self._lag = pipeline.request_lag_s
        self._pipeline = pipeline
        # per figure and entry: its last MEDIAN_OF measurements, and how many there were
        self._history: dict[str, np.ndarray] = {}
        self._count: dict[str, np.ndarray] = {}
        self.frames = 0
        # the last prediction (config, frames, prediction): a node asks for the configuration
        # in force after each frame, the next frame's observe() for the same one
        self._last: tuple[Config, int, Prediction] | None = None

    @property
    def pipeline(self) -> Pipeline:
        """The figures as calibrated so far."""
        return self._pipeline

    def predict(self, config: Config) -> Prediction:
        """The calibrated model's prediction for ``config`` (ValueError below its minimum)."""
        frames = self.frames   # before the figures: observe() moves them first, then frames
        last = self._last
        if last is not None and last[1] == frames and last[0] == config:
            return last[2]
        pred = simulate(self._pipeline, config.mode, config.budget_bytes, config.resident,
                        config.prefetch_depth)
        self._last = (config, frames, pred)
        return pred

    def observe(self, rec: Record) -> None:
        """Fold one measured inference in (called by the executor; any thread)."""
        visits = [v for v in rec.visits if v.unit >= 0]
        if not visits or len(visits) != len(self._base.visits) or [
                v.unit for v in visits] != list(self._base.visits):
            return  # another path through the model (data-dependent): not comparable
        with self._lock:
            before = self.predict(rec.config)
            self._learn(rec, visits, before)
            self._pipeline = replace(self._base, read_s=tuple(self._read * self._drift()),
                                     compute_s=tuple(self._compute),
                                     prologue_s=self._prologue, handoff_s=self._handoff,
                                     stream_bps=self._stream,
                                     compute_contention=self._contention,
                                     request_lag_s=self._lag)
            self.frames += 1

    def _drift(self) -> float:
        """How many times longer a read takes than at the profile's streaming speed."""
        return self._base.stream_bps / self._stream if self._base.stream_bps > 0 else 1.0

    def _learn(self, rec: Record, visits: list[Any], pred: Prediction) -> None:
        self._prologue = self._fold1('prologue', visits[0].entered, self._prologue)
        # a visit that waited for its unit also woke the compute threads (see simulate)
        woke = np.array(pred.stall_s) > 0
        measured = np.array([v.done - v.ready for v in visits]) - self._base.wake_s * woke
        alone = np.array(pred.overlap_s) <= 0.0
        if rec.reads is not None:   # measured: where a slower disk than predicted overlapped
            alone = covered(rec.reads, visits) <= ALONE * np.maximum(measured, 0.0)
        self._compute = self._fold('compute', measured, self._compute, alone)
        mode = rec.config.mode
        if mode == Mode.SEQUENTIAL:
            units = np.array([v.unit for v in visits])
            read = np.array([v.read_s for v in visits]) / self._drift()
            # a unit read at several visits: the mean of their reads
            n = np.bincount(units, read > 0, minlength=len(self._read))
            mean = np.bincount(units, np.where(read > 0, read, 0.0),
                               minlength=len(self._read)) / np.maximum(n, 1)
            self._read = self._fold('read', mean, self._read, n > 0)
            handoff = [v.handoff_s for v in visits if v.read_s > 0]
            if handoff:
                self._handoff = self._fold1('handoff', float(np.maximum(0.0, np.median(handoff))),
                                            self._handoff)
        if rec.bytes_read and rec.read_seconds > 0 and mode == Mode.PIPELINED:
            self._stream = self._fold1('stream', rec.bytes_read / rec.read_seconds, self._stream)
            if rec.request_lag_s is not None:
                self._lag = self._fold1('lag', rec.request_lag_s, self._lag)
        overlap = float(np.sum(pred.overlap_s))
        if mode == Mode.PIPELINED and overlap >= MIN_OVERLAP_S:
            over = np.array(pred.overlap_s) > 0.0   # as the simulator stretches them
            extra = float(np.sum(measured[over]) - np.sum(self._compute[over]))
            self._contention = self._fold1(
                'contention', float(np.maximum(1.0, 1.0 + extra / overlap)), self._contention)

    def _fold(self, figure: str, values: np.ndarray, current: np.ndarray,
              measured: np.ndarray) -> np.ndarray:
        """The figure moved towards the median of each entry's last MEDIAN_OF measurements.

        Each entry keeps its own last measurements (a frame that measures some entries does
        not push the others' out). Where an entry has fewer than MEDIAN_OF, its figure as it
        is stands in for the missing ones, so one stalled frame moves nothing even then. The move
        weighs 0 where this frame did not measure the entry (or measured something not
        finite), 1 / (n - 1) at its n-th measurement (from the second on, the figure is the
        plain mean of its medians; the first median is the figure itself) and ``alpha`` once
        that is less.
        """
        measured = measured & np.isfinite(values)
        history = self._history.setdefault(figure, np.full((MEDIAN_OF, len(values)), np.nan))
        count = self._count.setdefault(figure, np.zeros(len(values), dtype=int))
        entries = np.flatnonzero(measured)
        history[count[entries] % MEDIAN_OF, entries] = values[entries]
        count += measured
        weight = np.maximum(self.alpha, 1.0 / np.maximum(count - 1, 1)) * measured
        median = np.median(np.where(np.isnan(history), current, history), axis=0)
        return current + weight * (median - current)

    def _fold1(self, figure: str, value: float, current: float) -> float:
        """:meth:`_fold` of one figure."""
        return float(self._fold(figure, np.array([value], dtype=float), np.array([current]),
                                np.array([True]))[0])


def covered(spans: tuple[tuple[float, float], ...], visits: list[Any]) -> np.ndarray:
    """Per visit, the seconds of its compute (ready to done) with at least one read running."""
    merged: list[list[float]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    if not merged:
        return np.zeros(len(visits))
    starts, ends = np.array(merged).T
    before = np.concatenate(([0.0], np.cumsum(ends - starts)))   # covered before span k

    def upto(t: np.ndarray) -> np.ndarray:   # seconds covered before t
        k = np.searchsorted(starts, t, side='right')   # spans starting at or before t
        last = np.maximum(k - 1, 0)
        inside = np.clip(t - starts[last], 0.0, ends[last] - starts[last]) * (k > 0)
        return before[last] * (k > 0) + inside
    ready = np.array([v.ready for v in visits])
    done = np.array([v.done for v in visits])
    return np.maximum(0.0, upto(done) - upto(ready))
