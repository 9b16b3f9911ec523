# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The layer store format: its constants, records, and the header's encoding and validation.

A store is a valid safetensors file: 8-byte little-endian header length, a JSON header (padded
with spaces so the data starts on a 4096-byte boundary), then the data. Every unit is one
contiguous region that starts on a 4096-byte boundary and whose length is a multiple of 4096, so
one unit is one direct read. Gaps (alignment padding) are covered by ``__pad__.N`` uint8 tensors,
because safetensors requires the data to be covered without holes. The unit table, the recorded
execution order (``schedule``), the parents held around their children (``holds``) and per-unit
CRC-32 checksums are in the header's ``__metadata__`` under ``demand_layering``.

This module is the one owner of that layout: ``export.py`` encodes with it, ``store.py`` parses
with it, and neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
import enum
import json
import math
from typing import Any

import torch

from .align import ALIGN, align_up
from .errors import StoreFormatError

FORMAT = 'demand_layering/1'
META_KEY = 'demand_layering'
TENSOR_ALIGN = 64     # tensors inside a unit: cache-line aligned views
PAD_PREFIX = '__pad__.'
MAX_HEADER = 256 << 20

DTYPES: dict[str, torch.dtype] = {
    'F64': torch.float64, 'F32': torch.float32, 'F16': torch.float16, 'BF16': torch.bfloat16,
    'I64': torch.int64, 'I32': torch.int32, 'I16': torch.int16, 'I8': torch.int8,
    'U8': torch.uint8, 'BOOL': torch.bool,
}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}


class BindingKind(enum.StrEnum):
    """How a stored tensor reaches the skeleton."""

    PARAMETER = 'parameter'
    BUFFER = 'buffer'
    SLICE = 'slice'   # output rows of a large Linear / Conv2d weight (see slicing.py)


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
    kind: BindingKind
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


@dataclass(frozen=True)
class Table:
    """The parsed header: units, the recorded visit order and the parents held by visits."""

    units: tuple[Unit, ...]
    schedule: tuple[int, ...]
    holds: dict[int, tuple[int, ...]]
    model: str
    data_start: int


def _header_json(tensors: dict[str, Any], table: dict[str, Any], data_start: int) -> bytes:
    units = [dict(u, offset=u['offset'] + data_start) for u in table['units']]
    meta = dict(table, format=FORMAT, units=units)
    return json.dumps(dict(tensors, __metadata__={META_KEY: json.dumps(meta)}),
                      separators=(',', ':')).encode()


def data_start_for(tensors: dict[str, Any], table: dict[str, Any]) -> int:
    """Where the data must start for this header (checksums and offsets fixed-width)."""
    probe = dict(table, units=[dict(u, crc32=0xFFFFFFFF) for u in table['units']])
    return align_up(8 + len(_header_json(tensors, probe, 10 ** 12)))


def encode_header(tensors: dict[str, Any], table: dict[str, Any], data_start: int) -> bytes:
    """The ``data_start`` header bytes: length prefix, JSON, padding spaces.

    ``tensors`` are safetensors entries (dtype, shape, data_offsets relative to the data);
    ``table`` is the unit table (units, schedule, holds, model) with unit offsets relative to
    the data as well.
    """
    head = _header_json(tensors, table, data_start)
    pad = data_start - 8 - len(head)
    if pad < 0:
        raise ValueError(f'header of {len(head)} bytes does not fit before {data_start}')
    body = head + b' ' * pad
    return len(body).to_bytes(8, 'little') + body


