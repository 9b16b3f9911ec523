# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The layer store: opening and validating a store file, and facts about its units.

The file format (a safetensors file whose tensors are grouped into 4 KiB-aligned units) is
described and owned by ``format.py``; export is in ``export.py``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence, TYPE_CHECKING
import zlib

import torch

from .align import ALIGN
from .errors import StoreCorruptError, StoreFormatError
from .format import MAX_HEADER, parse_header, Unit

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ['ALIGN', 'LayerStore', 'Unit']


class LayerStore:
    """A validated, read-only view of a layer store file (only the header is read on open)."""

    def __init__(self, path: Path, units: tuple[Unit, ...], schedule: tuple[int, ...],
                 holds: dict[int, tuple[int, ...]], model: str, data_start: int) -> None:
        self.path = path
        self.units = units
        self.schedule = schedule
        self.holds = holds
        self.model = model
        self.data_start = data_start
        self.by_name = {u.name: u for u in units}

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def export(cls, model: torch.nn.Module, path: str | os.PathLike[str],
               example_inputs: Sequence[Any], **kwargs: Any) -> 'LayerStore':
        """Write ``model``'s parameters and buffers as a store; see :func:`export.export_store`."""
        from .export import export_store
        export_store(model, path, example_inputs, **kwargs)
        return cls.open(path)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> 'LayerStore':
        """Open and validate the header and unit table; StoreFormatError names the fault."""
        path = Path(path)
        try:
            size = path.stat().st_size
            with open(path, 'rb', buffering=0) as f:
                # no readahead: the units are read with direct I/O and must not be cached
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_RANDOM)
                head = f.read(8)
                if len(head) < 8:
                    raise StoreFormatError(f'{path}: too short to be a layer store ({size} bytes)')
                hlen = int.from_bytes(head, 'little')
                if hlen > min(size - 8, MAX_HEADER):
                    raise StoreFormatError(f'{path}: header length {hlen} exceeds the file')
                header = f.read(hlen)
                os.posix_fadvise(f.fileno(), 8 + hlen, 0, os.POSIX_FADV_DONTNEED)
        except OSError as err:
            raise StoreFormatError(f'{path}: unreadable header ({err})') from err
        t = parse_header(str(path), header, 8 + hlen, size)
        return cls(path, t.units, t.schedule, t.holds, t.model, t.data_start)

    # -- facts --------------------------------------------------------------------------------
    @property
    def total_bytes(self) -> int:
        """Bytes of all units' regions (what preloading holds)."""
        return sum(u.nbytes for u in self.units)

    @property
    def largest_unit_bytes(self) -> int:
        """Bytes of the largest unit region."""
        return max(u.nbytes for u in self.units)

    def visits(self) -> 'Iterator[tuple[int, tuple[int, ...]]]':
        """Yield (unit index, units that must stay held) for each visit of the recorded order."""
        for k, u in enumerate(self.schedule):
            yield u, self.holds.get(k, ())

    def fingerprint(self) -> str:
        """Identify the store's content cheaply (for profile invalidation)."""
        st = self.path.stat()
        crcs = zlib.crc32(b''.join(u.crc32.to_bytes(4, 'little') for u in self.units))
        return f'{st.st_size}-{crcs:08x}'

    def verify(self, unit: Unit, data: memoryview | bytes) -> None:
        """Raise StoreCorruptError unless ``data`` (the unit's region) matches its checksum."""
        crc = zlib.crc32(data)
        if crc != unit.crc32:
            raise StoreCorruptError(f'{self.path}: unit {unit.index} {unit.name!r} is corrupt '
                                    f'(crc32 {crc:08x}, expected {unit.crc32:08x})')

    def tensors_of(self, unit: Unit, region: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of the unit's tensors inside ``region`` (a uint8 tensor holding the unit)."""
        out = {}
        for t in unit.tensors:
            flat = region[t.offset:t.offset + t.nbytes]
            out[t.key] = flat.view(t.dtype).view(t.shape)
        return out
