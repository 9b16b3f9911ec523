# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The window policy: what is loaded for which visit, where it lies, and when it may be read.

This module is the one owner of the rules the executor runs by and the simulator replays:

- which units are resident (all of them in ``preload`` mode or when the budget holds the model);
- the *loads*: one per stretch of visits a unit serves; a load of a parent stays held while its
  children run (``holds``), and a unit visited again later keeps its load when everything between
  the two visits fits beside it;
- the *ring*: streamed loads are placed in schedule order on a circular arena (the paper's ring
  buffer), skipping places still held; a load may be read into its place once the loads that
  lay there before (``after``) are released; nothing is ever mapped or unmapped per unit;
- the *horizon*: ``sequential`` reads a load only when its visit is entered; ``pipelined`` reads
  ahead as far as the ring allows (or ``prefetch_depth`` visits);
- the *requests*: adjacent small loads are read as one request, large ones as several, so the
  disk sees requests of about ``IOSettings.request_bytes`` with ``queue_depth`` in flight;
- the minimum budget of a mode: the least ring on which every load finds a place while the loads
  of the visit before it (pipelined) or of its own visit (sequential) are held.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
import enum
from functools import cached_property, lru_cache
from typing import Callable, Iterable, Iterator, TYPE_CHECKING

from .align import ALIGN, align_up
from .sizes import mib

if TYPE_CHECKING:
    from .store import LayerStore


class Mode(enum.StrEnum):
    """How units reach memory."""

    PRELOAD = 'preload'        # every unit resident (the stock framework's way)
    SEQUENTIAL = 'sequential'  # read when entered: read, compute, one unit at a time
    PIPELINED = 'pipelined'    # read ahead along the schedule while compute runs


class Region(enum.StrEnum):
    """Where a load lies."""

    RESIDENT = 'resident'   # units kept loaded for the whole configuration
    HELD = 'held'   # a stack for parents held while their children stream
    RING = 'ring'   # the arena the stream flows through


@dataclass(frozen=True)
class Config:
    """What the executor runs with; replaced as a whole by ``reconfigure``."""

    mode: Mode
    budget_bytes: int
    resident: frozenset[int]
    prefetch_depth: int | None = None


@dataclass(frozen=True)
class IOSettings:
    """How reads are issued: request size (coalescing and splitting) and requests in flight."""

    queue_depth: int = 2
    request_bytes: int = 2 << 20
    staging_slots: int = 2   # CUDA: pinned host slots of request_bytes (read k+1 while copying k)

    def __post_init__(self) -> None:
        if self.queue_depth < 1 or self.request_bytes < ALIGN or self.staging_slots < 1:
            raise ValueError(f'invalid I/O settings {self}')


@dataclass(frozen=True)
class Layout:
    """The store's facts the policy needs: unit sizes and file offsets, visits, holds."""

    nbytes: tuple[int, ...]
    visits: tuple[int, ...]
    holds: tuple[tuple[int, ...], ...]
    offsets: tuple[int, ...] = ()   # file offsets; empty: never coalesce
    staging: bool = False           # units pass through pinned host staging (CUDA)

    def __hash__(self) -> int:  # plans are cached per layout: hash the long tuples once
        return self._hash

    @cached_property
    def _hash(self) -> int:
        return hash((self.nbytes, self.visits, self.holds, self.offsets, self.staging))

    @classmethod
    def of(cls, store: 'LayerStore', staging: bool = False) -> 'Layout':
        """The layout of a store."""
        return cls(tuple(u.nbytes for u in store.units), tuple(store.schedule),
                   tuple(store.holds.get(k, ()) for k in range(len(store.schedule))),
                   tuple(u.offset for u in store.units), staging)

    @property
    def total_bytes(self) -> int:
        """Bytes of every unit."""
        return sum(self.nbytes)

    @cached_property
    def held_until(self) -> tuple[int, ...]:
        """Per visit: the last visit through which its unit is held by a running parent."""
        n = len(self.visits)
        out = list(range(n))
        for k in range(n):
            j = k
            while j + 1 < n and self.visits[k] in self.holds[j + 1]:
                j += 1
            out[k] = j
        return tuple(out)