def parse_header(where: str, header_json: bytes, data_start: int, file_size: int) -> Table:
    """Validate the header's schema and consistency; StoreFormatError names the field at fault."""
    try:
        header = json.loads(header_json)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StoreFormatError(f'{where}: header is not JSON ({err})') from err
    if not isinstance(header, dict):
        raise StoreFormatError(f'{where}: header is {type(header).__name__}, expected an object')
    meta = header.pop('__metadata__', None)
    raw = meta.get(META_KEY) if isinstance(meta, dict) else None
    if raw is None:
        raise StoreFormatError(f'{where}: a safetensors file, but not a layer store '
                               f'(no {META_KEY} metadata); export it first')
    try:
        table = json.loads(raw)
    except (TypeError, json.JSONDecodeError) as err:
        raise StoreFormatError(f'{where}: unit table is not JSON ({err})') from err
    f = _Fields(where)
    f.obj(table, 'unit table')
    if table.get('format') != FORMAT:
        raise StoreFormatError(f'{where}: format {table.get("format")!r}, expected {FORMAT!r}')
    units = tuple(_parse_unit(f, i, u, header, data_start)
                  for i, u in enumerate(f.list(table, 'units', 'unit table')))
    end = max((u.offset + u.nbytes for u in units), default=data_start)
    if file_size < end:
        last = max(units, key=lambda u: u.offset + u.nbytes)
        raise StoreFormatError(f'{where}: truncated: {file_size} bytes, units end at {end} '
                               f'(unit {last.name!r} incomplete)')
    if file_size != end:
        raise StoreFormatError(f'{where}: {file_size - end} unexpected bytes after the last unit')
    schedule = tuple(f.index(v, f'schedule[{k}]', len(units))
                     for k, v in enumerate(f.list(table, 'schedule', 'unit table')))
    raw_holds = table.get('holds', {})
    f.obj(raw_holds, 'holds')
    holds: dict[int, tuple[int, ...]] = {}
    for k, v in raw_holds.items():
        try:
            visit = int(k)
        except ValueError:
            raise StoreFormatError(f'{where}: holds key {k!r} is not a visit index') from None
        if not 0 <= visit < len(schedule):
            raise StoreFormatError(f'{where}: holds[{k}] names visit {visit}, the schedule has '
                                   f'{len(schedule)}')
        if not isinstance(v, list):
            raise StoreFormatError(f'{where}: holds[{k}] is {type(v).__name__}, expected a list')
        holds[visit] = tuple(f.index(u, f'holds[{k}][{j}]', len(units)) for j, u in enumerate(v))
    model = table.get('model', '?')
    if not isinstance(model, str):
        raise StoreFormatError(f'{where}: model is {type(model).__name__}, expected a string')
    return Table(units, schedule, holds, model, data_start)


