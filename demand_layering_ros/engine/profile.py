# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Profiles: the disk, per-unit read time and per-visit compute time of one store on one machine.

A profile is measured by the executor itself, never holding more than the minimum budget (safe
at start-up on the robot): first a short probe of the disk (direct reads of the store at a few
request sizes and depths; the best becomes the executor's I/O settings), then ``sequential``
inferences at the minimum, where reads and compute never overlap, so each is measured alone;
then ``pipelined`` ones at the minimum, which give the disk's throughput while streaming beside
compute, how much slower compute is while reads run, and how long a request waits for a reader
once its turn came. On CUDA the compute times come from events on the compute stream (the GPU's
time, no synchronisation per unit). It is saved as JSON next to the store and reused while the
store, the device, the input shape and the thread count stay the same.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import json
import os
from pathlib import Path
import statistics
import threading
import time
from typing import Any, Sequence

import torch

from .arena import HostArena
from .policy import IOSettings, Layout
from .simulate import Pipeline

VERSION = 6
PROBE_SIZES = (1 << 20, 2 << 20, 4 << 20, 8 << 20)
PROBE_DEPTHS = (1, 2, 4)
PROBE_BYTES = 48 << 20      # read per probe setting (less for small stores)
GOOD_ENOUGH = 0.95          # the smallest request size and depth within 5% of the best
WAITED_S = 1e-4             # a visit whose unit came this much after it was entered waited


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
    # (request bytes, depth) -> bytes per second, direct reads alone
    disk: tuple[tuple[int, int, float], ...] = ()

    @property
    def read_bandwidth_bps(self) -> float:
        """Bytes per second of the units read one after the other (what sequential sees)."""
        seconds = sum(self.pipeline.read_s)
        return self.pipeline.total_bytes / seconds if seconds else 0.0

    @property
    def disk_best_bps(self) -> float:
        """The disk's best direct-read bandwidth in the probe."""
        return max((bw for *_, bw in self.disk), default=0.0)

    def remaining_s(self, visits_done: int) -> float:
        """Predicted compute still to come after ``visits_done`` visits (for deadline aborts)."""
        return sum(self.pipeline.compute_s[visits_done:])

    def to_json(self) -> dict[str, Any]:
        """Plain data for the JSON file."""
        p = self.pipeline
        lay = p.layout
        return {'version': VERSION, 'key': asdict(self.key), 'runs': self.runs,
                'direct_io': self.direct_io, 'unit_names': list(self.unit_names),
                'nbytes': list(lay.nbytes), 'offsets': list(lay.offsets),
                'visits': list(lay.visits), 'holds': [list(h) for h in lay.holds],
                'staging': lay.staging, 'read_s': list(p.read_s),
                'compute_s': list(p.compute_s), 'prologue_s': p.prologue_s,
                'stream_bps': p.stream_bps, 'handoff_s': p.handoff_s,
                'compute_contention': p.compute_contention, 'io': asdict(p.io),
                'wake_s': p.wake_s, 'request_lag_s': p.request_lag_s,
                'disk': [list(d) for d in self.disk]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> 'Profile':
        """Inverse of :meth:`to_json`; KeyError/TypeError/ValueError on a bad file."""
        if d.get('version') != VERSION:
            raise ValueError(f'profile version {d.get("version")!r}, expected {VERSION}')
        lay = Layout(tuple(int(b) for b in d['nbytes']), tuple(int(v) for v in d['visits']),
                     tuple(tuple(int(i) for i in h) for h in d['holds']),
                     tuple(int(o) for o in d['offsets']), bool(d['staging']))
        pipe = Pipeline(lay, tuple(float(s) for s in d['read_s']),
                        tuple(float(s) for s in d['compute_s']), float(d['prologue_s']),
                        float(d['stream_bps']), float(d['handoff_s']),
                        float(d['compute_contention']), IOSettings(**d['io']),
                        float(d['wake_s']), float(d['request_lag_s']))
        if not (len(lay.visits) == len(lay.holds) == len(pipe.compute_s)
                and len(lay.nbytes) == len(pipe.read_s) == len(lay.offsets)
                and all(0 <= v < len(lay.nbytes) for v in lay.visits)):
            raise ValueError('inconsistent profile tables')
        disk = tuple((int(s), int(q), float(b)) for s, q, b in d['disk'])
        return cls(ProfileKey(**d['key']), pipe, tuple(d['unit_names']), int(d['runs']),
                   bool(d['direct_io']), disk)

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
    if prof.key != key or prof.pipeline.layout != dl.layout:
        return None
    return prof


def probe_disk(reader: Any, limit: int, sizes: Sequence[int] = PROBE_SIZES,
               depths: Sequence[int] = PROBE_DEPTHS, nbytes: int = PROBE_BYTES
               ) -> list[tuple[int, int, float]]:
    """Direct-read bandwidth of ``reader``'s file per (request size, depth).

    Reads the file's first ``limit`` bytes at most, through one buffer of
    ``max(sizes) * max(depths)`` bytes.
    """
    out = []
    buf = HostArena()
    try:
        buf.resize(max(sizes) * max(depths))
        for size in sizes:
            for depth in depths:
                total = min(nbytes, limit) // size * size
                if total < size * depth:
                    continue
                out.append((size, depth, _probe(reader, buf, size, depth, total)))
    finally:
        buf.release()
    return out


def _probe(reader: Any, buf: HostArena, size: int, depth: int, total: int) -> float:
    cursor = [0]
    lock = threading.Lock()

    def worker(i: int) -> None:
        while True:
            with lock:
                off = cursor[0]
                cursor[0] += size
            if off >= total:
                return
            view = buf.view(i * size, size)
            try:
                reader.read(off, view, 'disk probe')
            finally:
                view.release()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(depth)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return total / (time.perf_counter() - t0)


def wake_penalty(samples: int = 40) -> float:
    """Seconds a compute thread loses when it starts after waiting (its pool went to sleep).

    A small convolution timed straight after another and after a 2 ms wait (what a visit that
    waits for its read sees); the difference, never below 0.
    """
    x = torch.randn(1, 64, 28, 28)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1)
    pause = threading.Event()
    hot, woken = [], []
    with torch.no_grad():
        for _ in range(5):
            conv(x)
        for _ in range(samples):
            t0 = time.perf_counter()
            conv(x)
            hot.append(time.perf_counter() - t0)
            pause.wait(0.002)
            t0 = time.perf_counter()
            conv(x)
            woken.append(time.perf_counter() - t0)
    return max(0.0, statistics.median(woken) - statistics.median(hot))


def choose_io(disk: Sequence[tuple[int, int, float]], default: IOSettings) -> IOSettings:
    """The smallest request size, then depth, within 5% of the disk's best."""
    if not disk:
        return default
    best = max(bw for *_, bw in disk)
    size, depth, _bw = min((d for d in disk if d[2] >= GOOD_ENOUGH * best),
                           key=lambda d: (d[0] * d[1], d[0]))
    return IOSettings(queue_depth=depth, request_bytes=size,
                      staging_slots=max(default.staging_slots, depth))


def measure(dl: Any, inputs: Sequence[Any], *, runs: int = 3, warmup: int = 1,
            probe: bool = True) -> Profile:
    """Measure a profile (see the module's docstring); the executor keeps the probe's I/O.

    The executor's configuration is restored afterwards. Per unit the read time is the median
    of its reads; per visit the compute time is the median of (its end - its weights ready).
    Inferences whose visit order differs from the first run's are not used.
    """
    old = dl.config
    disk = probe_disk(dl.reader, dl.store.total_bytes) if probe else []
    dl.set_io(choose_io(disk, dl.io))

    def traced(n: int) -> list[list[Any]]:
        out = []
        for _ in range(n):
            trace: list[Any] = []
            dl.infer(*inputs, trace=trace)
            out.append(trace)
        return out

    try:
        dl.reconfigure(mode='sequential', budget_bytes=dl.min_budget('sequential'), resident=())
        traces = traced(warmup + runs)[warmup:]
        dl.reconfigure(mode='pipelined', budget_bytes=dl.min_budget('pipelined'), resident=())
        traced(1)
        before = dl.stats()
        overlapped = traced(runs)
        after = dl.stats()
    finally:
        dl.reconfigure(mode=old.mode, budget_bytes=old.budget_bytes, resident=old.resident,
                       prefetch_depth=old.prefetch_depth)
    wake = wake_penalty() if dl.device.type == 'cpu' else 0.0
    visits = [v.unit for v in traces[0]]
    traces = [t for t in traces if [v.unit for v in t] == visits]
    units = dl.store.units
    reads: list[list[float]] = [[] for _ in units]
    compute: list[list[float]] = [[] for _ in visits]
    prologue = []
    for trace in traces:
        prologue.append(trace[0].entered if trace else 0.0)
        for k, v in enumerate(trace):   # each sequential visit waited for its read: + wake
            compute[k].append(max(0.0, v.done - v.ready - wake))
            if v.read_s > 0:
                reads[v.unit].append(v.read_s)
    sec_per_byte = (sum(sum(r) for r in reads)
                    / max(1, sum(len(r) * units[u].nbytes for u, r in enumerate(reads))))
    read_s = tuple(statistics.median(r) if r else units[u].nbytes * sec_per_byte
                   for u, r in enumerate(reads))
    handoff = [v.handoff_s for tr in traces for v in tr if v.read_s > 0]
    compute_s = tuple(statistics.median(c) for c in compute)
    streamed = after['bytes_read'] - before['bytes_read']
    busy = after['read_seconds'] - before['read_seconds']
    lagged = after['lagged_requests'] - before['lagged_requests']
    lag = after['request_lag_seconds'] - before['request_lag_seconds']
    slowdown = []
    for tr in overlapped:
        if [v.unit for v in tr] != visits:
            continue
        waited = sum(1 for v in tr if v.ready - v.entered > WAITED_S)
        pipelined = sum(v.done - v.ready for v in tr) - wake * waited
        overlap = min(sum(compute_s), busy / max(1, len(overlapped)))
        if overlap > 0:
            slowdown.append(1.0 + (pipelined - sum(compute_s)) / overlap)
    pipe = Pipeline(dl.layout, read_s, compute_s, statistics.median(prologue),
                    streamed / busy if busy > 0 else 0.0,
                    max(0.0, statistics.median(handoff)) if handoff else 0.0,
                    max(1.0, statistics.median(slowdown)) if slowdown else 1.0, dl.io, wake,
                    lag / lagged if lagged else 0.0)
    return Profile(key_for(dl, inputs), pipe, tuple(u.name for u in units), len(traces),
                   dl.stats()['direct_io'], tuple(disk))


def load_or_measure(dl: Any, inputs: Sequence[Any], **kwargs: Any) -> Profile:
    """The saved profile if still valid, otherwise a new one (saved next to the store).

    Either way the executor reads with the profile's I/O settings afterwards.
    """
    prof = load(dl, inputs)
    if prof is None:
        prof = measure(dl, inputs, **kwargs)
        try:
            prof.save(dl.store.path)
        except OSError:
            pass  # a read-only store location: the profile is still used for this run
    else:
        dl.set_io(prof.pipeline.io)
    return prof
