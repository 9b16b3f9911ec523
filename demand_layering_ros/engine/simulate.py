# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The pipeline model: the delay a configuration will have, replayed on a profile's figures.

``simulate`` takes the plan the executor would run (the policy's loads, places, gates and
requests: the same code, not a copy of its rules) and replays it in time: the disk serves the
requests first to last, each once its gate visit was entered; a visit's compute starts when the
previous compute ended and its load is ready; compute is slower while reads overlap it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from . import policy
from .policy import Config, IOSettings, Layout, Mode, Plan


@dataclass(frozen=True)
class Pipeline:
    """The figures the simulator needs (a :class:`profile.Profile` provides them)."""

    layout: Layout
    read_s: tuple[float, ...]         # per unit: its read alone (sequential)
    compute_s: tuple[float, ...]      # per visit: from its weights ready to the next visit
    prologue_s: float = 0.0           # compute before the first unit
    # bytes per second the disk delivers while streaming (several requests in flight, compute
    # running beside it); 0: from ``read_s``
    stream_bps: float = 0.0
    # from a read's end until the waiting compute thread runs again (thread hand-off)
    handoff_s: float = 0.0
    # compute overlapping reads takes this many times longer (the cores are shared)
    compute_contention: float = 1.0
    io: IOSettings = field(default_factory=IOSettings)
    # a visit whose compute thread had to wait for its unit starts this much slower (the
    # compute threads went to sleep meanwhile and must wake up: CPU only)
    wake_s: float = 0.0

    @property
    def nbytes(self) -> tuple[int, ...]:
        """Bytes per unit."""
        return self.layout.nbytes

    @property
    def visits(self) -> tuple[int, ...]:
        """The unit of each visit."""
        return self.layout.visits

    @property
    def compute_total_s(self) -> float:
        """The delay with every unit resident (preload)."""
        return self.prologue_s + sum(self.compute_s)

    @property
    def total_bytes(self) -> int:
        """Bytes of every unit."""
        return self.layout.total_bytes

    def min_budget(self, mode: str, resident: Iterable[int] = ()) -> int:
        """See :func:`policy.min_budget`."""
        return policy.min_budget(self.layout, mode, resident, self.io)

    def plan(self, mode: str, budget: int, resident: Iterable[int] = (),
             prefetch_depth: int | None = None) -> Plan:
        """The executor's plan for this configuration (ValueError below the minimum)."""
        res = frozenset(resident)
        if budget < self.min_budget(mode, res):
            raise ValueError(f'budget {budget} is below the {mode} minimum '
                             f'{self.min_budget(mode, res)}')
        return policy.plan(self.layout, Config(Mode(mode), budget, res, prefetch_depth), self.io)


@dataclass(frozen=True)
class Prediction:
    """What :func:`simulate` predicts for one configuration."""

    latency_s: float
    stall_s: tuple[float, ...]   # per visit: compute waiting for its unit's read
    peak_bytes: int              # weight bytes held (resident, ring, staging)
    bytes_read: int
    overlap_s: tuple[float, ...] = ()   # per visit: seconds of its compute with reads running

    @property
    def stall_total_s(self) -> float:
        """All the waiting for reads."""
        return sum(self.stall_s)


def simulate(p: Pipeline, mode: str, budget: int, resident: Iterable[int] = (),
             prefetch_depth: int | None = None) -> Prediction:
    """Predict one inference's delay; ValueError if the budget is below the mode's minimum."""
    plan = p.plan(mode, budget, resident, prefetch_depth)
    n = len(p.visits)
    if not plan.streams:
        return Prediction(p.compute_total_s, (0.0,) * n, plan.weight_bytes, 0, (0.0,) * n)
    streaming = plan.config.mode == Mode.PIPELINED and p.stream_bps > 0
    units = [ld.unit for ld in plan.loads]

    def duration(r: policy.Request) -> float:
        if streaming:
            return r.nbytes / p.stream_bps
        if len(r.loads) == 1:   # one load, or a part of one
            u = units[r.loads[0]]
            return p.read_s[u] * r.nbytes / p.nbytes[u]
        return sum(p.read_s[units[j]] for j in r.loads)

    entry = [0.0] * n
    ready: list[float | None] = [None] * len(plan.loads)
    finished = [0.0] * len(plan.loads)
    parts_left = list(plan.parts)
    disk_free = 0.0
    nxt = 0
    requests = plan.requests

    def serve(k: int) -> None:
        """Read every request whose gate visit (-1: the start) was entered by visit ``k``."""
        nonlocal disk_free, nxt
        while nxt < len(requests) and requests[nxt].gate <= k:
            r = requests[nxt]
            start = max(disk_free, entry[r.gate] if r.gate >= 0 else 0.0)
            disk_free = start + duration(r)
            for j in r.loads:
                finished[j] = max(finished[j], disk_free)
                parts_left[j] -= 1
                if parts_left[j] == 0:
                    ready[j] = finished[j]
            nxt += 1

    serve(-1)
    slow = p.compute_contention - 1.0 if plan.config.mode == Mode.PIPELINED else 0.0
    t = p.prologue_s
    stalls = []
    overlaps = []
    for k in range(n):
        entry[k] = t
        serve(k)
        j = plan.load_of_visit[k]
        start = t
        if j >= 0:
            r = ready[j]
            if r is None:
                raise ValueError(f'visit {k}: its load is never read (plan deadlock)')
            start = max(t, r + p.handoff_s)
        stalls.append(start - t)
        compute = p.compute_s[k] + (p.wake_s if start > t else 0.0)
        overlap = min(compute, max(0.0, disk_free - start))   # reads still running
        overlaps.append(overlap)
        t = start + compute + slow * overlap
    return Prediction(t, tuple(stalls), plan.weight_bytes, sum(r.nbytes for r in requests),
                      tuple(overlaps))
