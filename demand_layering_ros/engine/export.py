# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Export a module into a layer store: record the execution order, group into units, write."""

from __future__ import annotations

from dataclasses import dataclass, field
import os
from pathlib import Path
import sys
from typing import Any, Sequence
import zlib

import torch
from tqdm import tqdm

from .align import ALIGN, align_up
from .errors import StoreError, StoreExistsError
from .format import (BindingKind, data_start_for, DTYPE_NAMES, encode_header,
                     PAD_PREFIX, TENSOR_ALIGN)
from .page_cache import evict
from .slicing import slice_rows, sliceable

MERGE_BYTES = 1 << 20      # consecutive units are merged while the group stays below this
TINY_BYTES = 64 << 10      # a unit this small always joins its predecessor's group


@dataclass
class _Group:
    owners: list[str] = field(default_factory=list)
    nbytes: int = 0
    standalone: bool = False
    rows: tuple[int, int] | None = None  # an output slice of its one owner


def owned_tensors(module: torch.nn.Module) -> list[tuple[str, str, torch.Tensor]]:
    """(attr, kind, tensor) for the tensors a module owns directly (not through children)."""
    out = [(n, 'parameter', p) for n, p in module._parameters.items() if p is not None]
    out += [(n, 'buffer', b) for n, b in module._buffers.items() if b is not None]
    return out


def record_order(model: torch.nn.Module, example_inputs: Sequence[Any]
                 ) -> list[tuple[str, tuple[str, ...]]]:
    """Run one forward pass; return (owner module path, active owner paths) per owner entry."""
    owners = {name: m for name, m in model.named_modules() if owned_tensors(m)}
    events: list[tuple[str, tuple[str, ...]]] = []
    stack: list[str] = []
    handles = []

    def pre(name: str):
        def hook(_module, _args):
            events.append((name, tuple(stack)))
            stack.append(name)
        return hook

    def post(_module, _args, _out):
        stack.pop()

    for name, m in owners.items():
        handles.append(m.register_forward_pre_hook(pre(name)))
        handles.append(m.register_forward_hook(post, always_call=True))
    try:
        with torch.no_grad():
            model(*example_inputs)
    finally:
        for h in handles:
            h.remove()
    return events


