# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Counters, rates and per-stage latency percentiles over a sliding window; plain data."""

from __future__ import annotations

from collections import Counter, deque
import threading
from typing import Mapping

import numpy as np

# 'stopped': frames in flight or waiting when the runner stopped (the node was deactivated or
# shut down); 'lost': frames the camera stamped that never arrived (realtime.arrivals)
OUTCOMES = ('received', 'processed', 'superseded', 'dropped_stale', 'aborted', 'deadline_missed',
            'rejected', 'failed', 'stopped', 'lost')
# Every frame received ends in exactly one of these (received == their sum once no frame is in
# flight); 'deadline_missed' frames are processed frames that were late, 'lost' ones never came.
FRAME_ENDS = ('processed', 'superseded', 'dropped_stale', 'aborted', 'rejected', 'failed',
              'stopped')
# Where a processed frame's time went, in order: the camera's stamp to arrival in the node,
# waiting in the slot behind the previous frame, message -> RGB, the detector, building and
# publishing the result; 'convert_publish' is the node's own work beyond inference (the two
# together, per frame); 'latency' is the whole, from the deadline reference to published.
STAGES = ('transport', 'queue', 'convert', 'inference', 'publish', 'convert_publish', 'latency')


class FrameStats:
    """Thread-safe outcome counters, per-stage latency windows and input/output rates."""

    def __init__(self, window: int = 300) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self._ms: dict[str, deque[float]] = {s: deque(maxlen=window) for s in STAGES}
        self._in_stamps: deque[int] = deque(maxlen=window)
        self._out_stamps: deque[int] = deque(maxlen=window)

    def count(self, outcome: str, n: int = 1) -> None:
        """Add n to an outcome counter."""
        with self._lock:
            self.counts[outcome] += n

    def received(self, now_ns: int) -> None:
        """A frame arrived."""
        with self._lock:
            self.counts['received'] += 1
            self._in_stamps.append(now_ns)

    def processed(self, now_ns: int, stages_ms: Mapping[str, float]) -> None:
        """A frame's detections were published; ``stages_ms`` has a value per STAGES entry."""
        with self._lock:
            self.counts['processed'] += 1
            for stage, ms in stages_ms.items():
                self._ms[stage].append(ms)
            self._out_stamps.append(now_ns)

    def snapshot(self, now_ns: int, horizon_ns: int = 5_000_000_000) -> dict[str, float]:
        """Counters, rates over the last horizon_ns and p50/p99 of every stage."""
        with self._lock:
            out: dict[str, float] = {k: float(self.counts[k]) for k in OUTCOMES}
            windows = {s: np.array(v) for s, v in self._ms.items() if v}
            out['input_hz'] = _rate(self._in_stamps, now_ns, horizon_ns)
            out['output_hz'] = _rate(self._out_stamps, now_ns, horizon_ns)
            out['last_input_age_s'] = ((now_ns - self._in_stamps[-1]) / 1e9
                                       if self._in_stamps else float('inf'))
        for stage, arr in windows.items():
            out[f'{stage}_ms_p50'] = float(np.percentile(arr, 50))
            out[f'{stage}_ms_p99'] = float(np.percentile(arr, 99))
        if 'latency' in windows:
            out['latency_ms_max'] = float(windows['latency'].max())
        return out


def _rate(stamps: deque[int], now_ns: int, horizon_ns: int) -> float:
    recent = [s for s in stamps if now_ns - s <= horizon_ns]
    return len(recent) / (horizon_ns / 1e9) if recent else 0.0
