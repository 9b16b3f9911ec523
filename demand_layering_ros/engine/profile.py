# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Profiles: per-unit read time and per-visit compute time of one store on one machine.

A profile is measured by running the executor in ``sequential`` mode at its minimum budget, so
reads and compute never overlap (each is measured alone) and the process never holds more than
one unit: profiling is safe on the robot at start-up. It is saved as JSON next to the store and
reused while the store, the device, the input shape and the thread count stay the same.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import json
import os
from pathlib import Path
import statistics
import time
from typing import Any, Callable, Sequence

import torch

from .simulate import Pipeline

VERSION = 3


@dataclass(frozen=True)
class ProfileKey:
    """What a profile is valid for."""

    store: str          # LayerStore.fingerprint()
    device: str
    input_shape: str    # e.g. '1x3x480x640'
    threads: int

    def filename(self, store_path: Path) -> Path:
        """Where the profile of this key lives: next to the store."""
        return store_path.with_name(
            f'{store_path.name}.{self.device.replace(":", "")}-{self.input_shape}'
            f'-t{self.threads}.profile.json')


@dataclass(frozen=True)
class Profile:
    """Measured figures of one store; ``pipeline`` feeds the simulator."""

    key: ProfileKey
    pipeline: Pipeline
    unit_names: tuple[str, ...]
    runs: int
    direct_io: bool

    @property
    def read_bandwidth_bps(self) -> float:
        """Bytes per second of the units read one after the other (what streaming sees)."""
        seconds = sum(self.pipeline.read_s)
        return self.pipeline.total_bytes / seconds if seconds else 0.0

    def remaining_s(self, visits_done: int) -> float:
        """Predicted compute still to come after ``visits_done`` visits (for deadline aborts)."""
        return sum(self.pipeline.compute_s[visits_done:])

    def to_json(self) -> dict[str, Any]:
        """Plain data for the JSON file."""
        p = self.pipeline
        return {'version': VERSION, 'key': asdict(self.key), 'runs': self.runs,
                'direct_io': self.direct_io, 'unit_names': list(self.unit_names),
                'nbytes': list(p.nbytes), 'read_s': list(p.read_s), 'visits': list(p.visits),
                'holds': [list(h) for h in p.holds], 'compute_s': list(p.compute_s),
                'prologue_s': p.prologue_s, 'read_contention': p.read_contention,
                'handoff_s': p.handoff_s, 'compute_contention': p.compute_contention}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> 'Profile':
        """Inverse of :meth:`to_json`; KeyError/TypeError/ValueError on a bad file."""
        if d.get('version') != VERSION:
            raise ValueError(f'profile version {d.get("version")!r}, expected {VERSION}')
        pipe = Pipeline(tuple(int(b) for b in d['nbytes']), tuple(float(s) for s in d['read_s']),
                        tuple(int(v) for v in d['visits']),
                        tuple(tuple(int(i) for i in h) for h in d['holds']),
                        tuple(float(s) for s in d['compute_s']), float(d['prologue_s']),
                        float(d['read_contention']), float(d['handoff_s']),
                        str(d['key']['device']).startswith('cuda'),
                        float(d['compute_contention']))
        if not (len(pipe.visits) == len(pipe.holds) == len(pipe.compute_s)
                and len(pipe.nbytes) == len(pipe.read_s)
                and all(0 <= v < len(pipe.nbytes) for v in pipe.visits)):
            raise ValueError('inconsistent profile tables')
        return cls(ProfileKey(**d['key']), pipe, tuple(d['unit_names']), int(d['runs']),
                   bool(d['direct_io']))

    def save(self, store_path: Path) -> Path:
        """Write the profile next to the store (atomically); return its path."""
        path = self.key.filename(store_path)
        tmp = path.with_name(path.name + '.partial')
        tmp.write_text(json.dumps(self.to_json()))
        os.replace(tmp, path)
        return path


def shape_key(inputs: Sequence[Any]) -> str:
    """The input shape part of a profile key ('1x3x480x640'; lists of images joined by '+')."""
    def one(x: Any) -> str:
        if isinstance(x, torch.Tensor):
            return 'x'.join(str(s) for s in x.shape)
        if isinstance(x, (list, tuple)):
            return '+'.join(one(t) for t in x)
        return type(x).__name__
    return '_'.join(one(x) for x in inputs)


def key_for(dl: Any, inputs: Sequence[Any]) -> ProfileKey:
    """The profile key of a DemandLayeredModel running ``inputs`` in this process."""
    return ProfileKey(dl.store.fingerprint(), str(dl.device), shape_key(inputs),
                      torch.get_num_threads())


