# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Calibration while running: measured inferences folded into the profile's figures.

The executor hands over a :class:`executor.Record` per inference (its visits' times, the bytes
read and the disk's busy time). Each figure is updated only from frames that measure it alone,
so the model keeps its parts apart instead of smearing one error over all of them:

- a visit's compute time, from visits no read overlapped (by the simulator's account of this
  frame): all of them in preload, most of them in sequential mode;
- a unit's read time, from sequential frames (its read ran alone);
- the disk's streaming throughput, from frames that streamed (bytes / the disk's busy time);
- how much slower compute is while reads run, from frames where reads overlapped compute;
- the time before the first unit.

Each is an exponentially weighted mean (weight ``alpha`` for the new value), so predictions
follow thermal throttling, other processes and disk drift. What the model still does not explain
is left to the auto-tuner, which keeps measured / predicted over recent frames.
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


class Calibrator:
    """Keeps a pipeline's figures true to the machine as it runs."""

    def __init__(self, pipeline: Pipeline, alpha: float = ALPHA) -> None:
        self._base = pipeline
        self.alpha = alpha
        self._lock = threading.Lock()
        self._compute = np.array(pipeline.compute_s, dtype=float)
        self._read = np.array(pipeline.read_s, dtype=float)
        self._prologue = pipeline.prologue_s
        self._stream = pipeline.stream_bps
        self._contention = pipeline.compute_contention
        self._pipeline = pipeline
        self.frames = 0

    @property
    def pipeline(self) -> Pipeline:
        """The figures as calibrated so far."""
        return self._pipeline

    def predict(self, config: Config) -> Prediction:
        """The calibrated model's prediction for ``config`` (ValueError below its minimum)."""
        return simulate(self._pipeline, config.mode, config.budget_bytes, config.resident,
                        config.prefetch_depth)

    def observe(self, rec: Record) -> None:
        """Fold one measured inference in (called by the executor; any thread)."""
        visits = [v for v in rec.visits if v.unit >= 0]
        if not visits or len(visits) != len(self._base.visits) or [
                v.unit for v in visits] != list(self._base.visits):
            return  # another path through the model (data-dependent): not comparable
        with self._lock:
            before = self.predict(rec.config)
            self._learn(rec, visits, before)
            self._pipeline = replace(self._base, read_s=tuple(self._read),
                                     compute_s=tuple(self._compute),
                                     prologue_s=self._prologue, stream_bps=self._stream,
                                     compute_contention=self._contention)
            self.frames += 1

    def _learn(self, rec: Record, visits: list[Any], pred: Prediction) -> None:
        a = self.alpha
        self._prologue += a * (visits[0].entered - self._prologue)
        # a visit that waited for its unit also woke the compute threads (see simulate)
        woke = np.array(pred.stall_s) > 0
        measured = np.array([v.done - v.ready for v in visits]) - self._base.wake_s * woke
        alone = np.array(pred.overlap_s) <= 0.0
        self._compute[alone] += a * (measured[alone] - self._compute[alone])
        mode = rec.config.mode
        if mode == Mode.SEQUENTIAL:
            for v in visits:
                if v.read_s > 0:
                    self._read[v.unit] += a * (v.read_s - self._read[v.unit])
        if rec.bytes_read and rec.read_seconds > 0 and mode == Mode.PIPELINED:
            self._stream += a * (rec.bytes_read / rec.read_seconds - self._stream)
        overlap = float(np.sum(pred.overlap_s))
        if mode == Mode.PIPELINED and overlap >= MIN_OVERLAP_S:
            over = ~alone
            extra = float(np.sum(measured[over]) - np.sum(self._compute[over]))
            observed = max(1.0, 1.0 + extra / overlap)
            self._contention += a * (observed - self._contention)
