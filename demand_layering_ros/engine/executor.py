# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The demand-layered executor: runs a skeleton, binding each unit's weights just before it runs.

It composes the parts: the policy turns the configuration into a plan (loads, places, requests),
the loader carries the plan out (reads ahead on its threads, into the host arena or through
pinned staging into a device arena), and the binder's hooks tell the executor which unit the
forward pass enters, so it can release what is behind, wait for what is needed and bind it.
Everything that holds weights - the arena (resident units, held parents, the ring) and staging -
is sized to one budget that can change between two inferences.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import os
import threading
import time
from typing import Any, Callable, Iterable, NamedTuple

import torch
from torch import nn

from . import policy
from .binding import Binder, outside_error
from .errors import (BudgetError, ConfigError, InferenceAborted, StoreChangedError,
                     StoreCorruptError, StoreError, StoreMismatchError)
from .integrity import Identity, Integrity, Verify
from .loaders import CudaLoader, Disk, HostLoader, Loader, OnDemand
from .policy import Config, IOSettings, Layout, Mode, Plan, Region
from .sizes import mib
from .store import LayerStore
from .turns import Turns

MODES = tuple(Mode)
VERIFY = tuple(Verify)


class Record(NamedTuple):
    """One inference as it ran: what :class:`calibrate.Calibrator` learns from."""

    config: Config
    visits: tuple['Visit', ...]
    bytes_read: int
    read_seconds: float    # the disk's busy time for this inference
    latency_s: float       # from the call to the end of the forward (on CUDA: the GPU's end)
    # streamed requests: their mean lag from their turn to their read's start (None: none)
    request_lag_s: float | None = None
    # each streamed read's (start, end) in the visits' times (None: not comparable, CUDA)
    reads: tuple[tuple[float, float], ...] | None = None


class Visit(NamedTuple):
    """One unit visit of a traced inference; times in seconds since the inference began."""

    unit: int
    entered: float     # the forward pass reached the unit
    ready: float       # its weights were there: its compute starts
    done: float        # the next unit was reached (or the pass ended): its compute ended
    read_s: float      # how long its load's read took (0: resident or already loaded)

    @property
    def handoff_s(self) -> float:
        """From its read's end to its compute's start.

        Meaningful where the read started as the visit was entered and ran alone (sequential
        mode). On CUDA ``entered`` and ``ready`` are event times on the compute stream, the
        read a host time.
        """
        return self.ready - self.entered - self.read_s