def load(dl: Any, inputs: Sequence[Any]) -> Profile | None:
    """The saved profile for this store, device, input and thread count, or None."""
    key = key_for(dl, inputs)
    path = key.filename(dl.store.path)
    try:
        prof = Profile.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if prof.key != key or prof.pipeline.nbytes != tuple(u.nbytes for u in dl.store.units):
        return None
    return prof


def measure(dl: Any, inputs: Sequence[Any], *, runs: int = 3, warmup: int = 1,
            sync: Callable[[], None] | None = None) -> Profile:
    """Measure a profile: ``warmup`` + ``runs`` sequential inferences at the minimum budget.

    The executor's configuration is restored afterwards. Per unit the read time is the median
    of its reads; per visit the compute time is the median of (next visit entered - this visit's
    weights ready). Inferences whose visit order differs from the first run's are not used.
    Then ``runs`` pipelined inferences at the pipelined minimum measure how much slower reads
    are while compute runs (``read_contention``) and how much slower compute is while reads run
    (``compute_contention``, per second of overlap).
    """
    old = dl.config

    def traced(n: int) -> list[tuple[list[tuple[int, float, float, float]], float, float]]:
        out = []
        for _ in range(n):
            trace: list[tuple[int, float, float, float]] = []
            t0 = time.perf_counter()
            dl.infer(*inputs, trace=trace)
            if sync is not None:
                sync()
            out.append((trace, t0, time.perf_counter()))
        return out

    try:
        dl.reconfigure(mode='sequential', budget_bytes=dl.min_budget('sequential'), resident=())
        traces = traced(warmup + runs)[warmup:]
        dl.reconfigure(mode='pipelined', budget_bytes=dl.min_budget('pipelined'), resident=())
        overlapped = traced(1 + runs)[1:]
    finally:
        dl.reconfigure(mode=old.mode, budget_bytes=old.budget_bytes, resident=old.resident,
                       prefetch_depth=old.prefetch_depth)
    visits = [u for u, *_ in traces[0][0]]
    traces = [t for t in traces if [u for u, *_ in t[0]] == visits]
    n_units = len(dl.store.units)
    reads: list[list[float]] = [[] for _ in range(n_units)]
    compute: list[list[float]] = [[] for _ in visits]
    prologue = []
    for trace, t0, t1 in traces:
        prologue.append(trace[0][1] - t0 if trace else t1 - t0)
        for k, (u, _arrived, ready, read_s) in enumerate(trace):
            nxt = trace[k + 1][1] if k + 1 < len(trace) else t1
            compute[k].append(nxt - ready)
            if read_s > 0:
                reads[u].append(read_s)
    units = dl.store.units
    sec_per_byte = (sum(sum(r) for r in reads)
                    / max(1, sum(len(r) * units[u].nbytes for u, r in enumerate(reads))))
    read_s = tuple(statistics.median(r) if r else units[u].nbytes * sec_per_byte
                   for u, r in enumerate(reads))
    handoff = [ready - arrived - s for tr, *_ in traces for _u, arrived, ready, s in tr if s > 0]
    alone = sum(read_s[u] for tr, *_ in overlapped for u, _a, _r, s in tr if s > 0)
    contended = sum(s for tr, *_ in overlapped for _u, _a, _r, s in tr if s > 0)
    seq_compute = sum(statistics.median(c) for c in compute)
    slowdown = []
    for tr, _t0, t1 in overlapped:
        if [u for u, *_ in tr] != visits:
            continue
        pipelined = sum((tr[k + 1][1] if k + 1 < len(tr) else t1) - tr[k][2]
                        for k in range(len(tr)))
        overlap = min(seq_compute, sum(s for *_, s in tr))
        if overlap > 0:
            slowdown.append(1.0 + (pipelined - seq_compute) / overlap)
    schedule = list(dl.store.schedule)
    holds = tuple(dl.store.holds.get(k, ()) for k in range(len(schedule))) \
        if visits == schedule else tuple(() for _ in visits)
    pipe = Pipeline(tuple(u.nbytes for u in units), read_s, tuple(visits), holds,
                    tuple(statistics.median(c) for c in compute), statistics.median(prologue),
                    max(1.0, contended / alone) if alone else 1.0,
                    max(0.0, statistics.median(handoff)) if handoff else 0.0,
                    dl.device.type == 'cuda',
                    max(1.0, statistics.median(slowdown)) if slowdown else 1.0)
    return Profile(key_for(dl, inputs), pipe, tuple(u.name for u in units), len(traces),
                   dl.stats()['direct_io'])


def load_or_measure(dl: Any, inputs: Sequence[Any], **kwargs: Any) -> Profile:
    """The saved profile if still valid, otherwise a new one (saved next to the store)."""
    prof = load(dl, inputs)
    if prof is None:
        prof = measure(dl, inputs, **kwargs)
        try:
            prof.save(dl.store.path)
        except OSError:
            pass  # a read-only store location: the profile is still used for this run
    return prof