@dataclass(frozen=True)
class Load:
    """One unit in the ring for a stretch of visits."""

    unit: int
    first: int            # the first visit it serves
    last: int             # released when a visit after this one is entered
    region: Region
    offset: int           # bytes into its region
    after: tuple[int, ...]  # loads that lay in its place before: released before it is read


@dataclass(frozen=True)
class Request:
    """One read: a contiguous range of the file into a contiguous range of the ring."""

    file_offset: int
    region: Region
    offset: int              # into the region
    nbytes: int
    loads: tuple[int, ...]   # loads it fills (wholly or in part)
    gate: int                # it may be read once this visit was entered (-1: from the start)
    after: tuple[int, ...]   # union of its loads' ``after`` (their places must be free)


@dataclass(frozen=True)
class Plan:
    """A configuration turned into loads, places and requests."""

    config: Config
    io: IOSettings
    resident: frozenset[int]
    resident_bytes: int
    held_bytes: int
    ring_bytes: int
    staging_bytes: int
    loads: tuple[Load, ...]
    requests: tuple[Request, ...]
    resident_offsets: dict[int, int]        # resident unit -> bytes into the resident region
    resident_requests: tuple[Request, ...]  # the reads that bring the resident units in
    load_of_visit: tuple[int, ...]          # per visit: its load, -1 for a resident unit
    released_on_entering: tuple[tuple[int, ...], ...]  # per visit k: loads whose last is k-1
    parts: tuple[int, ...]                  # per load: how many requests fill it

    @property
    def weight_bytes(self) -> int:
        """Everything the configuration holds: resident units, held stack, ring and staging."""
        return self.resident_bytes + self.held_bytes + self.ring_bytes + self.staging_bytes

    def base(self, region: Region) -> int:
        """Where ``region`` starts in the arena that holds all three."""
        if region == Region.RESIDENT:
            return 0
        return self.resident_bytes + (self.held_bytes if region == Region.RING else 0)

    @property
    def streams(self) -> bool:
        """Whether anything is read per inference."""
        return bool(self.loads)


# -- budgets ------------------------------------------------------------------------------------
def effective_resident(layout: Layout, config: Config, io: IOSettings) -> frozenset[int]:
    """Units kept loaded: all of them in preload mode or when the budget holds the model."""
    everything = min_budget(layout, Mode.PRELOAD, (), io)
    if config.mode == Mode.PRELOAD or config.budget_bytes >= everything:
        return frozenset(range(len(layout.nbytes)))
    return config.resident


def staging_bytes(layout: Layout, resident: Iterable[int], io: IOSettings) -> int:
    """Pinned host staging (CUDA): ``staging_slots`` requests of at most the largest unit."""
    if not layout.staging:
        return 0
    res = set(resident)
    largest = max((b for i, b in enumerate(layout.nbytes) if i not in res), default=0)
    if not largest:  # everything resident: one slot to bring them in
        largest = max(layout.nbytes, default=0)
    return io.staging_slots * min(io.request_bytes, align_up(largest))


def min_budget(layout: Layout, mode: Mode | str, resident: Iterable[int] = (),
               io: IOSettings | None = None) -> int:
    """The least budget ``mode`` accepts with ``resident`` units.

    Resident units + the held stack at its deepest + the least ring on which every streamed
    load finds a place + staging (CUDA).
    """
    io = io or IOSettings()
    mode = Mode(mode)
    everything = layout.total_bytes + staging_bytes(layout, range(len(layout.nbytes)), io)
    if mode == Mode.PRELOAD:
        return everything
    res = frozenset(resident)
    held, ring = _min_regions(layout, res, _lead(mode))
    total = sum(layout.nbytes[i] for i in res) + held + ring + staging_bytes(layout, res, io)
    return min(total, everything)


def weight_bytes_of(budget_bytes: int, resident_bytes: int, lanes: int) -> int:
    """What ``lanes`` lanes hold at most under one configuration: the resident units once."""
    return budget_bytes + (lanes - 1) * (budget_bytes - resident_bytes)


