# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Host memory for weights: one page-aligned anonymous mapping per configuration.

The mapping is outside the malloc heap, so releasing it really returns the pages to the OS, and
it is made once when a configuration is applied: units are sub-allocated inside it by the
policy's placement, so nothing is mapped, unmapped or zeroed per unit or per frame. A smaller
configuration keeps the mapping and returns the pages beyond its size (``MADV_DONTNEED``); a
larger one maps anew. ``maps`` counts the mapping calls.
"""

from __future__ import annotations

import mmap

import numpy as np
import torch


class HostArena:
    """A resizable page-aligned host mapping, viewed as one uint8 tensor."""

    def __init__(self) -> None:
        self._map: mmap.mmap | None = None
        # mappings still viewed after a resize, with their lengths: ``held_bytes`` (read on
        # other threads) must not touch a mapping this thread may be closing
        self._lingering: list[tuple[mmap.mmap, int]] = []
        self.tensor: torch.Tensor | None = None
        self.size = 0      # bytes in use (the mapping may be longer, its tail returned)
        self.maps = 0      # mapping calls so far

    def resize(self, nbytes: int) -> None:
        """Hold exactly ``nbytes`` (page multiple); views of the old contents become invalid.

        Callers drop every view before resizing; a mapping still viewed somewhere is kept
        (and counted) until those views are gone, so a stale view never sees unmapped memory.
        """
        self._collect()
        if self._map is not None and nbytes <= len(self._map):
            if nbytes < self.size:
                self._map.madvise(mmap.MADV_DONTNEED, nbytes, len(self._map) - nbytes)
            self.size = nbytes
            self.tensor = self._whole[:nbytes] if nbytes else None
            return
        self.release()
        if nbytes:
            flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, 'MAP_POPULATE', 0)
            self._map = mmap.mmap(-1, nbytes, flags=flags)
            self.maps += 1
            # numpy holds a buffer export, so the mapping cannot be closed while a tensor views it
            self._whole = torch.from_numpy(np.frombuffer(self._map, dtype=np.uint8))
            self.tensor = self._whole
        self.size = nbytes

    def view(self, offset: int, nbytes: int) -> memoryview:
        """A writable view of [offset, offset + nbytes), for reads (release it after)."""
        assert self._map is not None and offset + nbytes <= self.size
        return memoryview(self._map)[offset:offset + nbytes]

    @property
    def held_bytes(self) -> int:
        """Bytes the mappings hold: in use plus any still viewed after a resize."""
        return self.size + sum(n for _m, n in list(self._lingering))

    def release(self) -> None:
        """Unmap (pages back to the OS); a mapping still viewed lingers until its views go."""
        self.tensor = None
        self._whole = None
        if self._map is not None:
            self._lingering.append((self._map, len(self._map)))
            self._map = None
        self.size = 0
        self._collect()

    def _collect(self) -> None:
        for kept in list(self._lingering):
            try:
                kept[0].close()
            except BufferError:
                continue
            self._lingering.remove(kept)
