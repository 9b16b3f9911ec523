# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The demand-layered executor: runs a skeleton, binding each unit's weights just before it runs.

Per unit the paper's stages are: read (SSD -> host buffer, on a reader thread, direct I/O),
copy (host -> device buffer, CUDA only, on a copy stream) and compute (the caller's thread).
Reads run ahead of compute along the recorded schedule as far as the budget allows (``pipelined``)
or only when the unit is needed (``sequential``); ``preload`` keeps every unit resident.
Everything that holds weights - buffers being read, units waiting or running, resident units -
is counted against one budget that can change between two inferences.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
import os
import threading
import time
from typing import Any, Callable, Iterable

import torch
from torch import nn

from .buffers import BufferPool, Lease
from .errors import BudgetError, ConfigError, EngineError, InferenceAborted, StoreMismatchError
from .reader import UnitReader
from .simulate import min_budget
from . import slicing
from .store import LayerStore, Unit

MODES = ('preload', 'sequential', 'pipelined')
VERIFY = ('full', 'once', 'none')


@dataclass(frozen=True)
class Config:
    """What the executor runs with; replaced as a whole by :meth:`reconfigure`."""

    mode: str
    budget_bytes: int
    resident: frozenset[int]
    prefetch_depth: int | None = None


class _Slot:
    """A unit in memory (or on its way): its lease, its read, who still needs it."""

    __slots__ = ('unit', 'lease', 'future', 'refs', 'active', 'bound', 'device_tensor',
                 'resident', 'event', 'views')

    def __init__(self, unit: Unit, lease: Lease | None) -> None:
        self.unit = unit
        self.lease = lease
        self.future: Future[float] | None = None
        self.refs = 0      # visits in the window (submitted, not finished) that use it
        self.active = 0    # modules of the unit currently inside their forward
        self.bound = False
        self.resident = False
        self.device_tensor: torch.Tensor | None = None
        self.event: Any = None
        self.views: dict[str, torch.Tensor] | None = None  # a slice unit's weight and bias


@dataclass
class _Run:
    abort: Callable[[], bool] | None
    pos: int = 0          # next visit of the schedule to be entered
    submitted: int = 0    # visits [pos, submitted) have their unit loaded or on its way
    current: int | None = None
    extra: list[int] = field(default_factory=list)
    # per visit: (unit, time entered, time its weights were ready, its read's seconds or 0)
    trace: list[tuple[int, float, float, float]] | None = None


class _ForwardOverride:
    """Replaces one module's forward; ``remove()`` restores it (like a hook handle)."""

    def __init__(self, module: nn.Module, forward: Callable[..., Any]) -> None:
        self.module = module
        module.forward = forward  # type: ignore[method-assign]

    def remove(self) -> None:
        self.module.__dict__.pop('forward', None)


class DemandLayeredModel:
    """Call it like the original model; weights stream from the store within the budget."""

    def __init__(self, skeleton: nn.Module, store: LayerStore | str | os.PathLike[str], *,
                 budget_bytes: int | None = None, mode: str = 'pipelined',
                 device: str | torch.device = 'cpu', resident: Iterable[int | str] = (),
                 prefetch_depth: int | None = None, reader_threads: int = 1,
                 verify: str = 'once', direct_io: bool = True) -> None:
        self.store = store if isinstance(store, LayerStore) else LayerStore.open(store)
        self.skeleton = skeleton.eval()
        self.device = torch.device(device)
        if self.device.type not in ('cpu', 'cuda'):
            raise ConfigError(f'device {device!r}: only cpu and cuda are supported')
        if verify not in VERIFY:
            raise ConfigError(f'verify {verify!r}: one of {VERIFY}')
        self.verify = verify
        self._targets = self._match_skeleton()
        self._held_units = frozenset(i for h in self.store.holds.values() for i in h)
        self._reader = UnitReader(self.store.path, threads=reader_threads, direct=direct_io)
        self._pool = BufferPool(0)
        self._slots: dict[int, _Slot] = {}
        self._verified: set[int] = set()
        self._run: _Run | None = None
        self._infer_lock = threading.Lock()
        self._config_lock = threading.Lock()
        self._pending: Config | None = None
        self._applied: Config | None = None
        self._device_bytes = 0
        self._device_peak = 0
        self._copy_stream = torch.cuda.Stream(self.device) if self.device.type == 'cuda' else None
        self._counters = dict(on_demand_loads=0, stall_seconds=0.0, inferences=0, aborted=0,
                              unit_loads=0)
        self._config = self.validate(mode=mode, budget_bytes=budget_bytes, resident=resident,
                                     prefetch_depth=prefetch_depth)
        self._pending = self._config
        self._hooks = self._install_hooks()

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
        return min_budget([u.nbytes for u in self.store.units], list(self.store.visits()), mode,
                          resident, staging=self.device.type == 'cuda')

    def validate(self, *, mode: str | None = None, budget_bytes: int | None = None,
                 resident: Iterable[int | str] | None = None,
                 prefetch_depth: int | None = None) -> Config:
        """Check a configuration without applying it; raises BudgetError or ConfigError."""
        base = self._config if hasattr(self, '_config') else None
        mode = mode if mode is not None else (base.mode if base else 'pipelined')
        if mode not in MODES:
            raise ConfigError(f'mode {mode!r}: expected one of {", ".join(MODES)}')
        res = (frozenset(self.unit_index(r) for r in resident) if resident is not None
               else (base.resident if base else frozenset()))
        if prefetch_depth is not None and prefetch_depth < 1:
            raise ConfigError(f'prefetch_depth {prefetch_depth}: must be at least 1')
        minimum = self.min_budget(mode, res)
        if budget_bytes is None:  # keep the current budget, raised to what the mode needs
            budget_bytes = max(base.budget_bytes, minimum) if base else minimum
        if budget_bytes < minimum:
            raise BudgetError(f'budget {budget_bytes / 2**20:.1f} MiB is below the {mode} minimum '
                              f'of {minimum / 2**20:.1f} MiB ({minimum} bytes) for '
                              f'{self.store.path.name}' + (
                                  f' with {len(res)} resident units' if res else ''))
        return Config(mode, int(budget_bytes), res, prefetch_depth)

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

    def effective_resident(self, cfg: Config) -> frozenset[int]:
        """Units kept loaded: all of them in preload mode or when the budget holds the model."""
        if cfg.mode == 'preload' or cfg.budget_bytes >= self.min_budget('preload'):
            return frozenset(range(len(self.store.units)))
        return cfg.resident

    @property
    def config(self) -> Config:
        """The configuration the next inference uses."""
        return self._config

    def _apply_pending(self) -> None:
        with self._config_lock:
            cfg, self._pending = self._pending, None
        if cfg is None:
            return
        resident = self.effective_resident(cfg)
        for i, slot in list(self._slots.items()):
            if slot.resident and i not in resident:
                slot.resident = False
                self._release(i)
        self._pool.drop_cached()
        self._pool.set_limit(cfg.budget_bytes - self._device_bytes)
        self._applied = cfg
        self._load_residents(resident)
        if self.device.type == 'cuda':
            self._pool.drop_cached()  # staging buffers of the resident units' copies
        self._pool.reset_peak()
        self._device_peak = self._device_bytes
        for key in ('on_demand_loads', 'stall_seconds', 'aborted'):
            self._counters[key] = type(self._counters[key])()

    def _load_residents(self, resident: frozenset[int]) -> None:
        todo = []
        for i in sorted(resident):
            slot = self._slots.get(i)
            if slot is None:
                slot = self._start_load(self.store.units[i])
                if slot is None:
                    raise BudgetError(f'resident unit {self.store.units[i].name!r} does not fit')
                if self.device.type == 'cuda':
                    self._wait(slot)  # one host staging buffer at a time
                todo.append(slot)
            slot.resident = True
        for slot in todo:
            self._wait(slot)

    def release(self) -> None:
        """Give every weight buffer back to the OS; the next inference loads what it needs."""
        with self._infer_lock:
            for i, slot in list(self._slots.items()):
                slot.resident = False
                self._release(i)
            self._pool.drop_cached()
            with self._config_lock:
                self._pending = self._config

    def close(self) -> None:
        """Release weights, stop reader threads and remove hooks."""
        self.release()
        self._reader.close()
        for h in self._hooks:
            h.remove()

    @property
    def progress(self) -> int:
        """Visits of the recorded schedule entered so far by the running inference (0 if idle)."""
        run = self._run
        return run.pos if run is not None else 0

    # -- inference ----------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the model's forward, like the original module."""
        return self.infer(*args, **kwargs)

    def infer(self, *args: Any, abort: Callable[[], bool] | None = None,
              trace: list[tuple[int, float, float, float]] | None = None,
              **kwargs: Any) -> Any:
        """Run one forward pass; ``abort`` is checked between units (InferenceAborted).

        With a ``trace`` list, each unit visit appends (unit, time it was entered, time its
        weights were ready, seconds its read took or 0 when it was already loaded), times in
        ``time.perf_counter`` seconds: profiles are made from these.
        """
        with self._infer_lock:
            self._apply_pending()
            run = self._run = _Run(abort, trace=trace)
            try:
                self._fill(run, None)
                with torch.no_grad():
                    out = self.skeleton(*args, **kwargs)
                self._counters['inferences'] += 1
                return out
            except InferenceAborted:
                self._counters['aborted'] += 1
                raise
            finally:
                self._finish(run)
                self._run = None

    def _finish(self, run: _Run) -> None:
        if run.current is not None:
            self._end_visit(run.current)
        for k in range(run.pos, run.submitted):  # visits this pass did not make
            self._end_visit(self.store.schedule[k])
        for u in run.extra:
            self._end_visit(u)
        for i, slot in list(self._slots.items()):
            slot.active = 0
            slot.refs = 0
            if not slot.resident:
                self._release(i)

    # -- the pipeline -----------------------------------------------------------------------------
    def _horizon(self, run: _Run, entering: int | None) -> int:
        cfg = self._applied
        assert cfg is not None
        n = len(self.store.schedule)
        if cfg.mode == 'sequential':  # read only the unit being entered
            return 0 if entering is None else entering + 1
        depth = cfg.prefetch_depth
        return n if depth is None else min(n, run.pos + depth)

    def _fill(self, run: _Run, entering: int | None) -> None:
        """Submit reads for the upcoming visits as far as the horizon and the budget allow."""
        horizon = self._horizon(run, entering)
        schedule = self.store.schedule
        while run.submitted < horizon:
            u = schedule[run.submitted]
            slot = self._slots.get(u)
            if slot is None:
                slot = self._start_load(self.store.units[u])
                if slot is None:
                    break
            slot.refs += 1
            run.submitted += 1

    def _start_load(self, unit: Unit) -> _Slot | None:
        lease = self._reserve(unit)
        if lease is None:
            return None
        slot = _Slot(unit, lease)
        slot.future = self._reader.submit(self._load, slot)
        self._slots[unit.index] = slot
        self._counters['unit_loads'] += 1
        return slot

    def _reserve(self, unit: Unit) -> Lease | None:
        cfg = self._applied
        assert cfg is not None
        exact = unit.index in self._held_units
        if self.device.type == 'cuda':  # the device copy and its host staging buffer
            if self._device_bytes + unit.nbytes > cfg.budget_bytes:
                return None
            self._pool.set_limit(cfg.budget_bytes - self._device_bytes - unit.nbytes)
            lease = self._pool.reserve(unit.nbytes, exact=exact)
            if lease is None:
                self._pool.set_limit(cfg.budget_bytes - self._device_bytes)
                return None
            self._device_bytes += unit.nbytes
            self._device_peak = max(self._device_peak, self._device_bytes + self._pool.mapped)
            return lease
        # parents held while children stream get exact-size buffers, so the minimum budget
        # (computed from exact sizes) always leaves room for the unit being entered
        return self._pool.reserve(unit.nbytes, exact=exact)

    def _load(self, slot: _Slot) -> float:
        """Reader thread: read (and on CUDA copy) one unit; return the seconds it took."""
        t0 = time.perf_counter()
        unit, lease = slot.unit, slot.lease
        assert lease is not None
        buf = lease.buffer()
        self._reader.read_into(unit, buf)
        if self.verify == 'full' or (self.verify == 'once' and unit.index not in self._verified):
            view = buf.memoryview(unit.nbytes)
            try:
                self.store.verify(unit, view)
            finally:
                view.release()
            self._verified.add(unit.index)
        if self.device.type == 'cuda':
            assert self._copy_stream is not None
            with torch.cuda.stream(self._copy_stream):
                dev = torch.empty(unit.nbytes, dtype=torch.uint8, device=self.device)
                dev.copy_(buf.tensor[:unit.nbytes], non_blocking=True)
                event = torch.cuda.Event()
                event.record(self._copy_stream)
            event.synchronize()  # the host staging buffer is free again
            slot.device_tensor, slot.event = dev, event
            slot.lease = None
            self._pool.give_back(lease)
        return time.perf_counter() - t0  # the whole load: map, read, check, copy

    def _wait(self, slot: _Slot) -> None:
        if slot.future is not None:
            if not slot.future.done():
                t0 = time.perf_counter()
                slot.future.result()
                self._counters['stall_seconds'] += time.perf_counter() - t0
            else:
                slot.future.result()
            slot.future = None
        if not slot.bound:
            self._bind(slot)

    def _bind(self, slot: _Slot) -> None:
        if slot.device_tensor is not None:
            torch.cuda.current_stream(self.device).wait_event(slot.event)
            region = slot.device_tensor
        else:
            assert slot.lease is not None
            region = slot.lease.buffer().tensor
        views = self.store.tensors_of(slot.unit, region)
        if slot.unit.slice is not None:
            slot.views = {b.attr: views[b.key] for b in slot.unit.bindings}
            slot.bound = True
            return
        for container, attr, key, _placeholder in self._targets[slot.unit.index]:
            t = views[key]
            container[attr] = nn.Parameter(t, requires_grad=False) \
                if isinstance(_placeholder, nn.Parameter) else t
        slot.bound = True

    def _release(self, u: int) -> None:
        slot = self._slots.pop(u, None)
        if slot is None:
            return
        if slot.future is not None:
            try:
                slot.future.result()  # never hand back a buffer that is still being read into
            except Exception:  # noqa: BLE001 - the error was or will be raised to the caller
                pass
        for container, attr, _key, placeholder in self._targets[u]:
            container[attr] = placeholder
        slot.bound = False
        slot.views = None
        if slot.device_tensor is not None:
            slot.device_tensor.record_stream(torch.cuda.current_stream(self.device))
            slot.device_tensor = None
            self._device_bytes -= slot.unit.nbytes
            self._pool.set_limit(self._applied.budget_bytes - self._device_bytes
                                 if self._applied else 0)
        if slot.lease is not None:
            self._pool.give_back(slot.lease)
            slot.lease = None

    def _end_visit(self, u: int) -> None:
        slot = self._slots.get(u)
        if slot is None:
            return
        slot.refs -= 1
        if slot.refs <= 0 and slot.active <= 0 and not slot.resident:
            self._release(u)

    # -- hooks ------------------------------------------------------------------------------------
    def _install_hooks(self) -> list[Any]:
        handles: list[Any] = []
        modules = dict(self.skeleton.named_modules())
        sliced: dict[str, list[Unit]] = {}
        for unit in self.store.units:
            if unit.slice is not None:
                sliced.setdefault(unit.slice[0], []).append(unit)
            for path in unit.modules:
                m = modules[path]
                handles.append(m.register_forward_pre_hook(self._pre_hook(unit.index)))
                handles.append(m.register_forward_hook(self._post_hook(unit.index),
                                                       always_call=True))
        for path, units in sliced.items():
            units.sort(key=lambda u: u.slice[1])
            rows = modules[path]._parameters['weight'].shape[0]
            edges = [(u.slice[1], u.slice[2]) for u in units]
            if [lo for lo, _ in edges] != [0] + [hi for _, hi in edges[:-1]] \
                    or edges[-1][1] != rows:
                raise StoreMismatchError(f'{self.store.path.name}: the slices of {path!r} do '
                                         f'not cover its {rows} output rows: {edges}')
            handles.append(_ForwardOverride(modules[path], self._sliced_forward(
                modules[path], units)))
        return handles

    def _sliced_forward(self, module: nn.Module, units: list[Unit]) -> Callable[..., Any]:
        def forward(x: torch.Tensor) -> torch.Tensor:
            run = self._run
            if run is None:
                raise EngineError('the skeleton ran outside DemandLayeredModel: call the wrapper')
            shape, dim = slicing.output_shape(module, x)
            out = x.new_empty(shape)
            for unit in units:
                u = unit.index
                self._enter(run, u)
                slot = self._slots[u]
                slot.active += 1
                try:
                    assert slot.views is not None and unit.slice is not None
                    _, lo, hi = unit.slice
                    out.narrow(dim, lo, hi - lo).copy_(slicing.forward_slice(
                        module, x, slot.views['weight'], slot.views.get('bias')))
                finally:
                    slot.active -= 1
                    if slot.active <= 0 and slot.refs <= 0 and not slot.resident:
                        self._release(u)
            return out
        return forward

    def _pre_hook(self, u: int) -> Callable[..., None]:
        def hook(_module: nn.Module, _args: Any) -> None:
            run = self._run
            if run is None:
                raise EngineError('the skeleton ran outside DemandLayeredModel: call the wrapper')
            self._enter(run, u)
            self._slots[u].active += 1
        return hook

    def _post_hook(self, u: int) -> Callable[..., None]:
        def hook(_module: nn.Module, _args: Any, _out: Any) -> None:
            slot = self._slots.get(u)
            run = self._run
            if slot is None or run is None:
                return
            slot.active -= 1
            if slot.active <= 0 and slot.refs <= 0 and not slot.resident:
                self._release(u)
        return hook

    def _enter(self, run: _Run, u: int) -> None:
        if u == run.current:
            return
        arrived = 0.0
        if run.trace is not None:
            if self.device.type == 'cuda':  # a trace times the GPU's work, not its launches
                torch.cuda.synchronize(self.device)
            arrived = time.perf_counter()
        if run.abort is not None and run.abort():
            raise InferenceAborted(f'aborted before unit {self.store.units[u].name!r}')
        if run.current is not None:
            self._end_visit(run.current)
            run.current = None
        schedule = self.store.schedule
        k = run.pos
        if k < len(schedule) and schedule[k] != u:
            # Off the recorded order (data-dependent control flow): skip ahead if the unit is
            # coming up in the window, otherwise load it on demand.
            for j in range(k + 1, run.submitted):
                if schedule[j] == u:
                    for skipped in range(k, j):
                        self._end_visit(schedule[skipped])
                    run.pos = k = j
                    break
        if k < len(schedule) and schedule[k] == u:
            self._fill(run, k)
            run.pos = k + 1
            if run.submitted < run.pos:
                raise BudgetError('budget too small for the unit being entered')
        else:
            self._on_demand(run, u)
        run.current = u
        slot = self._slots[u]
        future = slot.future
        self._wait(slot)
        if run.trace is not None:
            run.trace.append((u, arrived, time.perf_counter(),
                              future.result() if future is not None else 0.0))

    def _on_demand(self, run: _Run, u: int) -> None:
        self._counters['on_demand_loads'] += 1
        slot = self._slots.get(u)
        if slot is None:
            slot = self._start_load(self.store.units[u])
            if slot is None:  # make room: forget what was read ahead
                for k in range(run.pos, run.submitted):
                    self._end_visit(self.store.schedule[k])
                run.submitted = run.pos
                slot = self._start_load(self.store.units[u])
            if slot is None:
                raise BudgetError(f'no room to load unit {self.store.units[u].name!r} on demand '
                                  f'within {self._applied.budget_bytes if self._applied else 0} '
                                  'bytes')
        slot.refs += 1
        run.extra.append(u)

    # -- binding targets --------------------------------------------------------------------------
    def _match_skeleton(self) -> dict[int, list[tuple[dict[str, Any], str, str, Any]]]:
        modules = dict(self.skeleton.named_modules())
        model = type(self.skeleton).__name__
        targets: dict[int, list[tuple[dict[str, Any], str, str, Any]]] = {}
        covered: set[tuple[str, str]] = set()
        for unit in self.store.units:
            entries = {t.key: t for t in unit.tensors}
            bound = targets.setdefault(unit.index, [])
            for b in unit.bindings:
                module = modules.get(b.module)
                if b.kind == 'slice' and module is not None and unit.slice is not None:
                    self._check_slice(unit, b, module, entries.get(b.key))
                    covered.add((b.module, b.attr))
                    continue
                if module is None:
                    raise StoreMismatchError(
                        f'{self.store.path.name}: unit {unit.name!r} binds module {b.module!r}, '
                        f'which {model} does not have (store made for {self.store.model})')
                container = module._parameters if b.kind == 'parameter' else module._buffers
                current = container.get(b.attr)
                entry = entries.get(b.key)
                if current is None or entry is None:
                    raise StoreMismatchError(
                        f'{self.store.path.name}: unit {unit.name!r}: {b.module}.{b.attr} is not '
                        f'a {b.kind} of {model}')
                if tuple(current.shape) != entry.shape or current.dtype != entry.dtype:
                    raise StoreMismatchError(
                        f'{self.store.path.name}: unit {unit.name!r}: {b.key} is '
                        f'{entry.dtype} {list(entry.shape)} in the store but {current.dtype} '
                        f'{list(current.shape)} in {model}')
                bound.append((container, b.attr, b.key, current))
                covered.add((b.module, b.attr))
        missing = [f'{m}.{a}' if m else a for m, mod in modules.items()
                   for a in list(mod._parameters) + list(mod._buffers)
                   if (m, a) not in covered and (mod._parameters.get(a) is not None
                                                 or mod._buffers.get(a) is not None)]
        if missing:
            raise StoreMismatchError(f'{self.store.path.name}: {len(missing)} tensors of {model} '
                                     f'are not in the store (first: {missing[:3]})')
        return targets

    def _check_slice(self, unit: Unit, b: Any, module: nn.Module, entry: Any) -> None:
        model = type(self.skeleton).__name__
        full = module._parameters.get(b.attr)
        assert unit.slice is not None
        _, lo, hi = unit.slice
        if full is None or entry is None or type(module) not in (nn.Linear, nn.Conv2d):
            raise StoreMismatchError(f'{self.store.path.name}: slice unit {unit.name!r} does '
                                     f'not match a Linear/Conv2d {b.attr} of {model}')
        want = (hi - lo, *full.shape[1:])
        if entry.shape != want or entry.dtype != full.dtype or hi > full.shape[0]:
            raise StoreMismatchError(f'{self.store.path.name}: slice unit {unit.name!r}: '
                                     f'{b.key} is {list(entry.shape)}, expected {list(want)}')

    # -- observation ----------------------------------------------------------------------------
    def weight_bytes(self) -> int:
        """Bytes that hold weights now (host buffers, cached buffers and device units)."""
        return self._pool.mapped + self._device_bytes

    def stats(self) -> dict[str, Any]:
        """Plain-data figures since the last reconfigure (memory, reads, stalls)."""
        cfg = self._config
        resident = self.effective_resident(self._applied or cfg)
        r = self._reader
        return {
            'mode': cfg.mode,
            'budget_bytes': cfg.budget_bytes,
            'weight_bytes': self.weight_bytes(),
            'weight_bytes_peak': max(self._pool.peak, self._device_peak),
            'resident_units': len(resident),
            'resident_bytes': sum(self.store.units[i].nbytes for i in resident),
            'min_budget_bytes': self.min_budget(cfg.mode, cfg.resident),
            'total_bytes': self.store.total_bytes,
            'largest_unit_bytes': self.store.largest_unit_bytes,
            'units': len(self.store.units),
            'bytes_read': r.bytes_read,
            'read_seconds': r.read_seconds,
            'read_bandwidth_bps': r.bytes_read / r.read_seconds if r.read_seconds else 0.0,
            'stall_seconds': self._counters['stall_seconds'],
            'direct_io': r.direct_io,
            'on_demand_loads': self._counters['on_demand_loads'],
            'unit_loads': self._counters['unit_loads'],
            'inferences': self._counters['inferences'],
            'aborted': self._counters['aborted'],
            'device': str(self.device),
        }