def plan_units(
        model: torch.nn.Module, events: list[tuple[str, tuple[str, ...]]],
        merge_bytes: int = MERGE_BYTES, slice_bytes: int | None = None
) -> tuple[list[tuple[list[str], tuple[int, int] | None]], list[int], dict[int, list[int]]]:
    """Group owner modules into units in first-use order; return (units, schedule, holds).

    Each unit is (owner module paths, output rows or None). With ``slice_bytes``, a large plain
    Linear / Conv2d becomes one unit per slice of about that many bytes (see slicing.py).
    """
    owners = {name: m for name, m in model.named_modules() if owned_tensors(m)}
    # Modules that share a tensor (tied weights) must be one unit.
    parent = {n: n for n in owners}

    def find(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    first_owner: dict[int, str] = {}
    for name, m in owners.items():
        for _attr, _kind, t in owned_tensors(m):
            other = first_owner.setdefault(id(t), name)
            parent[find(name)] = find(other)

    order: list[str] = []
    seen: set[str] = set()
    for name, _stack in events:
        if name not in seen:
            seen.add(name)
            order.append(name)
    order += [n for n in owners if n not in seen]  # never called in the traced pass
    ancestors = {p for _n, stack in events for p in stack}

    sizes = {n: sum(t.numel() * t.element_size() for _a, _k, t in owned_tensors(owners[n]))
             for n in owners}
    tied = {find(n) for n in owners if find(n) != n}
    groups: list[_Group] = []
    root_group: dict[str, int] = {}
    sliced: dict[str, list[int]] = {}
    for name in order:
        root = find(name)
        if root in root_group:  # tied to a module already placed
            g = groups[root_group[root]]
            g.owners.append(name)
            continue
        if (slice_bytes and name in seen and name not in ancestors and root not in tied
                and sizes[name] > slice_bytes and sliceable(owners[name], slice_bytes)):
            sliced[name] = []
            for rows in slice_rows(owners[name], slice_bytes):
                sliced[name].append(len(groups))
                groups.append(_Group([name], 0, True, rows))
            root_group[root] = sliced[name][0]
            continue
        # parents that own tensors stay loaded while children run, and modules the traced pass
        # never called are loaded only on demand: neither should drag neighbours along
        standalone = name in ancestors or name not in seen
        last = groups[-1] if groups else None
        joins = (last is not None and not last.standalone and not standalone
                 and (sizes[name] <= TINY_BYTES or last.nbytes + sizes[name] <= merge_bytes))
        if not joins:
            groups.append(_Group(standalone=standalone))
        g = groups[-1]
        g.owners.append(name)
        g.nbytes += sizes[name]
        root_group[root] = len(groups) - 1

    unit_of = {n: i for i, g in enumerate(groups) for n in g.owners if n not in sliced}
    schedule: list[int] = []
    holds: dict[int, list[int]] = {}
    for name, stack in events:
        held_set = {unit_of[p] for p in stack}
        for u in sliced.get(name, [unit_of.get(name)]):
            if schedule and schedule[-1] == u:
                continue
            held = sorted(held_set - {u})
            if held:
                holds[len(schedule)] = held
            schedule.append(u)
    return [(g.owners, g.rows) for g in groups], schedule, holds


def export_store(model: torch.nn.Module, path: str | os.PathLike[str],
                 example_inputs: Sequence[Any], *, overwrite: bool = False,
                 merge_bytes: int = MERGE_BYTES, slice_bytes: int | None = None,
                 progress: bool | None = None) -> Path:
    """Write every parameter and buffer of ``model`` into a layer store at ``path``.

    ``example_inputs`` are the positional arguments of one forward call; the pass records the order
    in which modules use their tensors. The file is written to a temporary name and renamed, so a
    failed export leaves nothing behind; an existing file is kept unless ``overwrite``.
    ``slice_bytes`` splits large Linear / Conv2d weights into output slices of about that size.
    """
    path = Path(path)
    if path.is_dir():
        raise StoreError(f'{path} is a directory; give the store file to write')
    if path.exists() and not overwrite:
        raise StoreExistsError(f'{path} exists; pass overwrite=True (--overwrite) to replace it')
    model = model.eval()
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t.device.type == 'meta':
            raise StoreError(f'cannot export {name!r}: its weights were never materialised')
    events = record_order(model, example_inputs)
    units, schedule, holds = plan_units(model, events, merge_bytes, slice_bytes)
    modules = dict(model.named_modules())

    header: dict[str, Any] = {}
    table_units = []
    tensors_by_unit: list[list[tuple[str, torch.Tensor]]] = []
    cursor = 0
    pad_id = 0
    stored: dict[int, str] = {}
    for index, (owners, rows) in enumerate(units):
        start = cursor
        keys: list[str] = []
        bindings = []
        unit_tensors = []
        for owner in owners:
            for attr, kind, t in owned_tensors(modules[owner]):
                key = stored.get(id(t)) if rows is None else None
                if rows is not None:
                    t = t[rows[0]:rows[1]]
                    kind = BindingKind.SLICE
                if key is None:
                    key = f'{owner}.{attr}' if owner else attr
                    if rows is not None:
                        key += f'[{rows[0]}:{rows[1]}]'
                    else:
                        stored[id(t)] = key
                    aligned = start + align_up(cursor - start, TENSOR_ALIGN)
                    if aligned > cursor:
                        header[f'{PAD_PREFIX}{pad_id}'] = _pad_entry(cursor, aligned)
                        pad_id += 1
                    nbytes = t.numel() * t.element_size()
                    if t.dtype not in DTYPE_NAMES:
                        raise StoreError(f'{key}: dtype {t.dtype} cannot be stored')
                    header[key] = {'dtype': DTYPE_NAMES[t.dtype], 'shape': list(t.shape),
                                   'data_offsets': [aligned, aligned + nbytes]}
                    keys.append(key)
                    unit_tensors.append((key, t))
                    cursor = aligned + nbytes
                bindings.append([owner, attr, kind, key])
        end = start + max(align_up(cursor - start, ALIGN), ALIGN)
        if end > cursor:
            header[f'{PAD_PREFIX}{pad_id}'] = _pad_entry(cursor, end)
            pad_id += 1
        cursor = end
        name = owners[0] if len(owners) == 1 else f'{owners[0]}+{len(owners) - 1}'
        entry = {'name': name or '<root>', 'offset': start, 'nbytes': end - start,
                 'crc32': 0, 'tensors': keys, 'bindings': bindings, 'modules': owners}
        if rows is not None:  # no hooks: the executor computes the module slice by slice
            entry.update(name=f'{name}[{rows[0]}:{rows[1]}]', modules=[],
                         slice=[owners[0], rows[0], rows[1]])
        table_units.append(entry)
        tensors_by_unit.append(unit_tensors)

    table = {'model': type(model).__name__, 'units': table_units, 'schedule': schedule,
             'holds': {str(k): v for k, v in holds.items()}}
    data_start = data_start_for(header, table)
    tmp = path.with_name(path.name + '.partial')
    crcs = []
    show = sys.stderr.isatty() if progress is None else progress
    try:
        with open(tmp, 'wb') as f:
            f.write(b'\0' * data_start)
            bar = tqdm(total=cursor, unit='B', unit_scale=True, desc=f'export {path.name}',
                       disable=not show)
            for meta, unit_tensors in zip(table_units, tensors_by_unit):
                region = bytearray(meta['nbytes'])
                for key, t in unit_tensors:
                    lo, hi = header[key]['data_offsets']
                    lo -= meta['offset']
                    raw = t.detach().to('cpu').contiguous().reshape(-1).view(torch.uint8)
                    region[lo:lo + (hi - header[key]['data_offsets'][0])] = raw.numpy().tobytes()
                crcs.append(zlib.crc32(region))
                f.write(region)
                bar.update(len(region))
            bar.close()
            for meta, crc in zip(table_units, crcs):
                meta['crc32'] = crc
            f.seek(0)
            f.write(encode_header(header, table, data_start))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass   # e.g. a read-only directory: the error that matters is the one raised
        raise
    evict(path)  # what was just written is not a cached copy the executor should count on
    return path


def _pad_entry(lo: int, hi: int) -> dict[str, Any]:
    return {'dtype': 'U8', 'shape': [hi - lo], 'data_offsets': [lo, hi]}
