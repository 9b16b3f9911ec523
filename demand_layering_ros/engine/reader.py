# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Reads byte ranges of the store with direct I/O, and measures what the disk delivered.

Direct I/O (O_DIRECT) bypasses the page cache, which would otherwise keep a second copy of
the weights in the same DRAM. Where the filesystem refuses it (tmpfs, some overlays), reads
fall back to buffered I/O and drop what they read from the page cache; ``direct_io`` says which.
Reads are issued by the loader's threads, several at once (``os.preadv`` releases the GIL).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
import threading
import time


class Reader:
    """Positional reads of one file into caller-provided aligned buffers."""

    def __init__(self, path: Path, *, direct: bool = True) -> None:
        self.path = path
        self.direct_io = False
        self._fd = -1
        if direct and hasattr(os, 'O_DIRECT'):
            try:
                self._fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
                self.direct_io = True
            except OSError as err:
                if err.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
                    raise
        if self._fd < 0:
            self._fd = os.open(path, os.O_RDONLY)
        self._lock = threading.Lock()
        self._old_fds: list[int] = []
        self.bytes_read = 0
        self.reads = 0
        self._busy = 0          # reads in flight
        self._busy_since = 0.0
        self.busy_seconds = 0.0  # time with at least one read in flight: the disk's share

    def read(self, offset: int, view: memoryview, what: str = '') -> float:
        """Fill ``view`` from ``offset``; return the seconds the read took."""
        self._started()
        t0 = time.perf_counter()
        done, n = 0, len(view)
        try:
            while done < n:
                try:
                    got = os.preadv(self._fd, [view[done:]], offset + done)
                except OSError as err:
                    if err.errno != errno.EINVAL or not self.direct_io:
                        raise
                    self._fall_back()  # O_DIRECT accepted at open but refused on read
                    continue
                if got == 0:
                    raise OSError(errno.EIO, f'{self.path}: unexpected end of file at '
                                             f'{offset + done} ({what})')
                done += got
        finally:
            self._finished(done)
        if not self.direct_io:
            os.posix_fadvise(self._fd, offset, n, os.POSIX_FADV_DONTNEED)
        return time.perf_counter() - t0

    @property
    def bandwidth_bps(self) -> float:
        """Bytes per second while the disk was busy with our reads."""
        return self.bytes_read / self.busy_seconds if self.busy_seconds else 0.0

    def stat(self) -> os.stat_result:
        """The open file's status (identity, size, times)."""
        return os.fstat(self._fd)

    def _started(self) -> None:
        with self._lock:
            if self._busy == 0:
                self._busy_since = time.perf_counter()
            self._busy += 1

    def _finished(self, nbytes: int) -> None:
        with self._lock:
            self._busy -= 1
            self.bytes_read += nbytes
            self.reads += 1
            if self._busy == 0:
                self.busy_seconds += time.perf_counter() - self._busy_since

    def _fall_back(self) -> None:
        with self._lock:
            if not self.direct_io:
                return
            # the old descriptor stays open until close(): other threads may be reading with it
            self._old_fds.append(self._fd)
            self._fd, self.direct_io = os.open(self.path, os.O_RDONLY), False

    def close(self) -> None:
        """Close the file."""
        for fd in [self._fd, *self._old_fds]:
            if fd >= 0:
                os.close(fd)
        self._fd, self._old_fds = -1, []
