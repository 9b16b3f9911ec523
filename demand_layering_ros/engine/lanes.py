# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Lanes: inferences of one model side by side, its resident units held once.

One model serving two cameras on a CPU with cores to spare is fastest when the two inferences
run at once, each on its share of the threads, not one after the other (bench --streams, the
same model on two cameras). Each lane is an executor with a skeleton of its own, so two forward
passes never bind weights into one module. The first lane (the owner) holds the resident units;
the others bind the owner's and hold only what streams through them (their held stack and ring),
all reading one disk. Every lane runs the same configuration: a new one is applied to all of
them together while none infers, the owner first.

Weight memory with n lanes: resident + n x (held + ring), which ``weight_bytes_of`` says and
the planner counts.
"""

from __future__ import annotations

from contextlib import contextmanager
import heapq
import itertools
import threading
from typing import Any, Callable, Iterator, Sequence

from torch import nn

from .errors import ConfigError
from .executor import DemandLayeredModel, Record
from .policy import Config, IOSettings, weight_bytes_of

SUMMED = ('weight_bytes', 'weight_bytes_peak', 'bytes_read', 'read_seconds', 'reads',
          'stall_seconds', 'on_demand_loads', 'unit_loads', 'inferences', 'aborted',
          'checksum_seconds', 'checksum_bytes', 'maps', 'maps_total', 'lagged_requests',
          'request_lag_seconds')


class Lanes:
    """Several executors of one model, called like one; each inference takes a free lane."""

    def __init__(self, owner: DemandLayeredModel, skeletons: Sequence[nn.Module]) -> None:
        if skeletons and owner.device.type != 'cpu':
            raise ConfigError('lanes run on the CPU only: on a GPU, inferences of one model '
                              'take turns')
        self.owner = owner
        self.members = [owner] + [
            DemandLayeredModel(s, owner.store, device=owner.device, io=owner.io,
                               verify=str(owner.integrity.mode), resident_from=owner,
                               direct_io=owner.reader.direct_io)
            for s in skeletons]
        for lane in self.members[1:]:
            lane.record_every = owner.record_every
        self._cond = threading.Condition()
        self._running = threading.local()   # .lane: the lane the calling thread infers on
        self._free = list(self.members)
        self._queue: list[tuple[float, int]] = []
        self._order = itertools.count()
        self._wanted: Config | None = owner.config   # applied to every lane at the next take
        self._latest = owner.config   # the configuration the next inference uses

    # -- what the executor offers, for all lanes ------------------------------------------------
    @property
    def config(self) -> Config:
        """The configuration the next inference uses."""
        return self._latest

    @property
    def progress(self) -> int:
        """Visits entered by the calling thread's inference (another thread: the furthest behind).

        A deadline's abort check runs on the inferring thread: it must see its own lane.
        """
        lane = getattr(self._running, 'lane', None)
        if lane is not None:
            return int(lane.progress)
        running = [m.progress for m in self.members if m.progress > 0]
        return min(running) if running else 0

    def unit_index(self, ref: int | str) -> int:
        """See :meth:`DemandLayeredModel.unit_index`."""
        return self.owner.unit_index(ref)

    def min_budget(self, mode: str, resident: Any = ()) -> int:
        """See :meth:`DemandLayeredModel.min_budget`."""
        return self.owner.min_budget(mode, resident)

    def effective_resident(self, cfg: Config) -> frozenset[int]:
        """See :meth:`DemandLayeredModel.effective_resident`."""
        return self.owner.effective_resident(cfg)

    def validate(self, **kwargs: Any) -> Config:
        """See :meth:`DemandLayeredModel.validate`."""
        return self.owner.validate(**kwargs)

    def reconfigure(self, **kwargs: Any) -> Config:
        """Validate now; every lane applies it together before the next inference.

        Arguments left out (or None) keep the value the next inference would use.
        """
        with self._cond:
            given = {k: v for k, v in kwargs.items() if v is not None}
            latest = self._latest
            args = {**_arguments(latest), **given}
            if 'budget_bytes' not in given:   # the latest budget, raised to what the mode needs
                probe = self.owner.validate(**{**args, 'budget_bytes': None})
                args['budget_bytes'] = max(latest.budget_bytes,
                                           self.owner.min_budget(probe.mode, probe.resident))
            self._wanted = self._latest = self.owner.validate(**args)
            return self._latest

    def set_io(self, io: IOSettings) -> None:
        """Read with other I/O settings from the next inference (every lane)."""
        with self.exclusive():
            for m in self.members:
                m.set_io(io)
            self._wanted = self._latest

    def follow_owner(self) -> None:
        """After the owner ran on its own (``exclusive``): the lanes take its I/O and plan."""
        self.set_io(self.owner.io)

    def observe(self, fn: Callable[[Record], None]) -> None:
        """Call ``fn`` with the records of every lane's inferences."""
        for m in self.members:
            m.observe(fn)

    def held_budget(self, cfg: Config) -> int:
        """What every lane together may hold under ``cfg`` (the resident units once)."""
        resident = self.owner.effective_resident(cfg)
        units = self.owner.store.units
        return weight_bytes_of(cfg.budget_bytes, sum(units[u].nbytes for u in resident),
                               len(self.members))

    def weight_bytes(self) -> int:
        """Bytes every lane holds together (the owner's resident units once)."""
        return sum(m.weight_bytes() for m in self.members)

    def stats(self) -> dict[str, Any]:
        """The owner's figures, memory, reads and counts summed over the lanes.

        ``budget_bytes`` is what the lanes may hold together, ``lane_budget_bytes`` the
        configuration's budget each runs with.
        """
        each = [m.stats() for m in self.members]
        out = dict(each[0])
        for k in SUMMED:
            out[k] = sum(s[k] for s in each)
        n = len(self.members)
        out['bytes_read_per_inference'] = sum(s['bytes_read_per_inference'] for s in each) / n
        out['lanes'] = n
        out['lane_budget_bytes'] = out['budget_bytes']
        out['budget_bytes'] = self.held_budget(self.config)
        return out

    # -- inference ------------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the model's forward on a free lane."""
        return self.infer(*args, **kwargs)

    def infer(self, *args: Any, deadline: float | None = None, **kwargs: Any) -> Any:
        """One forward pass on a free lane; waiters are served earliest deadline first."""
        lane = self._take(deadline)
        self._running.lane = lane
        try:
            return lane.infer(*args, deadline=deadline, **kwargs)
        finally:
            self._running.lane = None
            with self._cond:
                self._free.append(lane)
                self._cond.notify_all()

    def _take(self, deadline: float | None) -> DemandLayeredModel:
        me = (float('inf') if deadline is None else deadline, next(self._order))
        with self._cond:
            heapq.heappush(self._queue, me)
        try:
            while True:
                with self._cond:
                    while not (self._queue[0] == me and self._free and (
                            self._wanted is None or len(self._free) == len(self.members))):
                        self._cond.wait()
                    cfg = self._wanted
                    if cfg is None:
                        return self._free.pop(0)
                    # every lane is held while they apply, outside the lock: a reconfigure
                    # meanwhile is validated at once and applied on the next turn of this loop
                    held, self._free, self._wanted = self._free, [], None
                try:
                    self._apply(cfg)
                except BaseException:
                    with self._cond:
                        self._wanted = self._wanted or cfg   # tried again at the next take
                    raise
                finally:
                    with self._cond:
                        self._free = held
                        self._cond.notify_all()
        finally:
            with self._cond:
                self._queue.remove(me)
                heapq.heapify(self._queue)
                self._cond.notify_all()   # the next waiter may find a lane free too

    def _apply(self, cfg: Config) -> None:
        """Apply ``cfg`` to every lane, the owner's resident units first (lanes held).

        The other lanes let go of the owner's resident views and their own memory first: a
        mapping still viewed could not be returned when the owner's is remapped, and no lane's
        old memory is held beside the new.
        """
        for m in self.members[1:]:
            m.release()
        for m in self.members:
            m.reconfigure(**_arguments(cfg))
            m.apply_now()

    @contextmanager
    def exclusive(self) -> Iterator[DemandLayeredModel]:
        """Hold every lane (none infers meanwhile); yields the owner."""
        with self._cond:
            while len(self._free) < len(self.members):
                self._cond.wait()
            yield self.owner

    def release(self) -> None:
        """Give every weight byte back; the next inference loads what it needs."""
        with self.exclusive():
            for m in reversed(self.members):
                m.release()
            self._wanted = self._latest

    def close(self) -> None:
        """Release weights, stop reader threads and remove hooks (every lane)."""
        with self.exclusive():
            for m in reversed(self.members):
                m.close()


def _arguments(cfg: Config) -> dict[str, Any]:
    return {'mode': cfg.mode, 'budget_bytes': cfg.budget_bytes, 'resident': cfg.resident,
            'prefetch_depth': cfg.prefetch_depth}