class _Fields:
    """Typed reads from the JSON table, each error naming the field."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, field: str, value: Any, expected: str) -> StoreFormatError:
        shown = repr(value) if len(repr(value)) < 60 else f'a {type(value).__name__}'
        return StoreFormatError(f'{self.where}: {field} is {shown}, expected {expected}')

    def obj(self, value: Any, field: str) -> None:
        if not isinstance(value, dict):
            raise self.fail(field, value, 'an object')

    def get(self, d: dict[str, Any], key: str, field: str) -> Any:
        if key not in d:
            raise StoreFormatError(f'{self.where}: {field}.{key} is missing')
        return d[key]

    def int(self, d: dict[str, Any], key: str, field: str, lo: int = 0,
            hi: int | None = None) -> int:
        v = self.get(d, key, field)
        if not isinstance(v, int) or isinstance(v, bool) or v < lo or (hi is not None and v > hi):
            rng = f'an integer >= {lo}' if hi is None else f'an integer in [{lo}, {hi}]'
            raise self.fail(f'{field}.{key}', v, rng)
        return v

    def str(self, d: dict[str, Any], key: str, field: str) -> str:
        v = self.get(d, key, field)
        if not isinstance(v, str):
            raise self.fail(f'{field}.{key}', v, 'a string')
        return v

    def list(self, d: dict[str, Any], key: str, field: str) -> list[Any]:
        v = self.get(d, key, field)
        if not isinstance(v, list):
            raise self.fail(f'{field}.{key}', v, 'a list')
        return v

    def strings(self, d: dict[str, Any], key: str, field: str) -> tuple[str, ...]:
        items = self.list(d, key, field)
        for j, s in enumerate(items):
            if not isinstance(s, str):
                raise self.fail(f'{field}.{key}[{j}]', s, 'a string')
        return tuple(items)

    def index(self, v: Any, field: str, n: int) -> int:
        if not isinstance(v, int) or isinstance(v, bool):
            raise self.fail(field, v, 'an integer unit index')
        if not 0 <= v < n:
            raise StoreFormatError(f'{self.where}: {field} names unit {v}, the store has {n}')
        return v


def _parse_unit(f: _Fields, index: int, raw: Any, header: dict[str, Any],
                data_start: int) -> Unit:
    field = f'units[{index}]'
    f.obj(raw, field)
    name = f.str(raw, 'name', field)
    field = f'units[{index}] ({name!r})'
    offset = f.int(raw, 'offset', field)
    nbytes = f.int(raw, 'nbytes', field, lo=1)
    crc = f.int(raw, 'crc32', field, hi=0xFFFFFFFF)
    if offset % ALIGN or nbytes % ALIGN or offset < data_start:
        raise StoreFormatError(f'{f.where}: unit {index} {name!r} is not {ALIGN}-byte aligned '
                               f'inside the data (offset {offset}, {nbytes} bytes)')
    tensors = []
    for key in f.strings(raw, 'tensors', field):
        info = header.get(key)
        tfield = f'tensor {key!r} of unit {name!r}'
        if not isinstance(info, dict):
            raise StoreFormatError(f'{f.where}: {tfield} has no header entry')
        dtype = DTYPES.get(info.get('dtype'))  # type: ignore[arg-type]
        if dtype is None:
            raise f.fail(f'{tfield}: dtype', info.get('dtype'), f'one of {", ".join(DTYPES)}')
        shape, span = info.get('shape'), info.get('data_offsets')
        if not (isinstance(shape, list) and all(isinstance(s, int) and not isinstance(s, bool)
                                                and s >= 0 for s in shape)):
            raise f.fail(f'{tfield}: shape', shape, 'a list of sizes')
        if not (isinstance(span, list) and len(span) == 2 and all(
                isinstance(s, int) and not isinstance(s, bool) for s in span)):
            raise f.fail(f'{tfield}: data_offsets', span, '[start, end]')
        start, stop = data_start + span[0], data_start + span[1]
        if not offset <= start <= stop <= offset + nbytes:
            raise StoreFormatError(f'{f.where}: {tfield} lies outside its unit')
        if math.prod(shape) * dtype.itemsize != stop - start:
            raise StoreFormatError(f'{f.where}: {tfield}: size does not match its shape '
                                   f'{tuple(shape)} and dtype {info["dtype"]}')
        tensors.append(TensorEntry(key, dtype, tuple(shape), start - offset, stop - start))
    bindings = []
    for j, b in enumerate(f.list(raw, 'bindings', field)):
        if not (isinstance(b, list) and len(b) == 4 and all(isinstance(s, str) for s in b)):
            raise f.fail(f'{field}.bindings[{j}]', b, '[module, attr, kind, key]')
        try:
            kind = BindingKind(b[2])
        except ValueError:
            raise f.fail(f'{field}.bindings[{j}] kind', b[2],
                         f'one of {", ".join(BindingKind)}') from None
        bindings.append(Binding(b[0], b[1], kind, b[3]))
    modules = f.strings(raw, 'modules', field) if 'modules' in raw else ()
    sl = raw.get('slice')
    if sl is not None:
        if not (isinstance(sl, list) and len(sl) == 3 and isinstance(sl[0], str)
                and all(isinstance(v, int) and not isinstance(v, bool) for v in sl[1:])):
            raise f.fail(f'{field}.slice', sl, '[module, first row, end row]')
        if not 0 <= sl[1] < sl[2]:
            raise StoreFormatError(f'{f.where}: {field}: empty slice {sl!r}')
        sl = (sl[0], sl[1], sl[2])
    return Unit(index, name, offset, nbytes, crc, tuple(tensors), tuple(bindings), modules, sl)
