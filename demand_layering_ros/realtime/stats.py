# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Counters and latency percentiles over a sliding window; plain data for diagnostics."""

from __future__ import annotations

from collections import Counter, deque
import threading

import numpy as np

OUTCOMES = ('received', 'processed', 'superseded', 'dropped_stale', 'aborted', 'deadline_missed',
            'rejected', 'failed')


class FrameStats:
    """Thread-safe outcome counters, latency window and input/output rates."""

    def __init__(self, window: int = 300) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self._latency_ms: deque[float] = deque(maxlen=window)
        self._infer_ms: deque[float] = deque(maxlen=window)
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

    def processed(self, now_ns: int, latency_ms: float, infer_ms: float) -> None:
        """A frame's detections were published."""
        with self._lock:
            self.counts['processed'] += 1
            self._latency_ms.append(latency_ms)
            self._infer_ms.append(infer_ms)
            self._out_stamps.append(now_ns)

    def snapshot(self, now_ns: int, horizon_ns: int = 5_000_000_000) -> dict[str, float]:
        """Counters, rates over the last horizon_ns and latency percentiles."""
        with self._lock:
            out: dict[str, float] = {k: float(self.counts[k]) for k in OUTCOMES}
            lat = np.array(self._latency_ms) if self._latency_ms else None
            inf = np.array(self._infer_ms) if self._infer_ms else None
            out['input_hz'] = _rate(self._in_stamps, now_ns, horizon_ns)
            out['output_hz'] = _rate(self._out_stamps, now_ns, horizon_ns)
            out['last_input_age_s'] = ((now_ns - self._in_stamps[-1]) / 1e9
                                       if self._in_stamps else float('inf'))
        for name, arr in (('latency', lat), ('inference', inf)):
            if arr is not None:
                out[f'{name}_ms_p50'] = float(np.percentile(arr, 50))
                out[f'{name}_ms_p99'] = float(np.percentile(arr, 99))
                out[f'{name}_ms_max'] = float(arr.max())
        return out


def _rate(stamps: deque[int], now_ns: int, horizon_ns: int) -> float:
    recent = [s for s in stamps if now_ns - s <= horizon_ns]
    return len(recent) / (horizon_ns / 1e9) if recent else 0.0
