# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The pipeline model: the delay a configuration will have, replayed on a profile's figures.

``simulate`` takes the plan the executor would run (the policy's loads, places, gates and
requests: the same code, not a copy of its rules) and replays it in time: the disk takes the
requests first to last, each once its gate visit was entered; a visit's compute starts when the
previous compute ended and its load is ready; compute is slower while reads overlap it.

Streaming, the reader threads keep up to ``queue_depth`` requests in flight and the disk shares
its throughput among them (the streaming throughput is what they get together). So the read
compute waits for finishes later than it would alone: the read-ahead requests taken beside
it take their shares of the disk. Replaying the executor's own frames (resnet152 at the
pipelined minimum, four requests in flight) with the disk served one request at a time gave
half the stalls they had (37 against 73 ms a frame) although every request started when the
executor's did. And a request does not start the moment its turn comes (its gate entered, a
reader free): it starts ``request_lag_s`` later, while the disk does nothing for it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Iterable

from . import policy
from .policy import Config, IOSettings, Layout, Mode, Plan
from .sizes import mib

INF = float('inf')


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
    # streaming: from a request's turn (its gate entered, a reader free) to its read's start,
    # holding its reader while the disk does nothing for it: the reader wakes, or finishes the
    # bookkeeping (and sampled checksum) of its last read, or waits for a lock or a staging slot
    # (resnet152 at the pipelined minimum with one reader: 55-120 us a request on average,
    # 14-28 ms a frame, which replaying its frames without it left out)
    request_lag_s: float = 0.0

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
        minimum = self.min_budget(mode, res)
        if budget < minimum:
            asked, least = mib(budget, minimum, exact={minimum})
            raise ValueError(f'budget {asked} is below the {mode} minimum of {least}')
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

    # read_s are times of a unit read alone: those requests are replayed one at a time
    disk = (_Disk(plan.io.queue_depth, len(plan.requests), p.request_lag_s) if streaming
            else _Disk(1, len(plan.requests)))
    requests_of: list[list[int]] = [[] for _ in plan.loads]
    for i, r in enumerate(plan.requests):
        for j in r.loads:
            requests_of[j].append(i)
    gates = [r.gate for r in plan.requests]
    entry = [0.0] * n
    nxt = 0

    def submit(k: int) -> None:
        """Hand the disk every request whose gate visit (-1: the start) was entered by ``k``."""
        nonlocal nxt
        while nxt < len(gates) and gates[nxt] <= k:
            r = plan.requests[nxt]
            disk.submit(entry[r.gate] if r.gate >= 0 else 0.0, nxt, duration(r))
            nxt += 1

    submit(-1)
    slow = p.compute_contention - 1.0 if plan.config.mode == Mode.PIPELINED else 0.0
    t = p.prologue_s
    stalls = []
    overlaps = []
    load_of_visit, compute_s = plan.load_of_visit, p.compute_s
    handoff, wake = p.handoff_s, p.wake_s
    for k in range(n):
        entry[k] = t
        submit(k)
        j = load_of_visit[k]
        start = t
        if j >= 0:
            mine = requests_of[j]
            if not mine or max(mine) >= nxt:
                raise ValueError(f'visit {k}: its load is never read (plan deadlock)')
            ready = (disk.finish(mine[0]) if len(mine) == 1
                     else max(disk.finish(i) for i in mine))
            start = max(t, ready + handoff)
        stalls.append(start - t)
        compute = compute_s[k] + (wake if start > t else 0.0)
        overlap = min(compute, disk.backlog(start))   # reads still running
        overlaps.append(overlap)
        t = start + compute + slow * overlap
    return Prediction(t, tuple(stalls), plan.weight_bytes,
                      sum(r.nbytes for r in plan.requests), tuple(overlaps))


class _Disk:
    """Requests taken first to last, up to ``depth`` in flight sharing the disk equally.

    A request's work is the seconds it takes with the disk to itself; with k requests reading
    each progresses at 1 / k of that pace, so the disk does one second of work a second
    whenever it has any. A taken request reads from ``lag`` seconds later on (it holds its
    place among the ``depth`` meanwhile).
    """

    def __init__(self, depth: int, requests: int, lag: float = 0.0) -> None:
        self.depth = depth
        self.lag = lag
        self.now = 0.0
        self.waiting: deque[tuple[float, int, float]] = deque()  # (arrival, request, work)
        self.waiting_work = 0.0                                  # their work, summed
        # taken, not reading yet: (its read's start, request, work); starts in taking order
        self.lagging: deque[tuple[float, int, float]] = deque()
        self.lagging_work = 0.0
        self.flight: dict[int, float] = {}                       # reading: request -> work left
        self.done: list[float | None] = [None] * requests

    def submit(self, at: float, i: int, work: float) -> None:
        """Request ``i`` may be taken from ``at`` on (after every request submitted before)."""
        self.waiting.append((at, i, work))
        self.waiting_work += work

    def finish(self, i: int) -> float:
        """When request ``i`` (submitted) is done."""
        done = self.done
        while done[i] is None:
            self._step(INF)
        return done[i]

    def backlog(self, at: float) -> float:
        """Seconds of work left at ``at`` (reads still running), everything submitted by then."""
        while self.now < at and (self.flight or self.lagging or self.waiting):
            self._step(at)
        return sum(self.flight.values()) + self.lagging_work + self.waiting_work

    def _step(self, until: float) -> None:
        """Take what may be taken, then run to the next completion, arrival, start or ``until``."""
        flight, lagging, waiting, now = self.flight, self.lagging, self.waiting, self.now
        taken = len(flight) + len(lagging)
        while waiting and taken < self.depth and waiting[0][0] <= now:
            _, i, work = waiting.popleft()
            self.waiting_work -= work
            lagging.append((now + self.lag, i, work))
            self.lagging_work += work
            taken += 1
        while lagging and lagging[0][0] <= now:
            _, i, work = lagging.popleft()
            self.lagging_work -= work
            flight[i] = work
        arrival = waiting[0][0] if waiting and taken < self.depth else INF
        starts = lagging[0][0] if lagging else INF
        if not flight:
            if arrival == starts == INF:
                raise ValueError('the disk waits for a request that was never submitted')
            self.now = min(arrival, starts, until)
            return
        share = len(flight)
        first = min(flight.values())
        completes = now + first * share
        end = min(completes, arrival, starts, until)
        ran = first if end == completes else (end - now) / share
        for i in list(flight):
            flight[i] -= ran
            if flight[i] <= 1e-12:
                del flight[i]
                self.done[i] = end
        self.now = end