@dataclass
class _Run:
    abort: Callable[[], bool] | None
    trace: list[Visit] | None
    pos: int = -1                         # the last visit of the schedule entered
    current: int | None = None            # the unit of that visit (or on demand)
    active: dict[int, int] = field(default_factory=dict)   # unit -> forwards running
    on_demand: dict[int, OnDemand] = field(default_factory=dict)
    # trace marks: [unit, entered, ready, done, read_s], perf_counter times or CUDA events
    marks: list[list[Any]] = field(default_factory=list)
    origin: Any = None


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as torch's, if this machine runs on it; ConfigError saying why not.

    Checked before any CUDA call: without a CUDA device torch refuses a plain 'cuda' with an
    error naming neither ('invalid argument to exchangeDevice').
    """
    asked = str(device)
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in ('cpu', 'cuda'):
        raise ConfigError(f'device {asked!r}: only cpu and cuda are supported')
    if dev.type == 'cuda':
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            why = ('it is built without CUDA' if torch.version.cuda is None
                   else 'torch.cuda.is_available() is False')
            raise ConfigError(f'device {asked!r}: torch {torch.__version__} sees no CUDA device '
                              f'on this machine ({why}); set device: cpu')
        if (dev.index or 0) >= count:
            seen = 'cuda:0' if count == 1 else f'cuda:0 to cuda:{count - 1}'
            raise ConfigError(f'device {asked!r}: torch sees {count} CUDA device'
                              f'{"s" if count > 1 else ""} ({seen}); set one of them, or '
                              'device: cpu')
    return dev


class DemandLayeredModel:
    """Call it like the original model; weights stream from the store within the budget."""

    def __init__(self, skeleton: nn.Module, store: LayerStore | str | os.PathLike[str], *,
                 budget_bytes: int | None = None, mode: str = 'pipelined',
                 device: str | torch.device = 'cpu', resident: Iterable[int | str] = (),
                 prefetch_depth: int | None = None, verify: str = 'rolling',
                 direct_io: bool = True, io: IOSettings | None = None,
                 record_every: int | None = None, disk: Disk | None = None,
                 resident_from: 'DemandLayeredModel | None' = None) -> None:
        # a lane (engine.lanes) binds the resident units ``resident_from`` holds, reads its
        # store on its disk and holds only what streams
        lead = resident_from
        if lead is not None:
            store, disk = lead.store, lead._loader.disk
        self.store = store if isinstance(store, LayerStore) else LayerStore.open(store)
        self.skeleton = skeleton.eval()
        self.device = check_device(device)
        if verify not in VERIFY:
            raise ConfigError(f'verify {verify!r}: one of {", ".join(VERIFY)}')
        self.layout = Layout.of(self.store, staging=self.device.type == 'cuda')
        self.io = io or IOSettings()
        self.integrity = Integrity(verify, Identity.of(os.stat(self.store.path)))
        # executors reading one disk share its reader threads (earliest deadline first)
        kw = dict(direct_io=direct_io, disk=disk or Disk(self.io.queue_depth),
                  resident_from=lead._loader if lead is not None else None)
        self._loader: Loader = (
            CudaLoader(self.store, self.integrity, self.device, **kw)
            if self.device.type == 'cuda' else HostLoader(self.store, self.integrity, **kw))
        self._run: _Run | None = None
        self._plan: Plan | None = None
        self._turns = Turns()   # one inference at a time; the one due first goes first
        self._config_lock = threading.Lock()
        self._counters: dict[str, Any] = dict(inferences=0, aborted=0)
        self._observers: list[Callable[[Record], None]] = []
        # CUDA traces cost an event per visit and a synchronisation: record one frame in 10
        self.record_every = record_every or (10 if self.device.type == 'cuda' else 1)
        self._peak = 0
        self._maps_applied = 0
        self._since_apply: tuple[int, int, float] = (0, 0, 0.0)
        self._config = self.validate(mode=mode, budget_bytes=budget_bytes, resident=resident,
                                     prefetch_depth=prefetch_depth)
        self._pending: Config | None = self._config
        self._binder = Binder(self.skeleton, self.store, self._enter, self._leave)

    # -- configuration --------------------------------------------------------------------------
    def unit_index(self, ref: int | str) -> int:
        """The index of a unit given by index or by name."""
        if isinstance(ref, int) and 0 <= ref < len(self.store.units):
            return ref
        unit = self.store.by_name.get(str(ref))
        if unit is None:
            raise ConfigError(f'no unit {ref!r} in {self.store.path.name} '
                              f'({len(self.store.units)} units)')
        return unit.index

    def min_budget(self, mode: str, resident: Iterable[int] = ()) -> int:
        """The least budget ``mode`` accepts with the given resident units."""
        return policy.min_budget(self.layout, mode, resident, self.io)

    def validate(self, *, mode: str | None = None, budget_bytes: int | None = None,
                 resident: Iterable[int | str] | None = None,
                 prefetch_depth: int | None = None) -> Config:
        """Check a configuration without applying it; raises BudgetError or ConfigError."""
        base = getattr(self, '_config', None)
        try:
            m = Mode(mode) if mode is not None else (base.mode if base else Mode.PIPELINED)
        except ValueError:
            raise ConfigError(f'mode {mode!r}: expected one of {", ".join(MODES)}') from None
        res = (frozenset(self.unit_index(r) for r in resident) if resident is not None
               else (base.resident if base else frozenset()))
        if prefetch_depth is not None and prefetch_depth < 1:
            raise ConfigError(f'prefetch_depth {prefetch_depth}: must be at least 1')
        minimum = self.min_budget(m, res)
        if budget_bytes is None:  # keep the current budget, raised to what the mode needs
            budget_bytes = max(base.budget_bytes, minimum) if base else minimum
        if budget_bytes < minimum:
            asked, least = mib(budget_bytes, minimum, exact={minimum})
            raise BudgetError(f'budget {asked} is below the {m} minimum of {least} for '
                              f'{self.store.path.name}' + (
                                  f' with {len(res)} resident units' if res else ''))
        return Config(m, int(budget_bytes), res, prefetch_depth)

    def reconfigure(self, *, budget_bytes: int | None = None, mode: str | None = None,
                    resident: Iterable[int | str] | None = None,
                    prefetch_depth: int | None = None) -> Config:
        """Validate now, apply before the next inference (safe to call from any thread).

        Arguments left out keep their current value (a budget is raised to the new mode's minimum).
        """
        with self._config_lock:
            cfg = self.validate(mode=mode, budget_bytes=budget_bytes, resident=resident,
                                prefetch_depth=prefetch_depth)
            self._config = self._pending = cfg
            return cfg

    def set_io(self, io: IOSettings) -> None:
        """Read with other request sizes and depth from the next inference (e.g. a profile's)."""
        with self._config_lock:
            self.io = io
            self._config = self.validate(mode=self._config.mode,
                                         budget_bytes=self._config.budget_bytes,
                                         resident=self._config.resident,
                                         prefetch_depth=self._config.prefetch_depth)
            self._pending = self._config

    def apply_now(self) -> None:
        """Apply the pending configuration now instead of before the next inference."""
        with self._turns.turn():
            self._apply_pending()

    def observe(self, fn: Callable[[Record], None]) -> None:
        """Call ``fn`` with a :class:`Record` after every ``record_every``-th inference."""
        self._observers.append(fn)

    def held_budget(self, cfg: Config) -> int:
        """What this executor may hold under ``cfg``: its budget (engine.lanes: more lanes)."""
        return cfg.budget_bytes

    def effective_resident(self, cfg: Config) -> frozenset[int]:
        """Units kept loaded: all of them in preload mode or when the budget holds the model."""
        return policy.effective_resident(self.layout, cfg, self.io)

    @property
    def config(self) -> Config:
        """The configuration the next inference uses."""
        return self._config

    @property
    def plan(self) -> Plan:
        """The plan of the configuration the next inference uses."""
        return policy.plan(self.layout, self._config, self.io)

    def _apply_pending(self) -> None:
        with self._config_lock:
            cfg, self._pending, io = self._pending, None, self.io
        if cfg is None:
            return
        plan = policy.plan(self.layout, cfg, io)
        self._binder.unbind_all()
        self._plan = None
        self._loader.apply(plan)
        self._plan = plan
        for u in plan.resident:
            self._binder.bind(u, self._loader.views(Region.RESIDENT, u, u,
                                                    plan.resident_offsets[u]), ('res', u))
        self._maps_applied = self._loader.maps
        self._since_apply = (self._loader.reader.bytes_read, self._counters['inferences'],
                             self.integrity.check_seconds)
        self._peak = self._loader.weight_bytes
        self._loader.counters.update(on_demand_loads=0, stall_seconds=0.0)
        self._counters['aborted'] = 0

    def release(self) -> None:
        """Give every weight byte back to the OS; the next inference loads what it needs."""
        with self._turns.turn():
            self._binder.unbind_all()
            self._loader.release()
            self._plan = None
            with self._config_lock:
                self._pending = self._config

    def close(self) -> None:
        """Release weights, stop reader threads and remove hooks."""
        with self._turns.turn():
            self._binder.remove()
            self._loader.close()
            self._plan = None

    @property
    def reader(self) -> Any:
        """What reads the store: direct I/O or not, bytes and seconds read."""
        return self._loader.reader

    @property
    def progress(self) -> int:
        """Visits of the recorded schedule entered so far by the running inference (0 if idle)."""
        run = self._run
        return run.pos + 1 if run is not None else 0

    # -- inference ------------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the model's forward, like the original module."""
        return self.infer(*args, **kwargs)

    def infer(self, *args: Any, abort: Callable[[], bool] | None = None,
              trace: list[Visit] | None = None, deadline: float | None = None,
              **kwargs: Any) -> Any:
        """Run one forward pass; ``abort`` is checked between units (InferenceAborted).

        With a ``trace`` list, each unit visit appends a :class:`Visit`; on CUDA its times are
        the GPU's (from events on the compute stream), so they time the work, not its launch.
        ``deadline`` (``time.monotonic()`` seconds) orders this inference against others waiting
        for this executor, and its reads against other executors' on a shared
        :class:`loaders.Disk`.
        """
        with self._turns.turn(deadline):
            self._check_store()
            self._apply_pending()
            recording = bool(self._observers) and (
                self._counters['inferences'] % self.record_every == 0)
            if trace is None and recording:
                trace = []
            run = self._run = _Run(abort, trace)
            reader = self._loader.reader
            counters = self._loader.counters
            before = (reader.bytes_read, reader.busy_seconds, time.perf_counter(),
                      counters['lagged_requests'], counters['request_lag_seconds'])
            if trace is not None:
                run.origin = self._stamp()
            if self._plan is not None and self._plan.streams:
                units = self.store.units
                self.integrity.select([units[ld.unit].nbytes for ld in self._plan.loads])
                self._loader.begin(deadline)
            done = False
            try:
                with torch.no_grad():
                    out = self.skeleton(*args, **kwargs)
                self._check_unchanged()
                self._counters['inferences'] += 1
                done = True
                return out
            except InferenceAborted:
                self._counters['aborted'] += 1
                raise
            finally:
                self._finish(run)
                self._run = None
                if done:
                    self.integrity.end_frame(time.perf_counter() - before[2])
                if done and recording and self._plan is not None:
                    self._record(run, before)

    # -- integrity ------------------------------------------------------------------------------
    def _identity(self) -> Identity | None:
        try:
            return Identity.of(os.stat(self.store.path))
        except FileNotFoundError:
            return None

    def _check_store(self) -> None:
        """Before a pass: the file is what was verified, and no unit is known corrupt."""
        g = self.integrity
        now = self._identity()
        change = 'removed' if now is None else g.identity.change(now)
        if change is not None:
            if now is not None and now == g.failed_identity and g.error:
                raise StoreChangedError(g.error)   # the same bad file as at the last attempt
            self._revalidate(change, now)
        elif g.suspect:
            try:
                self._loader.verify_units(g.suspect)
            except StoreCorruptError as err:
                raise StoreCorruptError(f'{err}; output stopped until it verifies again') \
                    from err
            g.suspect.clear()

    def _revalidate(self, change: str, now: Identity | None) -> None:
        """The file changed: use it again only if it is the same store and every unit checks."""
        g = self.integrity
        path = self.store.path
        try:
            if now is None:
                raise StoreChangedError(f'{path}: the store file was removed')
            fresh = LayerStore.open(path)
            if (fresh.units, fresh.schedule, fresh.holds) != (
                    self.store.units, self.store.schedule, self.store.holds):
                raise StoreMismatchError(f'{path}: now holds another store (other units); '
                                         'configure again to use it')
            self._loader.reopen()
            self._loader.verify_all()
        except StoreError as err:
            g.failed_identity, g.error = now, f'{path}: {change}: {err}'
            raise StoreChangedError(g.error) from err
        g.identity, g.failed_identity, g.error = now, None, None
        g.suspect.clear()
        with self._config_lock:   # resident units come from the file again
            self._pending = self._config

    def _check_unchanged(self) -> None:
        """After a pass: an inference the file changed under is not returned."""
        now = self._identity()
        change = 'removed' if now is None else self.integrity.identity.change(now)
        if change is not None:
            raise StoreChangedError(f'{self.store.path}: {change} during this inference; its '
                                    'output is discarded')

    def _record(self, run: _Run, before: tuple[int, float, float, int, float]) -> None:
        assert run.trace is not None and self._plan is not None
        reader = self._loader.reader
        visits = tuple(run.trace)
        latency = (visits[-1].done if visits and self.device.type == 'cuda'
                   else time.perf_counter() - before[2])
        c = self._loader.counters
        lagged = c['lagged_requests'] - before[3]
        lag = (c['request_lag_seconds'] - before[4]) / lagged if lagged else None
        reads = None
        if self.device.type != 'cuda' and self._plan.streams:
            reads = tuple((a - run.origin, b - run.origin) for a, b in self._loader.last_reads())
        rec = Record(self._plan.config, visits, reader.bytes_read - before[0],
                     reader.busy_seconds - before[1], latency, lag, reads)
        for fn in self._observers:
            fn(rec)

    def _finish(self, run: _Run) -> None:
        for od in run.on_demand.values():
            self._binder.unbind(od.unit)
            self._loader.drop_on_demand(od)
        run.on_demand.clear()
        if self._plan is not None and self._plan.streams:
            self._loader.end()
            resident = self._plan.resident
            for u in self.store.units:
                if u.index not in resident:
                    self._binder.unbind(u.index)
        if run.trace is not None:
            if run.marks:
                run.marks[-1][3] = self._stamp()
            run.trace.extend(self._times(run))

    def _enter(self, u: int) -> dict[str, torch.Tensor]:
        """A module of unit ``u`` is about to run: make its weights ready, return its tensors."""
        run, plan = self._run, self._plan
        if run is None or plan is None:
            raise outside_error()
        run.active[u] = run.active.get(u, 0) + 1
        if u == run.current:
            return self._views_now(run, plan, u)
        arrived = self._stamp() if run.trace is not None else None
        if run.abort is not None and run.abort():
            run.active[u] -= 1
            raise InferenceAborted(f'aborted before unit {self.store.units[u].name!r}')
        if run.marks:
            run.marks[-1][3] = arrived
        visit = self._next_visit(run, u)
        read_s = 0.0
        if visit is None and u in plan.resident:
            views = self._loader.views(Region.RESIDENT, u, u, plan.resident_offsets[u])
        elif visit is None:
            od = self._loader_on_demand(run, plan, u)
            views = self.store.tensors_of(self.store.units[u], od.region)
            self._binder.bind(u, views)
        else:
            if plan.streams:
                self._loader.enter(visit)
            run.pos = visit
            self._drop_idle_on_demand(run)
            j = plan.load_of_visit[visit]
            if j >= 0:
                _stall, read_s = self._loader.wait(j)
                ld = plan.loads[j]
                views = self._loader.views(ld.region, j, u, ld.offset)
                self._binder.bind(u, views, ('load', j))
            else:
                views = self._loader.views(Region.RESIDENT, u, u, plan.resident_offsets[u])
        run.current = u
        if run.trace is not None:
            run.marks.append([u, arrived, self._stamp(), None, read_s])
        return views

    def _views_now(self, run: _Run, plan: Plan, u: int) -> dict[str, torch.Tensor]:
        od = run.on_demand.get(u)
        if od is not None:
            return self.store.tensors_of(self.store.units[u], od.region)
        j = plan.load_of_visit[run.pos] if run.pos >= 0 else -1
        if j >= 0:
            ld = plan.loads[j]
            return self._loader.views(ld.region, j, u, ld.offset)
        return self._loader.views(Region.RESIDENT, u, u, plan.resident_offsets[u])

    def _leave(self, u: int) -> None:
        run = self._run
        if run is not None and u in run.active:
            run.active[u] -= 1

    def _next_visit(self, run: _Run, u: int) -> int | None:
        """The schedule's visit that entering ``u`` is: the next one, or one further on."""
        visits = self.layout.visits
        k = run.pos + 1
        if k < len(visits) and visits[k] == u:
            return k
        # off the recorded order (data-dependent control flow): skip ahead if the unit is
        # coming up, otherwise load it on demand
        for j in range(k + 1, len(visits)):
            if visits[j] == u:
                return j
        return None

    def _loader_on_demand(self, run: _Run, plan: Plan, u: int) -> OnDemand:
        od = run.on_demand.get(u)
        if od is None:
            if u in plan.resident:
                raise AssertionError('resident units are never loaded on demand')
            if not plan.streams:
                raise BudgetError(f'unit {self.store.units[u].name!r} is off the recorded '
                                  'order and nothing streams')
            od = self._loader.load_on_demand(u)
            run.on_demand[u] = od
        return od

    def _drop_idle_on_demand(self, run: _Run) -> None:
        for u, od in list(run.on_demand.items()):
            if run.active.get(u, 0) <= 0 and u != run.current:
                self._binder.unbind(u)
                self._loader.drop_on_demand(od)
                del run.on_demand[u]

    # -- traces ---------------------------------------------------------------------------------
    def _stamp(self) -> Any:
        """Now: a perf_counter time, or on CUDA an event on the compute stream (the GPU's now)."""
        if self.device.type != 'cuda':
            return time.perf_counter()
        ev = torch.cuda.Event(enable_timing=True)
        ev.record(torch.cuda.current_stream(self.device))
        return ev

    def _times(self, run: _Run) -> list[Visit]:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)

            def since(ev: Any) -> float:
                return run.origin.elapsed_time(ev) / 1e3
        else:
            def since(t: Any) -> float:
                return float(t - run.origin)
        return [Visit(u, since(a), since(r), since(d), read_s)
                for u, a, r, d, read_s in run.marks]

    # -- observation ----------------------------------------------------------------------------
    def weight_bytes(self) -> int:
        """Bytes that hold weights now (arena and staging; 0 after ``release``)."""
        return self._loader.weight_bytes

    def stats(self) -> dict[str, Any]:
        """Plain-data figures since the configuration in force was applied (memory, reads)."""
        cfg = self._config
        resident = self.effective_resident(self._plan.config if self._plan else cfg)
        r = self._loader.reader
        c = self._loader.counters
        self._peak = max(self._peak, self._loader.weight_bytes)
        since = max(1, self._counters['inferences'] - self._since_apply[1])
        return {
            'mode': str(cfg.mode),
            'budget_bytes': cfg.budget_bytes,
            'weight_bytes': self._loader.weight_bytes,
            'weight_bytes_peak': self._peak,
            'resident_units': len(resident),
            'resident_bytes': sum(self.store.units[i].nbytes for i in resident),
            'min_budget_bytes': self.min_budget(cfg.mode, cfg.resident),
            'total_bytes': self.store.total_bytes,
            'largest_unit_bytes': self.store.largest_unit_bytes,
            'units': len(self.store.units),
            'bytes_read': r.bytes_read,
            'bytes_read_per_inference': (r.bytes_read - self._since_apply[0]) / since,
            'checksum_seconds_per_inference': (self.integrity.check_seconds
                                               - self._since_apply[2]) / since,
            'read_seconds': r.busy_seconds,
            'read_bandwidth_bps': r.bandwidth_bps,
            'reads': r.reads,
            'stall_seconds': c['stall_seconds'],
            'stall_seconds_per_inference': c['stall_seconds'] / since,
            'lagged_requests': c['lagged_requests'],
            'request_lag_seconds': c['request_lag_seconds'],
            'direct_io': r.direct_io,
            'on_demand_loads': c['on_demand_loads'],
            'unit_loads': c['loads'],
            'inferences': self._counters['inferences'],
            'aborted': self._counters['aborted'],
            'verify': str(self.integrity.mode),
            'verify_cycle_frames': self.integrity.cycle,
            'checksum_seconds': self.integrity.check_seconds,
            'checksum_bytes': self.integrity.checked_bytes,
            'store_error': self.integrity.error,
            'maps': self._loader.maps - self._maps_applied,   # 0 in steady state
            'maps_total': self._loader.maps,
            'queue_depth': self.io.queue_depth,
            'request_bytes': self.io.request_bytes,
            'device': str(self.device),
        }