def plan(layout: Layout, config: Config, io: IOSettings | None = None) -> Plan:
    """Turn a validated configuration into loads, places and requests.

    ValueError when the budget is below the mode's minimum.
    """
    return _plan(layout, config, io or IOSettings())


@lru_cache(maxsize=256)
def _plan(layout: Layout, config: Config, io: IOSettings) -> Plan:
    resident = effective_resident(layout, config, io)
    res_bytes = sum(layout.nbytes[i] for i in resident)
    staging = staging_bytes(layout, resident, io)
    n = len(layout.visits)
    offsets, res_requests = _resident(layout, resident, io)
    if len(resident) == len(layout.nbytes):
        return Plan(config, io, resident, res_bytes, 0, 0, staging, (), (), offsets,
                    res_requests, (-1,) * n, ((),) * (n + 1), ())
    # places are page-aligned (direct I/O reads into them): the room is whole pages
    room = (config.budget_bytes - res_bytes - staging) // ALIGN * ALIGN
    lead = _lead(config.mode)
    least = sum(_min_regions(layout, resident, lead))
    if room < least:
        minimum = min_budget(layout, config.mode, resident, io)
        asked, least = mib(config.budget_bytes, minimum, exact={minimum})
        raise ValueError(f'budget {asked} is below the {config.mode} minimum of {least}')
    # the placement is greedy: where a larger room happens not to work out, the least room's
    # arrangement (which does) is used - within the budget, with less read-ahead
    arranged = _arrange(layout, resident, room, lead) or _arrange(layout, resident, least, lead)
    assert arranged is not None
    drafts, load_of_visit, held, ring = arranged
    loads = [Load(d.unit, d.first, d.last, d.region, d.offset, d.after) for d in drafts]
    released: list[list[int]] = [[] for _ in range(n + 1)]
    for j, ld in enumerate(loads):
        released[ld.last + 1].append(j)
    requests, parts = _requests(layout, loads, config, io)
    return Plan(config, io, resident, res_bytes, held, ring, staging, tuple(loads),
                tuple(requests), offsets, res_requests, tuple(load_of_visit),
                tuple(tuple(r) for r in released), tuple(parts))


# -- rules --------------------------------------------------------------------------------------
def _lead(mode: Mode) -> int:
    # pipelined: a load must find its place while the visit before it still runs
    return 1 if mode == Mode.PIPELINED else 0


@dataclass
class _Draft:
    unit: int
    first: int
    last: int
    region: Region = Region.RING
    offset: int = 0
    after: tuple[int, ...] = ()


def _drafts(layout: Layout, resident: frozenset[int], capacity: int
            ) -> tuple[list[_Draft], list[int]]:
    """Loads in first-visit order, and the load of each visit (-1 for resident units).

    A parent held while its children run goes to the held stack (it would split the ring).
    """
    loads: list[_Draft] = []
    of_visit: list[int] = []
    latest: dict[int, int] = {}
    for k, u in enumerate(layout.visits):
        if u in resident:
            of_visit.append(-1)
            continue
        j = latest.get(u)
        if j is not None and (loads[j].last >= k - 1 or _fits_beside(
                layout, resident, u, loads[j].last, k, capacity)):
            loads[j].last = max(loads[j].last, layout.held_until[k])
            of_visit.append(j)
            continue
        latest[u] = len(loads)
        of_visit.append(len(loads))
        held = layout.held_until[k] > k
        loads.append(_Draft(u, k, layout.held_until[k], Region.HELD if held else Region.RING))
    return loads, of_visit


def _fits_beside(layout: Layout, resident: frozenset[int], u: int, since: int, until: int,
                 capacity: int) -> bool:
    """Keep ``u`` loaded from visit ``since`` to ``until`` if everything between fits beside it."""
    between = {v for v in layout.visits[since + 1:until] if v not in resident and v != u}
    return layout.nbytes[u] + sum(layout.nbytes[v] for v in between) <= capacity


