# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Page-aligned weight buffers outside the malloc heap, and the pool that bounds their total size.

Each buffer is its own anonymous mapping, so releasing it really returns the pages to the OS
(freed malloc memory usually stays in the process). The pool counts every mapped byte, in use or
cached for reuse, against a budget that the caller can change between inferences.
"""

from __future__ import annotations

import mmap
import threading

import numpy as np
import torch

from .store import ALIGN


class Buffer:
    """One page-aligned anonymous mapping, viewed as a uint8 tensor."""

    __slots__ = ('capacity', '_map', 'tensor')

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, 'MAP_POPULATE', 0)
        self._map = mmap.mmap(-1, capacity, flags=flags)
        # numpy holds a buffer export on the mapping, so the mapping cannot be closed while any
        # tensor viewing it is alive: a stale view can never point at unmapped memory.
        self.tensor = torch.from_numpy(np.frombuffer(self._map, dtype=np.uint8))

    def memoryview(self, nbytes: int) -> memoryview:
        """A writable view of the first ``nbytes`` bytes, for reads."""
        return memoryview(self._map)[:nbytes]

    def unmap(self) -> bool:
        """Return the pages to the OS; False if a tensor still views them (the caller keeps it)."""
        self.tensor = None  # type: ignore[assignment]
        try:
            self._map.close()
            return True
        except BufferError:
            self.tensor = torch.from_numpy(np.frombuffer(self._map, dtype=np.uint8))
            return False


class Lease:
    """Room for one buffer inside the pool's limit; the buffer is mapped on first use."""

    __slots__ = ('capacity', '_buf')

    def __init__(self, capacity: int, buf: Buffer | None) -> None:
        self.capacity = capacity
        self._buf = buf

    def buffer(self) -> Buffer:
        """The leased buffer, mapping it now if it is new (call it from the reader thread)."""
        if self._buf is None:
            self._buf = Buffer(self.capacity)
        return self._buf


class BufferPool:
    """Buffers for units, with all mapped bytes (in use and cached) kept within ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._free: dict[int, list[Buffer]] = {}
        self._lingering: list[Buffer] = []
        self.mapped = 0  # bytes leased or cached: what the pool holds
        self.peak = 0
        self._lock = threading.Lock()

    def reserve(self, nbytes: int, exact: bool = False) -> Lease | None:
        """Lease room for ``nbytes`` (rounded up to pages); None while the limit forbids it.

        A cached buffer is reused when one is large enough (the smallest such; ``exact`` asks
        for one of exactly this size), because mapping fresh pages costs the kernel a page fault
        and zeroing per page - about 0.45 ms per MiB on a 2-core machine. The lease counts the
        buffer's whole capacity.
        """
        cap = (nbytes + ALIGN - 1) // ALIGN * ALIGN
        with self._lock:
            self._collect()
            fits = sorted(c for c, bufs in self._free.items() if bufs and c >= cap
                          and (c == cap or not exact))
            if fits:
                return Lease(fits[0], self._free[fits[0]].pop())
            while self.mapped + cap > self.limit and self._drop_one():
                pass
            if self.mapped + cap > self.limit:
                return None
            self.mapped += cap
            self.peak = max(self.peak, self.mapped)
            return Lease(cap, None)

    def give_back(self, lease: Lease) -> None:
        """End a lease; the buffer is cached for reuse (its views must be gone)."""
        with self._lock:
            if lease._buf is None:
                self.mapped -= lease.capacity
            else:
                self._free.setdefault(lease.capacity, []).append(lease._buf)
                lease._buf = None
            self._trim()

    def set_limit(self, limit: int) -> None:
        """Change the limit; cached buffers beyond it are unmapped now."""
        with self._lock:
            self.limit = limit
            self._trim()

    def drop_cached(self) -> None:
        """Unmap every cached buffer, returning its pages to the OS."""
        with self._lock:
            while self._drop_one():
                pass
            self._collect()

    def reset_peak(self) -> None:
        """Restart peak tracking at the bytes held now."""
        with self._lock:
            self.peak = self.mapped

    # -- internals (the caller holds the lock) ----------------------------------------------------
    def _trim(self) -> None:
        while self.mapped > self.limit and self._drop_one():
            pass

    def _drop_one(self) -> bool:
        for _cap, bufs in sorted(self._free.items()):  # the smallest are the least reusable
            while bufs:
                buf = bufs.pop()
                if buf.unmap():
                    self.mapped -= buf.capacity
                    return True
                self._lingering.append(buf)  # still viewed somewhere: stays counted
        return False

    def _collect(self) -> None:
        for buf in list(self._lingering):
            if buf.unmap():
                self._lingering.remove(buf)
                self.mapped -= buf.capacity
