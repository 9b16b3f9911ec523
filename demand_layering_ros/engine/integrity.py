# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Store integrity while serving: the file's identity every frame, rolling checksums, recovery.

Two kinds of damage are watched for:

- a change through the filesystem (written, truncated, replaced, removed): the file's identity
  (device, inode, size, modification and change times) is compared with the one last verified,
  before every inference and after it (an inference the file changed under is not returned);
- corruption that leaves no trace (bit rot): with ``rolling`` verification a share of the loads
  of each frame is checked against its unit's CRC-32 as it is read, a cursor walking round the
  plan's loads, so every streamed load is checked once every ``cycle`` frames; the share is sized
  to ``FRACTION`` of the inference time at the measured checksum speed, and ``cycle`` (the
  detection bound in frames) follows from it.

A damaged store stops output (every inference raises, naming the unit or the change) until it is
good again: a file that changed again is re-validated as a whole (header, every checksum), units
found corrupt are re-read and checked before each inference.
"""

from __future__ import annotations

from dataclasses import dataclass
import enum
import math
import os

FRACTION = 0.01        # of the inference time spent on rolling checksums
MAX_CYCLE = 1000       # frames: the longest a corrupt streamed unit may go unnoticed


class Verify(enum.StrEnum):
    """How much of the store is checked against its checksums."""

    ROLLING = 'rolling'   # every unit at start, every streamed load once per cycle of frames
    ONCE = 'once'         # every unit at start (and when the file changed)
    FULL = 'full'         # every load, every frame
    NONE = 'none'         # never (identity changes are still noticed)


@dataclass(frozen=True)
class Identity:
    """What identifies the file's contents cheaply."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> 'Identity':
        """The identity in a stat result."""
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def change(self, other: 'Identity') -> str | None:
        """How ``other`` differs from this identity, in words (None: it does not)."""
        if (other.device, other.inode) != (self.device, self.inode):
            return 'replaced by another file'
        if other.size != self.size:
            return f'size changed from {self.size} to {other.size} bytes'
        if other.mtime_ns != self.mtime_ns or other.ctime_ns != self.ctime_ns:
            return 'written to (modification time changed)'
        return None


class Integrity:
    """What to check this frame, and the store's state (ok, changed, corrupt units)."""

    def __init__(self, mode: Verify | str, identity: Identity) -> None:
        self.mode = Verify(mode)
        self.identity = identity      # of the contents last verified
        self.failed_identity: Identity | None = None   # of a file that did not verify
        self.error: str | None = None  # why output is stopped
        self.suspect: set[int] = set()  # units whose loads failed their checksum
        self.cycle = 1
        self.frame = 0
        self.checked_bytes = 0
        self.check_seconds = 0.0
        self._chosen: set[int] = set()
        self._cursor = 0
        self._latency_s = 0.0

    @property
    def crc_bps(self) -> float:
        """Checksum speed measured so far (bytes per second)."""
        return self.checked_bytes / self.check_seconds if self.check_seconds else 0.0

    def select(self, sizes: list[int]) -> None:
        """Pick this frame's loads to check (``sizes``: bytes of each load of the plan).

        Rolling: a cursor walks round the plan's loads, taking this frame's share of bytes, so
        every load is checked once per ``cycle`` frames whatever the share is.
        """
        if self.mode != Verify.ROLLING or not sizes:
            self._chosen = set()
            return
        if self._cursor >= len(sizes):
            self._cursor = 0
        share, picked = self._share(sum(sizes)), set()
        while share > 0 and len(picked) < len(sizes):
            picked.add(self._cursor)
            share -= sizes[self._cursor]
            self._cursor = (self._cursor + 1) % len(sizes)
        self._chosen = picked
        per_frame = max(1, sum(sizes[j] for j in picked))
        self.cycle = min(MAX_CYCLE, math.ceil(sum(sizes) / per_frame))

    def chosen(self, load: int) -> bool:
        """Check load ``load`` of this frame's plan?"""
        return self.mode == Verify.FULL or load in self._chosen

    def checked(self, nbytes: int, seconds: float) -> None:
        """A checksum over ``nbytes`` took ``seconds``."""
        self.checked_bytes += nbytes
        self.check_seconds += seconds

    def end_frame(self, latency_s: float) -> None:
        """A frame ended after ``latency_s`` seconds: the next share is sized from it."""
        self.frame += 1
        self._latency_s = latency_s

    def _share(self, streamed: int) -> float:
        """Bytes to check this frame: FRACTION of the inference time at the checksum speed."""
        if not self._latency_s or not self.crc_bps:
            return streamed / 8   # until both are measured
        return FRACTION * self._latency_s * self.crc_bps