def _stack(layout: Layout, drafts: list[_Draft], lead: int) -> int:
    """Place the held loads on a stack (parents nest); return its deepest extent."""
    occupants: list[tuple[int, int, int]] = []
    live: list[int] = []
    depth = 0
    for j, d in enumerate(drafts):
        if d.region != Region.HELD:
            continue
        live = [i for i in live if drafts[i].last >= d.first - lead]
        d.offset = max((drafts[i].offset + layout.nbytes[drafts[i].unit] for i in live),
                       default=0)
        size = layout.nbytes[d.unit]
        d.after, occupants = _occupy(occupants, d.offset, size, j)
        depth = max(depth, d.offset + size)
        live.append(j)
    return depth


def _place(layout: Layout, drafts: list[_Draft], capacity: int, lead: int) -> bool:
    """Place the ring's loads in ``capacity`` bytes; False when one finds no place."""
    occupants: list[tuple[int, int, int]] = []   # (start, end, load): latest load per range
    alive: list[int] = []
    previous_end = 0
    ring = [j for j, d in enumerate(drafts) if d.region == Region.RING]
    for k, j in enumerate(ring):
        d = drafts[j]
        size = layout.nbytes[d.unit]
        if size > capacity:
            return False
        cutoff = d.first - lead
        alive = [i for i in alive if drafts[i].last >= cutoff]
        busy = [(drafts[i].offset, layout.nbytes[drafts[i].unit]) for i in alive]
        nxt = drafts[ring[k + 1]] if k + 1 < len(ring) else None
        following = (0, []) if nxt is None else (layout.nbytes[nxt.unit], [
            (drafts[i].offset, layout.nbytes[drafts[i].unit]) for i in alive
            if drafts[i].last >= nxt.first - lead])

        def freed(pos: int, size: int) -> int:
            return max((drafts[w].last for w in _over(occupants, pos, pos + size)), default=-1)

        pos = _fit(busy, size, capacity, freed, following, previous_end)
        if pos is None:
            return False
        previous_end = pos + size
        d.offset = pos
        d.after, occupants = _occupy(occupants, pos, size, j)
        alive.append(j)
    return True


def _fit(busy: list[tuple[int, int]], size: int, capacity: int,
         freed: Callable[[int, int], int], following: tuple[int, list[tuple[int, int]]],
         previous_end: int) -> int | None:
    """Where ``size`` free bytes go among the ``busy`` (start, length) ranges; None: nowhere.

    A load cannot wrap round the end of the arena. Among the places that leave room for the
    following load (``following``: its size, and what will still be held when it is placed),
    the one freed earliest wins (``freed(pos, size)``: the last visit of the loads that lay
    there: the earliest a read may start); then the one that leaves the largest free gap; then
    one right after the previous load (neighbours in the file become one read); then one against
    an end of the arena (two stacks growing towards each other keep the free space in one
    piece: this is what lets the current and the next load share the pipelined minimum).
    """
    starts = {0, capacity - size, previous_end} | {b + n for b, n in busy} | {
        b - size for b, _n in busy}
    best: tuple[tuple[bool, int, int, bool, bool], int] | None = None
    next_size, next_busy = following
    for pos in sorted(starts):
        if pos < 0 or pos + size > capacity or any(pos < b + n and b < pos + size
                                                   for b, n in busy):
            continue
        room_next = _largest_gap(next_busy + [(pos, size)], capacity) >= next_size
        # the score's later terms are computed only for a place whose first ones can win
        if best is not None and room_next < best[0][0]:
            continue
        earliest = -freed(pos, size)
        if best is not None and (room_next, earliest) < best[0][:2]:
            continue
        score = (room_next, earliest, _largest_gap(busy + [(pos, size)], capacity),
                 pos == previous_end, pos == 0 or pos + size == capacity)
        if best is None or score > best[0]:
            best = (score, pos)
    return None if best is None else best[1]


def _largest_gap(busy: list[tuple[int, int]], capacity: int) -> int:
    edge, gap = 0, 0
    for b, n in sorted(busy):   # comparisons, not max(): this runs for every place tried
        if b - edge > gap:
            gap = b - edge
        if b + n > edge:
            edge = b + n
    return gap if gap > capacity - edge else capacity - edge


