# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Frames lost before they reached the node, from gaps in the camera's header stamps.

A best-effort subscription drops what the transport cannot deliver (large images over UDP, a
full shared-memory segment) and tells no one. When nothing arrives the node says so; when most
frames are lost but some arrive, only the stamps show it: a camera stamps every frame it takes,
so a gap of k of its periods between two frames that arrived means k - 1 never did.

The period is the median of the recent gaps while most frames arrive; with most lost, most
gaps are multiples of it and the median is one of those, so it is then a low quantile of them
(the shortest usual gap is still one period). Only gaps of at least ``MIN_MULTIPLE`` periods
count, so a camera whose stamps jitter (by up to a fifth of its period) is not taken for one
that loses frames. Gaps longer than ``PAUSE_S`` are the camera pausing (or a bag starting
over), which the node reports as missing input instead. A camera that halves its rate counts
one lost frame a gap until the window has forgotten the faster rate (about ``WINDOW`` frames).
The gap across a time the node did not listen (deactivated) is no loss: the runner calls
``restart`` when it starts again.
"""

from __future__ import annotations

from collections import deque
import threading

import numpy as np

WINDOW = 64             # recent gaps the camera's period is estimated from
MIN_GAPS = 8            # before this many gaps the period is not known: nothing is counted
PERIOD_QUANTILE = 0.1   # the camera's period when most frames are lost: this quantile of gaps
MIN_MULTIPLE = 1.75     # a gap of at least this many periods lost frames
PAUSE_S = 2.0           # a longer gap is a pause, not lost frames
# a shorter gap is a burst - a driver that sends a frame twice, a camera bracketing exposures
# 1 ms apart - not the camera's period: taken as its period it made every other gap thousands
# of lost frames (a probe counted 9,865,976 lost of 600 received); no camera streams images at
# 500 Hz
BURST_S = 0.002


class StampGaps:
    """Counts the frames missing between consecutive header stamps of one camera."""

    def __init__(self, window: int = WINDOW) -> None:
        self._lock = threading.Lock()
        self._gaps: deque[int] = deque(maxlen=window)
        self._last = 0
        self.period_ns = 0.0   # the camera's period as last estimated (0: not known yet)

    def restart(self) -> None:
        """Forget the last stamp: the node stops listening (deactivated) and listens again.

        The next gap spans frames the camera sent while no one listened, not frames lost in
        transport. The recent gaps, so the camera's period, stay: losses count again at once.
        """
        with self._lock:
            self._last = 0

    def lost(self, stamp_ns: int) -> int:
        """Frames the camera stamped between the previous frame and this one, never received.

        An unset stamp (0) says nothing; a stamp not after the previous one (a repeated or
        reordered frame, a bag played again) starts the count afresh from it.
        """
        if stamp_ns <= 0:
            return 0
        with self._lock:
            last, self._last = self._last, stamp_ns
            gap = stamp_ns - last
            if not last or gap < BURST_S * 1e9 or gap > PAUSE_S * 1e9:
                return 0
            self._gaps.append(gap)
            if len(self._gaps) < MIN_GAPS:
                return 0
            low, median = np.quantile(self._gaps, (PERIOD_QUANTILE, 0.5))
            self.period_ns = float(median if median < MIN_MULTIPLE * low else low)
            multiple = gap / self.period_ns
            return int(round(multiple)) - 1 if multiple >= MIN_MULTIPLE else 0
