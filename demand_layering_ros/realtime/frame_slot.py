# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""A one-frame mailbox between the receiving and the inferring thread: newest frame wins."""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar('T')


class FrameSlot(Generic[T]):
    """Holds at most one waiting frame; a newer frame replaces (supersedes) the waiting one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._closed = False
        self.superseded = 0

    def put(self, item: T) -> bool:
        """Offer a frame; returns True if it replaced one that was still waiting."""
        with self._cond:
            replaced = self._item is not None
            if replaced:
                self.superseded += 1
            self._item = item
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> T | None:
        """Wait for a frame (None on timeout or once closed: a closed slot hands nothing out)."""
        with self._cond:
            if (not self._cond.wait_for(lambda: self._item is not None or self._closed, timeout)
                    or self._closed):
                return None
            item, self._item = self._item, None
            return item

    def close(self) -> T | None:
        """Wake the taker for shutdown; returns the frame still waiting, which no one will take.

        It is handed back rather than dropped so that the owner can count it.
        """
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            item, self._item = self._item, None
            return item

    def reopen(self) -> T | None:
        """Accept frames again after close(); returns a frame put meanwhile, now dropped.

        Such a frame is from before the start: stale, so it is not run (the owner counts it).
        """
        with self._cond:
            self._closed = False
            item, self._item = self._item, None
            return item
