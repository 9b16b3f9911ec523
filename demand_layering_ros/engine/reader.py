# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Reads units from the store with direct I/O into aligned buffers, on a small pool of threads.

Direct I/O (O_DIRECT) bypasses the page cache, which would otherwise keep a second copy of
the weights in the same DRAM. Where the filesystem refuses it (tmpfs, some overlays), reads
fall back to buffered I/O and drop what they read from the page cache; ``direct_io`` says which.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
import errno
import os
from pathlib import Path
import threading
import time
from typing import Callable, TypeVar

from .buffers import Buffer
from .store import Unit

T = TypeVar('T')


class UnitReader:
    """Reads whole units (one aligned region each) into buffers; measures bytes and seconds."""

    def __init__(self, path: Path, *, threads: int = 1, direct: bool = True) -> None:
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
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix='dl-reader')
        self._lock = threading.Lock()
        self.bytes_read = 0
        self.read_seconds = 0.0
        self.reads = 0

    def submit(self, fn: Callable[..., T], *args: object) -> 'Future[T]':
        """Run ``fn(*args)`` on a reader thread."""
        return self._pool.submit(fn, *args)

    def read_into(self, unit: Unit, buf: Buffer) -> float:
        """Read ``unit``'s region into ``buf``; return the seconds the read took."""
        view = buf.memoryview(unit.nbytes)
        t0 = time.perf_counter()
        done = 0
        try:
            while done < unit.nbytes:
                try:
                    n = os.preadv(self._fd, [view[done:]], unit.offset + done)
                except OSError as err:
                    if err.errno != errno.EINVAL or not self.direct_io:
                        raise
                    self._fall_back()  # O_DIRECT accepted at open but refused on read
                    continue
                if n == 0:
                    raise OSError(errno.EIO, f'{self.path}: unexpected end of file in unit '
                                             f'{unit.name!r}')
                done += n
        finally:
            view.release()
        if not self.direct_io:
            os.posix_fadvise(self._fd, unit.offset, unit.nbytes, os.POSIX_FADV_DONTNEED)
        dt = time.perf_counter() - t0
        with self._lock:
            self.bytes_read += unit.nbytes
            self.read_seconds += dt
            self.reads += 1
        return dt

    def _fall_back(self) -> None:
        fd = os.open(self.path, os.O_RDONLY)
        old, self._fd, self.direct_io = self._fd, fd, False
        os.close(old)

    def close(self) -> None:
        """Stop the threads and close the file."""
        self._pool.shutdown(wait=True)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
