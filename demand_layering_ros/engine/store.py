# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The layer store: a safetensors file whose tensors are grouped into 4 KiB-aligned units.

File layout (a valid safetensors file; ``safetensors.torch.load_file`` reads it):
8-byte little-endian header length, JSON header (padded with spaces so the data starts on a
4096-byte boundary), then the data. Every unit is one contiguous region that starts on a 4096-byte
boundary and whose length is a multiple of 4096, so one unit is one direct read. Gaps (alignment
padding) are covered by ``__pad__.N`` uint8 tensors, because safetensors requires the data to be
covered without holes. The unit table, the recorded execution order (``schedule``) and per-unit
CRC-32 checksums are in the header's ``__metadata__`` under ``demand_layering``.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import os
from pathlib import Path
import struct
from typing import Any, Sequence, TYPE_CHECKING
import zlib

import torch

from .errors import StoreCorruptError, StoreFormatError

if TYPE_CHECKING:
    from collections.abc import Iterator

FORMAT = 'demand_layering/1'
ALIGN = 4096
TENSOR_ALIGN = 64
PAD_PREFIX = '__pad__.'

DTYPES: dict[str, torch.dtype] = {
    'F64': torch.float64, 'F32': torch.float32, 'F16': torch.float16, 'BF16': torch.bfloat16,
    'I64': torch.int64, 'I32': torch.int32, 'I16': torch.int16, 'I8': torch.int8,
    'U8': torch.uint8, 'BOOL': torch.bool,
}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}


def align_up(n: int, to: int = ALIGN) -> int:
    """Round ``n`` up to a multiple of ``to``."""
    return (n + to - 1) // to * to


@dataclass(frozen=True)
class TensorEntry:
    """One stored tensor: where it lies inside its unit."""

    key: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    offset: int  # bytes from the start of the unit
    nbytes: int


@dataclass(frozen=True)
class Binding:
    """A module attribute that takes its value from a stored tensor."""

    module: str  # dotted module path in the skeleton ('' for the root)
    attr: str
    kind: str  # 'parameter' or 'buffer'
    key: str


@dataclass(frozen=True)
class Unit:
    """An execution unit: the tensors of one or more modules, stored as one aligned region."""

    index: int
    name: str
    offset: int  # file offset, multiple of ALIGN
    nbytes: int  # region length, multiple of ALIGN
    crc32: int
    tensors: tuple[TensorEntry, ...]
    bindings: tuple[Binding, ...]
    modules: tuple[str, ...]
    # (module path, first output row, end row) when the unit is one output slice of a large
    # Linear / Conv2d that is computed slice by slice (see slicing.py)
    slice: tuple[str, int, int] | None = None

    @property
    def payload_bytes(self) -> int:
        """Bytes of tensor data (without alignment padding)."""
        return sum(t.nbytes for t in self.tensors)


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
                (hlen,) = struct.unpack('<Q', head)
                if hlen > min(size - 8, 256 << 20):
                    raise StoreFormatError(f'{path}: header length {hlen} exceeds the file')
                header = json.loads(f.read(hlen))
                os.posix_fadvise(f.fileno(), 8 + hlen, 0, os.POSIX_FADV_DONTNEED)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise StoreFormatError(f'{path}: unreadable header ({err})') from err
        data_start = 8 + hlen
        meta = (header.pop('__metadata__', None) or {}).get('demand_layering')
        if meta is None:
            raise StoreFormatError(f'{path}: a safetensors file, but not a layer store '
                                   '(no demand_layering metadata); export it first')
        try:
            table = json.loads(meta)
        except json.JSONDecodeError as err:
            raise StoreFormatError(f'{path}: unit table is not JSON ({err})') from err
        if table.get('format') != FORMAT:
            raise StoreFormatError(f'{path}: format {table.get("format")!r}, expected {FORMAT!r}')
        units = tuple(_parse_unit(path, i, u, header, data_start)
                      for i, u in enumerate(table['units']))
        end = max((u.offset + u.nbytes for u in units), default=data_start)
        if size < end:
            last = max(units, key=lambda u: u.offset + u.nbytes)
            raise StoreFormatError(f'{path}: truncated: {size} bytes, units end at {end} '
                                   f'(unit {last.name!r} incomplete)')
        if size != end:
            raise StoreFormatError(f'{path}: {size - end} unexpected bytes after the last unit')
        schedule = tuple(int(i) for i in table['schedule'])
        if any(not 0 <= i < len(units) for i in schedule):
            raise StoreFormatError(f'{path}: schedule names a unit that does not exist')
        holds = {int(k): tuple(v) for k, v in table.get('holds', {}).items()}
        return cls(path, units, schedule, holds, table.get('model', '?'), data_start)

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


def _parse_unit(path: Path, index: int, raw: dict[str, Any], header: dict[str, Any],
                data_start: int) -> Unit:
    name = raw.get('name', f'#{index}')
    try:
        offset, nbytes = int(raw['offset']), int(raw['nbytes'])
        tensors = []
        for key in raw['tensors']:
            info = header[key]
            start, stop = info['data_offsets']
            dtype = DTYPES[info['dtype']]
            shape = tuple(int(s) for s in info['shape'])
            file_start = data_start + start
            if not offset <= file_start <= data_start + stop <= offset + nbytes:
                raise StoreFormatError(
                    f'{path}: tensor {key!r} lies outside unit {index} {name!r}')
            numel = 1
            for s in shape:
                numel *= s
            if numel * torch.empty((), dtype=dtype).element_size() != stop - start:
                raise StoreFormatError(f'{path}: tensor {key!r} in unit {name!r}: size does not '
                                       f'match its shape {shape} and dtype {info["dtype"]}')
            tensors.append(TensorEntry(key, dtype, shape, file_start - offset, stop - start))
        bindings = tuple(Binding(*b) for b in raw['bindings'])
    except StoreFormatError:
        raise
    except (KeyError, TypeError, ValueError) as err:
        raise StoreFormatError(
            f'{path}: unit {index} {name!r}: bad table entry ({err!r})') from err
    if offset % ALIGN or nbytes % ALIGN or nbytes <= 0:
        raise StoreFormatError(f'{path}: unit {index} {name!r} is not {ALIGN}-byte aligned')
    sl = raw.get('slice')
    if sl is not None:
        try:
            sl = (str(sl[0]), int(sl[1]), int(sl[2]))
        except (IndexError, TypeError, ValueError) as err:
            raise StoreFormatError(f'{path}: unit {index} {name!r}: bad slice {sl!r}') from err
        if not 0 <= sl[1] < sl[2]:
            raise StoreFormatError(f'{path}: unit {index} {name!r}: empty slice {sl!r}')
    return Unit(index, name, offset, nbytes, int(raw['crc32']), tuple(tensors), bindings,
                tuple(raw.get('modules', ())), sl)