def _occupy(occupants: list[tuple[int, int, int]], pos: int, size: int, load: int
            ) -> tuple[tuple[int, ...], list[tuple[int, int, int]]]:
    """Record ``load`` over [pos, pos+size); return the loads it displaces, and ``occupants``.

    ``occupants`` are (start, end, load), disjoint and in order: the latest load over each
    range. They are updated in place.
    """
    lo, hi = pos, pos + size
    i = bisect_right(occupants, lo, key=_end)   # the first range that ends after lo
    j = i
    while j < len(occupants) and occupants[j][0] < hi:
        j += 1
    pieces = [(lo, hi, load)]
    if i < j and occupants[i][0] < lo:
        pieces.insert(0, (occupants[i][0], lo, occupants[i][2]))
    if i < j and occupants[j - 1][1] > hi:
        pieces.append((hi, occupants[j - 1][1], occupants[j - 1][2]))
    before = tuple(sorted({who for _a, _b, who in occupants[i:j]}))
    occupants[i:j] = pieces
    return before, occupants


def _over(occupants: list[tuple[int, int, int]], lo: int, hi: int) -> Iterator[int]:
    """The loads ``occupants`` (see ``_occupy``) record over [lo, hi)."""
    k = bisect_right(occupants, lo, key=_end)
    while k < len(occupants) and occupants[k][0] < hi:
        yield occupants[k][2]
        k += 1


def _end(occupant: tuple[int, int, int]) -> int:
    return occupant[1]


def _lower_bound(layout: Layout, drafts: list[_Draft], lead: int) -> int:
    """The most ring bytes held at once by the loads of one visit (and the next, pipelined)."""
    need = [0] * (len(layout.visits) + 1)
    for d in drafts:   # a load occupies visits [first - lead, last]
        if d.region == Region.RING:
            for k in range(max(0, d.first - lead), d.last + 1):
                need[k] += layout.nbytes[d.unit]
    return max(need, default=0)


def _arrange(layout: Layout, resident: frozenset[int], room: int, lead: int
             ) -> tuple[list[_Draft], list[int], int, int] | None:
    """Loads placed in ``room`` bytes: (loads, load per visit, held stack, ring); None: no fit.

    Keeping revisited units loaded needs room; when it does not fit, every visit of such a unit
    reads it again.
    """
    for keep in (room, 0):
        drafts, of_visit = _drafts(layout, resident, keep)
        held = _stack(layout, drafts, lead)
        ring = room - held
        if ring > 0 and _place(layout, drafts, ring, lead):
            return drafts, of_visit, held, ring
    return None


