# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Loaders carry out a plan: they read its requests into place, ahead of compute, in order.

Reader threads (``queue_depth`` of them) take the plan's requests first to last; a request is
read once its gate visit was entered (its place is free and the horizon reaches it). The compute
thread tells the loader which visit it enters (which releases the loads whose last visit is
behind it) and waits for the load of that visit. ``HostLoader`` reads into the host arena where
compute uses the bytes in place (the paper's 2-stage form); ``CudaLoader`` reads into pinned
staging slots and copies them on a copy stream into a device arena, ordered by events, so reads,
copies and compute overlap (the 3-stage form).

Off the recorded order (data-dependent control flow) a unit is loaded on demand into free ring
space; read-ahead is taken back when that is the only way to make room.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import heapq
import threading
import time
from typing import Any

import torch

from .arena import HostArena
from .errors import BudgetError, StoreCorruptError
from .integrity import Integrity, Verify
from .policy import Plan, Region, Request
from .reader import Reader
from .store import LayerStore


@dataclass
class _Pass:
    """One inference's progress through the plan's requests."""

    plan: Plan
    priority: tuple[float, float] = (float('inf'), 0.0)   # (deadline, started): EDF order
    entered: int = -1
    next: int = 0               # next request to issue
    in_flight: int = 0
    active: bool = True
    parts_left: list[int] | None = None
    inflight_parts: list[int] | None = None
    ready: list[bool] | None = None
    released: list[bool] | None = None
    cancelled: list[bool] | None = None
    error: list[BaseException | None] | None = None
    started: list[float] | None = None
    done_at: list[float] | None = None
    # perf_counter times: the pass's start, each visit's entering, each request's read
    begun: float = 0.0
    entered_at: list[float] | None = None
    read_from: list[float] | None = None
    read_to: list[float] | None = None
    reread: set[int] = field(default_factory=set)   # requests read again (taken back, reissued)

    def __post_init__(self) -> None:
        n = len(self.plan.loads)
        self.parts_left = list(self.plan.parts)
        self.inflight_parts = [0] * n
        self.ready = [False] * n
        self.released = [False] * n
        self.cancelled = [False] * n
        self.error = [None] * n
        self.started = [0.0] * n
        self.done_at = [0.0] * n
        self.begun = time.perf_counter()
        self.entered_at = [0.0] * len(self.plan.load_of_visit)
        self.read_from = [0.0] * len(self.plan.requests)
        self.read_to = [0.0] * len(self.plan.requests)

    def request_lags(self) -> list[float]:
        """Per request read once: from its turn to its read's start (``Pipeline.request_lag_s``).

        Its turn is the later of its gate's entering (the pass's start for -1) and a reader
        coming free: with ``queue_depth`` readers, the n-th read (from 0) waits for
        n - depth + 1 of the reads before it to end, the earliest ones (the reads end in any
        order). A request read again (taken back, or reissued after a skip) waited for
        something else and is left out.
        """
        depth = self.plan.io.queue_depth
        lags: list[float] = []
        ends: list[float] = []        # ends of the reads taken so far, not yet a reader's turn
        taken = 0
        for i, r in enumerate(self.plan.requests):
            if not self.read_from[i]:
                continue   # not read in this pass (skipped, or the pass ended)
            turn = self.begun if r.gate < 0 else self.entered_at[r.gate]
            if taken >= depth:
                turn = max(turn, heapq.heappop(ends))
            heapq.heappush(ends, self.read_to[i])
            taken += 1
            if i not in self.reread and (r.gate < 0 or self.entered_at[r.gate]):
                lags.append(max(0.0, self.read_from[i] - turn))
        return lags


@dataclass(eq=False)
class OnDemand:
    """A unit loaded off the recorded order, into free ring space."""

    unit: int
    offset: int     # into the ring
    nbytes: int
    region: torch.Tensor | None = None


class Disk:
    """One disk's reader threads, shared by the loaders of every executor that reads from it.

    ``queue_depth`` requests are in flight at most. When several loaders have a readable
    request, the one whose inference is due first gets the disk (earliest deadline first; an
    inference without a deadline ranks by when it started), so a near deadline is never stuck
    behind another stream's read-ahead. One lock guards every loader's progress; reader threads
    wait on ``work_cv``, each compute thread on its loader's own condition.
    """

    def __init__(self, queue_depth: int = 2) -> None:
        self.lock = threading.Lock()
        self.work_cv = threading.Condition(self.lock)
        self.queue_depth = queue_depth
        self.in_flight = 0
        self._loaders: list['Loader'] = []
        self._workers: list[threading.Thread] = []
        self._closing = False

    def attach(self, loader: 'Loader') -> None:
        """Serve ``loader`` from now on."""
        with self.lock:
            self._loaders.append(loader)

    def detach(self, loader: 'Loader') -> None:
        """Stop serving ``loader``; the threads stop with the last one."""
        with self.lock:
            if loader in self._loaders:
                self._loaders.remove(loader)
            if self._loaders:
                return
            self._closing = True
            self.work_cv.notify_all()
        for w in self._workers:
            w.join(timeout=10)
        self._workers = []

    def ensure(self, queue_depth: int) -> None:
        """At least ``queue_depth`` reads in flight from now on (threads started as needed)."""
        with self.lock:
            self.queue_depth = max(self.queue_depth, queue_depth)
            self._closing = False
        while len(self._workers) < self.queue_depth:
            w = threading.Thread(target=self._work, name=f'dl-reader-{len(self._workers)}',
                                 daemon=True)
            self._workers.append(w)
            w.start()

    def _work(self) -> None:
        while True:
            with self.lock:
                while True:
                    if self._closing:
                        return
                    picked = self._pick()
                    if picked is not None:
                        break
                    self.work_cv.wait()
                loader, p, r, i = picked
                self.work_cv.notify()   # the next request may be readable too
            loader._serve(p, r, i)

    def _pick(self) -> tuple['Loader', _Pass, Request, int] | None:
        """The request to read next, earliest deadline first (caller holds the lock)."""
        if self.in_flight >= self.queue_depth:
            return None
        waiting = sorted((lo for lo in self._loaders if lo._pass is not None
                          and lo._pass.active), key=lambda lo: lo._pass.priority)
        for loader in waiting:
            r = loader._peek()
            if r is not None:
                p, i = loader._take(r)
                self.in_flight += 1
                return loader, p, r, i
        return None


class Loader:
    """Runs the request pipeline of a plan; subclasses decide where bytes land."""

    def __init__(self, store: LayerStore, integrity: Integrity, *, direct_io: bool = True,
                 disk: Disk | None = None, resident_from: 'Loader | None' = None) -> None:
        self.store = store
        # a lane (engine.lanes) holds no resident units of its own: it uses another loader's,
        # and its memory is the plan's without the resident region
        self.resident_from = resident_from
        self.direct_io = direct_io
        self.reader = Reader(store.path, direct=direct_io)
        self.integrity = integrity
        self.disk = disk or Disk()
        self.disk.attach(self)
        # one lock (the disk's) for all progress; the reader threads wait on the disk's
        # condition, this loader's compute thread on its own: each side wakes only whom it
        # concerns
        self._lock = self.disk.lock
        self._work_cv = self.disk.work_cv
        self._done_cv = threading.Condition(self._lock)
        self._plan: Plan | None = None
        self._pass: _Pass | None = None
        self._on_demand: list[OnDemand] = []
        self._verified = False
        self._views: dict[tuple[Region, int], dict[str, torch.Tensor]] = {}
        self._last_pass: _Pass | None = None
        self.counters = {'loads': 0, 'on_demand_loads': 0, 'stall_seconds': 0.0,
                         'lagged_requests': 0, 'request_lag_seconds': 0.0}

    # -- configuration ------------------------------------------------------------------------
    @property
    def plan(self) -> Plan | None:
        """The plan in force (None before the first, or after ``release``)."""
        return self._plan

    def apply(self, plan: Plan) -> None:
        """Size the memory for ``plan`` and bring its resident units in (blocking)."""
        self._views.clear()
        checked_all = False
        owner = self.resident_from is None
        if owner and self.integrity.mode != Verify.NONE and not self._verified:
            self.verify_all()
            checked_all = True
        self._plan = None
        self._resize(plan)
        self._plan = plan
        self.disk.ensure(plan.io.queue_depth)
        if plan.resident_requests and owner:
            self._run_all(plan, plan.resident_requests)
            if self.integrity.mode != Verify.NONE and not checked_all:
                for u, offset in plan.resident_offsets.items():   # read once, used for long
                    self._check(u, self._bytes_of(Region.RESIDENT, offset,
                                                  self.store.units[u].nbytes))

    def release(self) -> None:
        """Give all weight memory back; the next ``apply`` maps it again."""
        self._views.clear()
        self._plan = None
        self._resize(None)

    def close(self) -> None:
        """Leave the disk (its threads stop with the last loader) and close the file."""
        self.disk.detach(self)
        self.release()
        self.reader.close()

    def verify_all(self) -> None:
        """Check every unit's checksum, streaming the store through one unit-sized buffer."""
        self.verify_units({u.index for u in self.store.units})
        self._verified = True

    def verify_units(self, units: set[int]) -> None:
        """Read ``units`` again and check them (StoreCorruptError names the first bad one)."""
        buf = HostArena()
        try:
            buf.resize(max(self.store.units[u].nbytes for u in units))
            for u in sorted(units):
                unit = self.store.units[u]
                view = buf.view(0, unit.nbytes)
                try:
                    self.reader.read(unit.offset, view, unit.name)
                    self._check(u, view)
                finally:
                    view.release()
        finally:
            buf.release()

    def reopen(self) -> None:
        """Open the store's path anew (after it was replaced); between passes only."""
        old, self.reader = self.reader, Reader(self.store.path, direct=self.direct_io)
        old.close()
        self._verified = False

    def _check(self, u: int, data: Any) -> None:
        t0 = time.perf_counter()
        try:
            self.store.verify(self.store.units[u], data)
        finally:
            self.integrity.checked(self.store.units[u].nbytes, time.perf_counter() - t0)

    def _check_load(self, plan: Plan, j: int) -> None:
        ld = plan.loads[j]
        self._check(ld.unit, self._bytes_of(ld.region, ld.offset,
                                            self.store.units[ld.unit].nbytes))

    def _base(self, region: Region) -> int:
        """Where ``region`` starts in this loader's own memory (a lane's has no resident part)."""
        assert self._plan is not None
        if self.resident_from is None:
            return self._plan.base(region)
        assert region != Region.RESIDENT, 'a lane reads resident units from its owner'
        return self._plan.base(region) - self._plan.resident_bytes

    def _own_bytes(self, plan: Plan) -> int:
        """The bytes this loader maps for ``plan`` besides staging."""
        resident = plan.resident_bytes if self.resident_from is not None else 0
        return plan.weight_bytes - plan.staging_bytes - resident

    # -- the compute thread's side --------------------------------------------------------------
    def begin(self, deadline: float | None = None) -> None:
        """Start a pass over the plan's requests (reads of the first loads begin now).

        ``deadline`` (``time.monotonic()`` seconds) ranks this pass's reads against other
        loaders' on a shared disk.
        """
        assert self._plan is not None
        with self._lock:
            self._pass = _Pass(self._plan, (float('inf') if deadline is None else deadline,
                                            time.monotonic()))
            self._work_cv.notify_all()

    def enter(self, visit: int) -> None:
        """Visit ``visit`` is entered: release the loads whose last visit is behind it.

        Entering beyond the next visit (skipping visits) releases the skipped loads too; their
        reads are cancelled, or waited for when already in flight.
        """
        p = self._pass
        assert p is not None
        now = time.perf_counter()
        with self._lock:
            for k in range(p.entered + 1, visit + 1):
                p.entered_at[k] = now
                for j in p.plan.released_on_entering[k]:
                    self._release_load(p, j)
                if k < visit:  # skipped: its load will not be used in this pass
                    j = p.plan.load_of_visit[k]
                    if j >= 0 and p.plan.loads[j].last < visit:
                        p.cancelled[j] = True
            p.entered = max(p.entered, visit)
            if p.next < len(p.plan.requests) and p.plan.requests[p.next].gate <= visit:
                self._work_cv.notify()

    def wait(self, j: int) -> tuple[float, float]:
        """Block until load ``j`` is ready; return (stall seconds, its read seconds)."""
        p = self._pass
        assert p is not None
        t0 = time.perf_counter()
        with self._lock:
            if not p.ready[j] and p.error[j] is None and p.cancelled[j]:
                self._reissue(p, j)
            while not p.ready[j] and p.error[j] is None:
                self._done_cv.wait()
            err = p.error[j]
        if err is not None:
            raise err
        stall = time.perf_counter() - t0
        self.counters['stall_seconds'] += stall
        self._ready_on_compute_stream(j)
        return stall, p.done_at[j] - p.started[j]

    def end(self) -> None:
        """End the pass: stop issuing, wait for reads in flight, release everything streamed."""
        p = self._pass
        if p is None:
            return
        with self._lock:
            p.active = False
            while p.in_flight:
                self._done_cv.wait()
            for j in range(len(p.plan.loads)):
                self._release_load(p, j)
            self._on_demand.clear()
            self._pass = None
        lags = p.request_lags()
        self.counters['lagged_requests'] += len(lags)
        self.counters['request_lag_seconds'] += sum(lags)
        self._last_pass = p

    def last_reads(self) -> list[tuple[float, float]]:
        """The last pass's reads: (start, end), perf_counter times (host reads, on CUDA too)."""
        p = self._last_pass
        return [] if p is None else [(a, b) for a, b in zip(p.read_from, p.read_to) if a]

    def region(self, region: Region, offset: int, nbytes: int) -> torch.Tensor:
        """The bytes of a placed load as a uint8 tensor (where compute reads them)."""
        raise NotImplementedError

    def views(self, region: Region, key: int, unit: int, offset: int) -> dict[str, torch.Tensor]:
        """The unit's tensors at ``offset`` of ``region`` (cached for the plan in force)."""
        if region == Region.RESIDENT and self.resident_from is not None:
            return self.resident_from.views(region, key, unit, offset)
        cached = self._views.get((region, key))
        if cached is None:
            u = self.store.units[unit]
            cached = self.store.tensors_of(u, self.region(region, offset, u.nbytes))
            self._views[(region, key)] = cached
        return cached

    def load_on_demand(self, unit: int) -> OnDemand:
        """Load ``unit`` now, off the plan, into free ring space (BudgetError: no room)."""
        p = self._pass
        assert p is not None and self._plan is not None
        nbytes = self.store.units[unit].nbytes
        with self._lock:
            pos = self._free_ring(p, nbytes)
            if pos is None:  # take back read-ahead that is not in use yet
                self._take_back(p)
                pos = self._free_ring(p, nbytes)
            if pos is None:
                raise BudgetError(f'no room to load unit {self.store.units[unit].name!r} on '
                                  f'demand within the {self._plan.config.budget_bytes}-byte '
                                  'budget')
            od = OnDemand(unit, pos, nbytes)
            self._on_demand.append(od)
        request = Request(self.store.units[unit].offset, Region.RING, pos, nbytes, (), -1, ())
        self._read(request)
        self._copied_on_demand()
        od.region = self.region(Region.RING, pos, nbytes)
        self.counters['on_demand_loads'] += 1
        return od

    def drop_on_demand(self, od: OnDemand) -> None:
        """The on-demand unit is no longer in use: its ring space is free again."""
        self._retire_on_demand(od)
        with self._lock:
            self._on_demand.remove(od)
            self._work_cv.notify_all()

    # -- on a reader thread -----------------------------------------------------------------
    def _serve(self, p: _Pass, r: Request, i: int) -> None:
        """Read ``r``, request ``i`` (the disk picked it), check what it completes, hand it on."""
        err: BaseException | None = None
        p.read_from[i] = time.perf_counter()
        try:
            self._read(r)
        except BaseException as e:  # noqa: BLE001 - handed to the compute thread
            err = e
        p.read_to[i] = time.perf_counter()
        with self._lock:
            complete = []
            for j in r.loads:
                p.inflight_parts[j] -= 1
                p.parts_left[j] -= 1
                if err is not None:
                    p.error[j] = err
                elif p.parts_left[j] == 0:
                    complete.append(j)
        for j in complete:   # checked before compute may use it
            if self.integrity.chosen(j):
                try:
                    self._check_load(p.plan, j)
                except StoreCorruptError as e:
                    self.integrity.suspect.add(p.plan.loads[j].unit)
                    p.error[j] = e
        with self._lock:
            p.in_flight -= 1
            self.disk.in_flight -= 1
            now = time.perf_counter()
            for j in complete:
                if p.error[j] is None:
                    p.ready[j] = True
                    p.done_at[j] = now
                    self.counters['loads'] += 1
            self._done_cv.notify_all()
            self._work_cv.notify()

    def _peek(self) -> Request | None:
        """This loader's next request if it may be read now (caller holds the lock)."""
        p = self._pass
        if p is None or not p.active or p.in_flight >= p.plan.io.queue_depth:
            return None
        reqs = p.plan.requests
        while p.next < len(reqs) and all(p.cancelled[j] for j in reqs[p.next].loads):
            for j in reqs[p.next].loads:  # skipped loads: nothing to read
                p.parts_left[j] -= 1
            p.next += 1
        if p.next >= len(reqs):
            return None
        r = reqs[p.next]
        if r.gate > p.entered or any(p.inflight_parts[a] for a in r.after):
            return None
        if self._on_demand and r.region == Region.RING and any(
                r.offset < od.offset + od.nbytes and od.offset < r.offset + r.nbytes
                for od in self._on_demand):
            return None
        if not self._slot_free():
            return None
        return r

    def _take(self, r: Request) -> tuple[_Pass, int]:
        """Commit to reading ``r``, the request :meth:`_peek` returned (lock held)."""
        p = self._pass
        assert p is not None
        i = p.next
        if p.read_from[i]:
            p.reread.add(i)
        p.next += 1
        p.in_flight += 1
        now = time.perf_counter()
        for j in r.loads:
            if p.inflight_parts[j] == 0 and p.parts_left[j] == p.plan.parts[j]:
                p.started[j] = now
            p.inflight_parts[j] += 1
        return p, i

    def _run_all(self, plan: Plan, requests: tuple[Request, ...]) -> None:
        """Read ``requests`` (all gates open) on the reader threads and wait for them."""
        errors: list[BaseException] = []
        sem = threading.Semaphore(plan.io.queue_depth)
        threads = []

        def one(r: Request) -> None:
            try:
                self._read(r)
            except BaseException as e:  # noqa: BLE001 - re-raised below
                errors.append(e)
            finally:
                sem.release()

        for r in requests:
            sem.acquire()
            if errors:
                break
            t = threading.Thread(target=one, args=(r,), daemon=True)
            threads.append(t)
            t.start()
        for t in threads:
            t.join()
        self._synchronize()
        if errors:
            raise errors[0]

    # -- the pass's bookkeeping (caller holds the lock) ------------------------------------------
    def _release_load(self, p: _Pass, j: int) -> None:
        if not p.released[j]:
            p.released[j] = True
            self._released(j)

    def _free_ring(self, p: _Pass, nbytes: int) -> int | None:
        """First ring place of ``nbytes`` clear of loads in use, in flight, ready or on demand."""
        plan = p.plan
        units = self.store.units
        busy = sorted([(ld.offset, ld.offset + units[ld.unit].nbytes)
                       for j, ld in enumerate(plan.loads) if ld.region == Region.RING
                       and not p.released[j] and (p.ready[j] or p.inflight_parts[j])]
                      + [(od.offset, od.offset + od.nbytes) for od in self._on_demand])
        cursor = 0
        for lo, hi in busy:
            if lo - cursor >= nbytes:
                return cursor
            cursor = max(cursor, hi)
        return cursor if plan.ring_bytes - cursor >= nbytes else None

    def _take_back(self, p: _Pass) -> None:
        """Forget read-ahead of visits not entered yet (it is read again when needed)."""
        while p.in_flight:
            self._done_cv.wait()
        reqs = p.plan.requests
        first = p.next
        while first > 0 and all(p.plan.loads[j].first > p.entered for j in reqs[first - 1].loads):
            first -= 1
        for r in reqs[first:p.next]:
            for j in r.loads:
                p.ready[j] = False
                p.parts_left[j] = p.plan.parts[j]
        p.next = first

    def _reissue(self, p: _Pass, j: int) -> None:
        """A load cancelled by a skip is wanted after all: read it again (rare)."""
        p.cancelled[j] = False
        p.parts_left[j] = p.plan.parts[j]
        p.ready[j] = False
        idx = next(i for i, r in enumerate(p.plan.requests) if j in r.loads)
        p.next = min(p.next, idx)
        self._work_cv.notify_all()

    # -- where bytes land (subclasses) ------------------------------------------------------------
    def _resize(self, plan: Plan | None) -> None:
        raise NotImplementedError

    def _read(self, r: Request) -> None:
        raise NotImplementedError

    def _bytes_of(self, region: Region, offset: int, nbytes: int) -> Any:
        """A placed load's bytes where a checksum can read them (host memory)."""
        raise NotImplementedError

    def _slot_free(self) -> bool:
        return True

    def _released(self, j: int) -> None:
        """Load ``j`` was released on the compute thread."""

    def _ready_on_compute_stream(self, j: int) -> None:
        """Order compute after load ``j``'s bytes arrived (CUDA)."""

    def _copied_on_demand(self) -> None:
        """An on-demand read finished; make its bytes visible to compute (CUDA)."""

    def _retire_on_demand(self, od: OnDemand) -> None:
        """Compute is done with an on-demand unit (CUDA: before its space is reused)."""

    def _synchronize(self) -> None:
        """Wait for copies in flight (CUDA)."""

    @property
    def maps(self) -> int:
        """Mapping / allocation calls for weight memory so far."""
        raise NotImplementedError

    @property
    def weight_bytes(self) -> int:
        """Bytes that hold weights now (arenas and staging)."""
        raise NotImplementedError


class HostLoader(Loader):
    """Reads into one host arena; compute uses the bytes where they landed (CPU)."""

    def __init__(self, store: LayerStore, integrity: Integrity, **kwargs: Any) -> None:
        super().__init__(store, integrity, **kwargs)
        self.arena = HostArena()

    def region(self, region: Region, offset: int, nbytes: int) -> torch.Tensor:
        """See :meth:`Loader.region`."""
        assert self._plan is not None and self.arena.tensor is not None
        base = self._base(region) + offset
        return self.arena.tensor[base:base + nbytes]

    def _resize(self, plan: Plan | None) -> None:
        self.arena.resize(0 if plan is None else self._own_bytes(plan))

    def _read(self, r: Request) -> None:
        plan = self._plan
        assert plan is not None
        view = self.arena.view(self._base(r.region) + r.offset, r.nbytes)
        try:
            self.reader.read(r.file_offset, view)
        finally:
            view.release()

    def _bytes_of(self, region: Region, offset: int, nbytes: int) -> Any:
        assert self._plan is not None
        return self.arena.tensor[self._base(region) + offset:][:nbytes].numpy()

    @property
    def maps(self) -> int:
        """See :meth:`Loader.maps`."""
        return self.arena.maps

    @property
    def weight_bytes(self) -> int:
        """See :meth:`Loader.weight_bytes`."""
        return self.arena.held_bytes


class CudaLoader(Loader):
    """Reads into pinned staging slots, copies them into a device arena on a copy stream."""

    def __init__(self, store: LayerStore, integrity: Integrity, device: torch.device,
                 **kwargs: Any) -> None:
        super().__init__(store, integrity, **kwargs)
        self.device = device
        self.copy_stream = torch.cuda.Stream(device)
        self.staging = HostArena()
        self._device: torch.Tensor | None = None
        self._device_bytes = 0
        self._device_maps = 0
        self._slots: list[int] = []                       # free staging slot offsets
        self._cooling: list[tuple[int, Any]] = []         # (slot, copy event)
        self._ready_events: dict[int, Any] = {}
        self._release_events: dict[int, Any] = {}
        self._slot_bytes = 0
        self._registered = 0   # address of the page-locked staging mapping

    def region(self, region: Region, offset: int, nbytes: int) -> torch.Tensor:
        """See :meth:`Loader.region`."""
        assert self._plan is not None and self._device is not None
        base = self._base(region) + offset
        return self._device[base:base + nbytes]

    def _resize(self, plan: Plan | None) -> None:
        self._synchronize()
        self._device = None
        self._ready_events.clear()
        self._release_events.clear()
        self._cooling.clear()
        if plan is None:
            self._unregister()
            self.staging.release()
            self._device_bytes = 0
            torch.cuda.empty_cache()
            return
        device_bytes = self._own_bytes(plan)
        if device_bytes != self._device_bytes:
            torch.cuda.empty_cache()
        self._device = torch.empty(device_bytes, dtype=torch.uint8, device=self.device)
        if device_bytes != self._device_bytes:
            self._device_maps += 1
        self._device_bytes = device_bytes
        n_slots = plan.io.staging_slots
        self._slot_bytes = plan.staging_bytes // n_slots
        if self.staging.size != plan.staging_bytes:
            self._unregister()
            self.staging.release()
            self.staging.resize(plan.staging_bytes)
            assert self.staging.tensor is not None
            # page-lock the slots so copies from them are truly asynchronous
            self._registered = self.staging.tensor.data_ptr()
            torch.cuda.cudart().cudaHostRegister(self._registered, plan.staging_bytes, 0)
        self._slots = [i * self._slot_bytes for i in range(n_slots)]

    def _unregister(self) -> None:
        if self._registered:
            torch.cuda.cudart().cudaHostUnregister(self._registered)
            self._registered = 0

    def _slot_free(self) -> bool:
        if self._slots:
            return True
        still = []
        for slot, ev in self._cooling:
            if ev.query():
                self._slots.append(slot)
            else:
                still.append((slot, ev))
        self._cooling = still
        return bool(self._slots)

    def _read(self, r: Request) -> None:
        with self._lock:
            if not self._slot_free():   # on-demand and resident reads come here directly
                slot, ev = self._cooling.pop(0)
                ev.synchronize()
            else:
                slot = self._slots.pop()
        ev = None
        try:
            for lo in range(0, r.nbytes, self._slot_bytes):
                n = min(self._slot_bytes, r.nbytes - lo)
                view = self.staging.view(slot, n)
                try:
                    self.reader.read(r.file_offset + lo, view)
                finally:
                    view.release()
                ev = self._copy(r, lo, slot, n)
                if lo + n < r.nbytes:
                    ev.synchronize()
        finally:
            with self._lock:
                if ev is None:
                    self._slots.append(slot)
                else:
                    self._cooling.append((slot, ev))
        p = self._pass
        if p is not None:
            for j in r.loads:
                self._ready_events[j] = ev

    def _copy(self, r: Request, lo: int, slot: int, n: int) -> Any:
        assert self._plan is not None and self._device is not None
        assert self.staging.tensor is not None
        base = self._base(r.region) + r.offset + lo
        with torch.cuda.stream(self.copy_stream):
            for a in r.after:   # compute is done with what lay in this place
                ev = self._release_events.get(a)
                if ev is not None:
                    self.copy_stream.wait_event(ev)
            self._device[base:base + n].copy_(self.staging.tensor[slot:slot + n],
                                              non_blocking=True)
            ev = torch.cuda.Event()
            ev.record(self.copy_stream)
        return ev

    def _bytes_of(self, region: Region, offset: int, nbytes: int) -> Any:
        """Copied back from the device (only the loads a rolling check picks)."""
        assert self._plan is not None and self._device is not None
        base = self._base(region) + offset
        self.copy_stream.synchronize()
        return self._device[base:base + nbytes].cpu().numpy()

    def _ready_on_compute_stream(self, j: int) -> None:
        ev = self._ready_events.get(j)
        if ev is not None:
            torch.cuda.current_stream(self.device).wait_event(ev)

    def _released(self, j: int) -> None:
        ev = torch.cuda.Event()
        ev.record(torch.cuda.current_stream(self.device))
        self._release_events[j] = ev

    def _copied_on_demand(self) -> None:
        torch.cuda.current_stream(self.device).wait_stream(self.copy_stream)

    def _retire_on_demand(self, od: OnDemand) -> None:
        self.copy_stream.wait_stream(torch.cuda.current_stream(self.device))

    def _synchronize(self) -> None:
        self.copy_stream.synchronize()

    @property
    def maps(self) -> int:
        """See :meth:`Loader.maps`."""
        return self.staging.maps + self._device_maps

    @property
    def weight_bytes(self) -> int:
        """See :meth:`Loader.weight_bytes`."""
        return self.staging.held_bytes + self._device_bytes
