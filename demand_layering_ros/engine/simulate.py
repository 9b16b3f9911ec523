# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The pipeline model: the least budget a mode needs, and the delay a configuration will have.

``simulate`` replays the executor's own rules on a profile's figures: reads are submitted in
schedule order, on one reader thread, as far as the horizon (mode and prefetch depth) and the
budget allow, at the moments the executor submits them (before the forward and on entering each
unit); a unit is released when its visit ends (parents that hold children when their forward
returns); compute of a visit starts when both the previous compute and the unit's read are done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence


def min_budget(nbytes: Sequence[int], visits: Sequence[tuple[int, Sequence[int]]], mode: str,
               resident: Iterable[int] = (), *, staging: bool = False) -> int:
    """The least budget ``mode`` accepts: resident bytes plus the most held at one visit.

    ``visits`` are (unit, units held by running parents) in schedule order. Pipelined mode holds
    the next unit too; ``staging`` adds a host buffer for the unit being copied (CUDA), also
    to preload, whose units pass through one on their way to the device.
    """
    total = sum(nbytes)
    staged = total + (max(nbytes, default=0) if staging else 0)  # all resident, one in transit
    if mode == 'preload':
        return staged
    res = set(resident)
    need = 0
    for k, (u, holds) in enumerate(visits):
        together = {u, *holds}
        if mode == 'pipelined' and k + 1 < len(visits):
            together.add(visits[k + 1][0])
        need = max(need, sum(nbytes[i] for i in together - res))
    if staging:
        need += max((nbytes[i] for i in set(range(len(nbytes))) - res), default=0)
    return min(sum(nbytes[i] for i in res) + need, staged)


@dataclass(frozen=True)
class Pipeline:
    """The figures the simulator needs (a :class:`profile.Profile` provides them)."""

    nbytes: tuple[int, ...]           # per unit
    read_s: tuple[float, ...]         # per unit: direct read alone
    visits: tuple[int, ...]           # unit of each visit, in execution order
    holds: tuple[tuple[int, ...], ...]  # per visit: units held by running parents
    compute_s: tuple[float, ...]      # per visit: from its weights ready to the next visit
    prologue_s: float = 0.0           # compute before the first unit
    # reads overlapping compute take this many times longer than alone (both compete for the
    # cores: page handling, syscalls, thread wake-ups); measured by the profile
    read_contention: float = 1.0
    # from a read's end until the waiting compute thread runs again (thread hand-off)
    handoff_s: float = 0.0
    staging: bool = False             # units pass through a host buffer (CUDA)
    # compute overlapping reads takes this many times longer (the cores are shared)
    compute_contention: float = 1.0

    @property
    def compute_total_s(self) -> float:
        """The delay with every unit resident (preload)."""
        return self.prologue_s + sum(self.compute_s)

    @property
    def total_bytes(self) -> int:
        """Bytes of every unit."""
        return sum(self.nbytes)

    def min_budget(self, mode: str, resident: Iterable[int] = ()) -> int:
        """See :func:`min_budget`."""
        return min_budget(self.nbytes, list(zip(self.visits, self.holds)), mode, resident,
                          staging=self.staging)


@dataclass(frozen=True)
class Prediction:
    """What :func:`simulate` predicts for one configuration."""

    latency_s: float
    stall_s: tuple[float, ...]   # per visit: compute waiting for its unit's read
    peak_bytes: int              # weight bytes held at most (resident included)
    bytes_read: int

    @property
    def stall_total_s(self) -> float:
        """All the waiting for reads."""
        return sum(self.stall_s)


def simulate(p: Pipeline, mode: str, budget: int, resident: Iterable[int] = (),
             prefetch_depth: int | None = None) -> Prediction:
    """Predict one inference's delay; ValueError if the budget is below the mode's minimum."""
    total = p.total_bytes
    n = len(p.visits)
    if mode == 'preload' or budget >= p.min_budget('preload'):
        return Prediction(p.compute_total_s, (0.0,) * n, total, 0)
    res = frozenset(resident)
    if budget < p.min_budget(mode, res):
        raise ValueError(f'budget {budget} is below the {mode} minimum '
                         f'{p.min_budget(mode, res)}')
    # the last visit (inclusive) until which a unit's parent forward keeps it held
    held_until = list(range(n))
    for k in range(n - 2, -1, -1):
        u = p.visits[k]
        j = k
        while j + 1 < n and u in p.holds[j + 1]:
            j += 1
        held_until[k] = j

    used = sum(p.nbytes[i] for i in res)
    peak = used
    bytes_read = 0
    refs: dict[int, int] = {}
    ready: dict[int, float] = {}
    hold: dict[int, int] = {}     # unit -> last visit it is held through
    reader_free = 0.0
    submitted = 0
    scale = p.read_contention if mode == 'pipelined' else 1.0
    slow = p.compute_contention - 1.0 if mode == 'pipelined' else 0.0
    stalls = []

    def release(u: int, k: int) -> None:
        nonlocal used
        if u in ready and refs.get(u, 0) <= 0 and hold.get(u, -1) < k and u not in res:
            used -= p.nbytes[u]
            del ready[u]
            refs.pop(u, None)
            hold.pop(u, None)

    def fill(now: float, horizon: int) -> None:
        nonlocal submitted, used, peak, reader_free, bytes_read
        while submitted < horizon:
            u = p.visits[submitted]
            if u in res or u in ready:
                refs[u] = refs.get(u, 0) + 1
            else:
                if used + p.nbytes[u] > budget:
                    break
                start = max(now, reader_free)
                reader_free = ready[u] = start + p.read_s[u] * scale
                refs[u] = 1
                used += p.nbytes[u]
                bytes_read += p.nbytes[u]
                peak = max(peak, used)
            submitted += 1

    def horizon(pos: int, entering: int | None) -> int:
        if mode == 'sequential':
            return 0 if entering is None else entering + 1
        return n if prefetch_depth is None else min(n, pos + prefetch_depth)

    fill(0.0, horizon(0, None))
    t = p.prologue_s
    current: int | None = None
    for k, u in enumerate(p.visits):
        if current is not None:
            refs[current] -= 1
        for v in [v for v in ready if hold.get(v, -1) < k]:  # post hooks that have fired
            release(v, k)
        fill(t, horizon(k, k))
        if submitted <= k:
            raise ValueError(f'visit {k}: unit {u} does not fit the budget')
        start = max(t, ready[u] + p.handoff_s) if u in ready else t
        stalls.append(start - t)
        overlap = min(p.compute_s[k], max(0.0, reader_free - start))  # reads still queued
        t = start + p.compute_s[k] + slow * overlap
        if u not in res:
            hold[u] = max(hold.get(u, -1), held_until[k])
        current = u
    return Prediction(t, tuple(stalls), peak, bytes_read)
