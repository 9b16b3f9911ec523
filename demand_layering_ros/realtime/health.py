# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Health from what happened recently: the level and message diagnostics show.

Counters stay cumulative for dashboards, but a level computed from them never clears: one late
frame an hour ago would keep a node WARN forever. Levels come from the last ``window_s``
seconds instead: any failing frame -> ERROR with the last error; dropped, rejected, aborted or
late frames, clock problems and a camera whose frames mostly never arrive -> WARN saying which;
a clean window -> OK.
"""

from __future__ import annotations

from collections import Counter, deque
from enum import IntEnum
import threading
import time
from typing import Callable

WINDOW_S = 10.0
# WARN when at least this share of the frames the camera stamped never arrived: a few lost
# frames are normal for best-effort QoS (and a jittery camera can pass for one losing some)
LOST_SHARE = 0.5
# kinds noted that are not an outcome of a frame the node took
NOT_FRAMES = ('clock', 'received', 'lost')

# outcome -> how a WARN message names it
_WARN = {
    'dropped_stale': 'dropped before inference (already past their deadline)',
    'aborted': 'aborted (could not finish before their deadline)',
    'deadline_missed': 'published after their deadline',
    'rejected': 'rejected',
}


class Level(IntEnum):
    """Diagnostic levels (the values of diagnostic_msgs/DiagnosticStatus)."""

    OK = 0
    WARN = 1
    ERROR = 2
    STALE = 3


class Health:
    """A sliding window of frame outcomes and problems, assessed into a level and a message."""

    def __init__(self, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._events: deque[tuple[float, str, str | None, int]] = deque(maxlen=100_000)

    def note(self, outcome: str, detail: str | None = None, n: int = 1) -> None:
        """Record n of an outcome ('processed', 'failed', ...; 'clock', 'received' or 'lost')."""
        with self._lock:
            self._events.append((self._clock(), outcome, detail, n))

    def assess(self) -> tuple[Level, str]:
        """The level and message of the last window (OK 'ok' when it is clean)."""
        now = self._clock()
        with self._lock:
            while self._events and now - self._events[0][0] > self.window_s:
                self._events.popleft()
            events = list(self._events)
        counts: Counter[str] = Counter()
        for _t, kind, _d, n in events:
            counts[kind] += n
        last = {kind: detail for _t, kind, detail, _n in events if detail}
        frames = sum(n for kind, n in counts.items() if kind not in NOT_FRAMES)
        span = f'in the last {self.window_s:g} s'
        if counts['failed']:
            return Level.ERROR, (f'{counts["failed"]} of {frames} frames failed {span}: '
                                 f'{last.get("failed", "no reason given")}')
        problems = []
        if 'clock' in last:
            problems.append(last['clock'])
        for kind, text in _WARN.items():
            if counts[kind]:
                reason = f' ({last[kind]})' if kind in last and kind != 'dropped_stale' else ''
                problems.append(f'{counts[kind]} frames {text}{reason}')
        stamped = counts['lost'] + counts['received']
        if counts['lost'] and counts['lost'] >= LOST_SHARE * stamped:
            problems.append(
                f'{counts["lost"]} of the {stamped} frames the camera stamped never arrived '
                f'({last.get("lost", "gaps in the header stamps")}): a best-effort subscription '
                'loses frames the transport cannot deliver; large images need the shared-memory '
                'transport profile or a reliable subscription')
        if problems:
            return Level.WARN, f'{span}: ' + '; '.join(problems)
        return Level.OK, 'ok'
