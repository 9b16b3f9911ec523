# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Turns at one executor: callers that wait are served earliest deadline first.

Camera streams served by one executor (one model on a GPU; on the CPU ``engine.lanes`` gives
each stream a lane) or by engines that take turns: when two frames wait, the one due first runs
first. A caller without a deadline ranks after every deadline, then by arrival.
"""

from __future__ import annotations

from contextlib import contextmanager
import heapq
import itertools
import threading
from typing import Iterator


class Turns:
    """A lock whose waiters are admitted by deadline (``time.monotonic()`` seconds)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy = False
        self._queue: list[tuple[float, int]] = []
        self._order = itertools.count()

    @contextmanager
    def turn(self, deadline: float | None = None) -> Iterator[None]:
        """Hold the executor for one inference (or a reconfiguration)."""
        me = (float('inf') if deadline is None else deadline, next(self._order))
        with self._cond:
            heapq.heappush(self._queue, me)
            while self._busy or self._queue[0] != me:
                self._cond.wait()
            heapq.heappop(self._queue)
            self._busy = True
        try:
            yield
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()