@lru_cache(maxsize=1024)
def _min_regions(layout: Layout, resident: frozenset[int], lead: int) -> tuple[int, int]:
    """(held stack, ring) at the least room the mode with ``lead`` needs beside ``resident``."""
    drafts, _ = _drafts(layout, resident, 0)
    lo = _stack(layout, drafts, lead) + _lower_bound(layout, drafts, lead)
    if lo == _stack(layout, drafts, lead):   # nothing streams
        return lo, 0
    hi, step = lo, ALIGN
    found = _arrange(layout, resident, hi, lead)
    while found is None:   # grow the step until a room fits ...
        lo, hi, step = hi, hi + step, step * 2
        found = _arrange(layout, resident, hi, lead)
    while hi - lo > ALIGN:   # ... then bisect: lo fails, hi fits
        mid = align_up((lo + hi) // 2)
        trial = _arrange(layout, resident, mid, lead) if mid < hi else None
        if mid >= hi:
            break
        if trial is None:
            lo = mid
        else:
            hi, found = mid, trial
    return found[2], found[3]


def _gate(config: Config, loads: list[Load], first: int, after: Iterable[int]) -> int:
    """The visit whose entry lets a read for visit ``first`` start (-1: from the start).

    Its place must be free (every load in ``after`` released: a load is released when the visit
    after its last is entered) and the horizon must reach it: ``sequential`` reads a load once
    its visit is entered, ``pipelined`` up to ``prefetch_depth`` visits ahead (all: None).
    """
    if config.mode == Mode.SEQUENTIAL:
        horizon = first
    elif config.prefetch_depth is None:
        horizon = -1
    else:
        horizon = first - config.prefetch_depth + 1
    g = max([horizon] + [loads[i].last + 1 for i in after])
    return g if g > 0 else -1


def _resident(layout: Layout, resident: frozenset[int], io: IOSettings
              ) -> tuple[dict[int, int], tuple[Request, ...]]:
    """Resident units side by side in unit order, and the reads that bring them in."""
    offsets: dict[int, int] = {}
    cursor = 0
    for u in sorted(resident):
        offsets[u] = cursor
        cursor += layout.nbytes[u]
    size = _request_size(layout, io, [layout.nbytes[u] for u in resident])
    out: list[Request] = []
    for u in sorted(resident):
        nb = layout.nbytes[u]
        prev = out[-1] if out else None
        if (prev is not None and layout.offsets and prev.file_offset + prev.nbytes
                == layout.offsets[u] and prev.offset + prev.nbytes == offsets[u]
                and prev.nbytes + nb <= size):
            out[-1] = Request(prev.file_offset, Region.RESIDENT, prev.offset, prev.nbytes + nb,
                              (), -1, ())
            continue
        for lo, n in _pieces(nb, size):
            out.append(Request(layout.offsets[u] + lo if layout.offsets else -1,
                               Region.RESIDENT, offsets[u] + lo, n, (), -1, ()))
    return offsets, tuple(out)


def _request_size(layout: Layout, io: IOSettings, sizes: Iterable[int]) -> int:
    """Bytes per request: ``io.request_bytes``, or less where a request must fit a staging slot."""
    if layout.staging:
        return min(io.request_bytes, max(sizes, default=io.request_bytes))
    return io.request_bytes


def _pieces(nbytes: int, size: int) -> list[tuple[int, int]]:
    """(offset, length) of equal aligned parts of at most ``size`` bytes covering ``nbytes``."""
    step = align_up(-(-nbytes // -(-nbytes // size)))
    return [(lo, min(step, nbytes - lo)) for lo in range(0, nbytes, step)]


def _requests(layout: Layout, loads: list[Load], config: Config, io: IOSettings
              ) -> tuple[list[Request], list[int]]:
    """Group loads into reads: adjacent small ones together, large ones in parts."""
    size = _request_size(layout, io, (layout.nbytes[ld.unit] for ld in loads))
    coalesce = config.mode == Mode.PIPELINED and bool(layout.offsets)
    out: list[Request] = []
    parts = [0] * len(loads)
    group: list[int] = []

    def add(file_offset: int, offset: int, nbytes: int, members: tuple[int, ...]) -> None:
        after = tuple(sorted({a for j in members for a in loads[j].after}))
        first = min(loads[j].first for j in members)
        out.append(Request(file_offset, loads[members[0]].region, offset, nbytes, members,
                           _gate(config, loads, first, after), after))
        for j in members:
            parts[j] += 1

    def flush() -> None:
        if group:
            head = loads[group[0]]
            add(layout.offsets[head.unit] if layout.offsets else -1, head.offset,
                sum(layout.nbytes[loads[j].unit] for j in group), tuple(group))
            group.clear()

    for j, ld in enumerate(loads):
        nb = layout.nbytes[ld.unit]
        if group:
            prev = loads[group[-1]]
            pb = layout.nbytes[prev.unit]
            adjacent = (coalesce and prev.region == ld.region == Region.RING
                        and layout.offsets[prev.unit] + pb == layout.offsets[ld.unit]
                        and prev.offset + pb == ld.offset
                        and sum(layout.nbytes[loads[i].unit] for i in group) + nb <= size
                        # joining must not make the group's reads wait longer (a later load
                        # may have to wait for a place its neighbour's visit needs: deadlock)
                        and _gate(config, loads, loads[group[0]].first, set().union(
                            *(loads[i].after for i in group), ld.after))
                        <= _gate(config, loads, loads[group[0]].first, set().union(
                            *(loads[i].after for i in group))))
            if not adjacent:
                flush()
        if nb > size:   # split: the parts are read in parallel
            flush()
            for lo, n in _pieces(nb, size):
                add(layout.offsets[ld.unit] + lo if layout.offsets else -1, ld.offset + lo, n,
                    (j,))
            continue
        group.append(j)
    flush()
    return out, parts
