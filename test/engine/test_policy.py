# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The window policy: places never collide, gates wait for what lay there, minima are tight."""

import random

import pytest

from demand_layering_ros.engine import policy
from demand_layering_ros.engine.policy import Config, IOSettings, Layout, Mode, Region
from demand_layering_ros.engine.simulate import Pipeline, simulate

P = 4096


def random_layout(seed: int, staging: bool = False) -> Layout:
    """Units of 1-40 pages, visits with repeats, one parent held around a few children."""
    rng = random.Random(seed)
    n_units = rng.randint(3, 25)
    nbytes = tuple(rng.randint(1, 40) * P for _ in range(n_units))
    visits = list(range(n_units))
    for _ in range(rng.randint(0, 6)):  # a head applied again later (RetinaNet-like)
        at = rng.randint(1, len(visits))
        visits[at:at] = visits[max(0, at - 3):at]
    visits = [v for k, v in enumerate(visits) if k == 0 or visits[k - 1] != v]
    holds = [()] * len(visits)
    if len(visits) > 4 and rng.random() < 0.5:
        parent = visits[1]
        for k in range(2, min(len(visits), 5)):
            if visits[k] != parent:
                holds[k] = (parent,)
    offsets = tuple(sum(nbytes[:i]) for i in range(n_units))
    return Layout(nbytes, tuple(visits), tuple(holds), offsets, staging)


def before(loads: tuple[policy.Load, ...], j: int) -> set[int]:
    """Every load that must be released before load ``j`` is read (``after``, transitively)."""
    seen: set[int] = set()
    todo = list(loads[j].after)
    while todo:
        i = todo.pop()
        if i not in seen:
            seen.add(i)
            todo += loads[i].after
    return seen


def check(layout: Layout, plan: policy.Plan) -> None:
    lead = 1 if plan.config.mode == Mode.PIPELINED else 0
    loads = plan.loads
    size = {Region.RING: plan.ring_bytes, Region.HELD: plan.held_bytes}
    for j, b in enumerate(loads):
        nb = layout.nbytes[b.unit]
        assert 0 <= b.offset and b.offset + nb <= size[b.region], (j, b)
        for i, a in enumerate(loads[:j]):
            if a.region != b.region:
                continue
            overlap = a.offset < b.offset + nb and b.offset < a.offset + layout.nbytes[a.unit]
            if a.last >= b.first - lead:   # both held at once: never in the same place
                assert not overlap, (i, j, a, b)
            elif overlap:   # b reuses a's place: only after a (or what followed a) is released
                assert i in before(loads, j), (i, j)
    for r in plan.requests:
        for i in r.after:                  # gate: entering visit `gate` released them all
            assert loads[i].last + 1 <= r.gate
        assert r.gate <= min(loads[j].first for j in r.loads)
    for k, j in enumerate(plan.load_of_visit):
        assert j == -1 or (loads[j].unit == layout.visits[k]
                           and loads[j].first <= k <= loads[j].last)
    assert plan.weight_bytes <= plan.config.budget_bytes


@pytest.mark.parametrize('seed', range(40))
@pytest.mark.parametrize('mode', [Mode.SEQUENTIAL, Mode.PIPELINED])
def test_random_layouts_place_and_gate_soundly_from_the_minimum_up(seed, mode):
    layout = random_layout(seed, staging=seed % 4 == 0)
    io = IOSettings(queue_depth=2, request_bytes=8 * P)
    rng = random.Random(seed)
    resident = frozenset(rng.sample(range(len(layout.nbytes)), rng.randint(0, 2)))
    minimum = policy.min_budget(layout, mode, resident, io)
    pipe = Pipeline(layout, tuple(0.001 * b / P for b in layout.nbytes),
                    tuple(0.002 for _ in layout.visits), io=io)
    for budget in (minimum, minimum + 3 * P, minimum * 2, max(minimum, layout.total_bytes)):
        plan = policy.plan(layout, Config(mode, budget, resident), io)
        check(layout, plan)
        assert simulate(pipe, mode, budget, resident).latency_s > 0  # no deadlock
    with pytest.raises(ValueError, match='minimum'):
        policy.plan(layout, Config(mode, minimum - P, resident), io)


def test_pipelined_minimum_is_the_largest_pair_of_neighbours():
    sizes = (3, 1, 5, 2, 2, 7, 1)
    layout = Layout(tuple(s * P for s in sizes), tuple(range(len(sizes))), ((),) * len(sizes))
    pairs = max(a + b for a, b in zip(sizes, sizes[1:]))
    assert policy.min_budget(layout, 'pipelined') == pairs * P
    assert policy.min_budget(layout, 'sequential') == max(sizes) * P
    assert policy.min_budget(layout, 'preload') == sum(sizes) * P


def test_a_parent_held_around_its_children_goes_to_the_held_stack():
    layout = Layout((P, 4 * P, 4 * P, 4 * P), (0, 1, 2, 3), ((), (0,), (0,), ()))
    plan = policy.plan(layout, Config(Mode.PIPELINED, policy.min_budget(layout, 'pipelined'),
                                      frozenset()))
    held = [ld for ld in plan.loads if ld.region == Region.HELD]
    assert [ld.unit for ld in held] == [0] and held[0].last == 2
    assert plan.held_bytes == P and plan.ring_bytes == 8 * P


def test_a_revisited_unit_stays_loaded_when_everything_between_fits():
    # a head (units 1, 2, 3) applied to three levels: with room it is read once
    layout = Layout((P,) * 4, (0, 1, 2, 3, 1, 2, 3, 1, 2, 3), ((),) * 10)
    roomy = policy.plan(layout, Config(Mode.PIPELINED, 3 * P, frozenset()))
    assert sorted(ld.unit for ld in roomy.loads) == [0, 1, 2, 3]
    assert policy.min_budget(layout, 'pipelined') == 2 * P
    tight = policy.plan(layout, Config(Mode.PIPELINED, 2 * P, frozenset()))
    assert len(tight.loads) == 10   # the head does not fit beside the next unit: read again


def test_small_neighbours_are_read_together_and_large_units_in_parts():
    sizes = (1, 1, 1, 20, 1)
    layout = Layout(tuple(s * P for s in sizes), tuple(range(5)), ((),) * 5,
                    tuple(sum(sizes[:i]) * P for i in range(5)))
    io = IOSettings(queue_depth=2, request_bytes=8 * P)
    plan = policy.plan(layout, Config(Mode.PIPELINED, 23 * P, frozenset()), io)
    sizes_read = [r.nbytes // P for r in plan.requests]
    assert sum(sizes_read) == sum(sizes)
    assert sizes_read[0] == 3                     # units 0-2 in one read
    assert max(sizes_read) <= 8 and plan.parts[3] == 3   # unit 3 in three parts
    seq = policy.plan(layout, Config(Mode.SEQUENTIAL, 23 * P, frozenset()), io)
    assert all(len(r.loads) == 1 for r in seq.requests)  # nothing read ahead: nothing joined


@pytest.mark.parametrize('extra', [1, 3001, 4095, 6354370 % 4096])
def test_a_budget_that_is_not_whole_pages_places_loads_on_page_boundaries(extra):
    layout = random_layout(7)
    budget = policy.min_budget(layout, 'pipelined') + 5 * P + extra
    plan = policy.plan(layout, Config(Mode.PIPELINED, budget, frozenset()))
    assert all(ld.offset % P == 0 for ld in plan.loads)
    assert plan.ring_bytes % P == 0 and plan.weight_bytes <= budget


def test_neighbours_are_not_read_together_when_one_would_wait_for_the_other():
    # unit 2 is visited first at 2, kept to 5; unit 3 first needed at 6 lies where unit 1 (kept
    # to 4) lies: joined with unit 2, the read of unit 2 would wait for visit 5 - its own visit
    # (2) could never be entered
    layout = Layout((P, 2 * P, P, 2 * P), (0, 1, 2, 1, 2, 2, 3), ((),) * 7,
                    (0, P, 3 * P, 4 * P))
    for budget in range(policy.min_budget(layout, 'pipelined'), 7 * P, P):
        plan = policy.plan(layout, Config(Mode.PIPELINED, budget, frozenset()),
                           IOSettings(queue_depth=1, request_bytes=16 * P))
        for r in plan.requests:
            assert r.gate <= min(plan.loads[j].first for j in r.loads), (budget, r)


def test_occupied_ranges_say_the_latest_load_over_every_byte():
    rng = random.Random(7)
    capacity = 64
    owner = [None] * capacity   # the latest load over each byte, kept the plain way
    occupants = []
    for load in range(400):
        size = rng.randint(1, 20)
        pos = rng.randrange(capacity - size + 1)
        displaced, occupants = policy._occupy(occupants, pos, size, load)
        assert displaced == tuple(sorted({w for w in owner[pos:pos + size] if w is not None}))
        owner[pos:pos + size] = [load] * size
        # disjoint, in order, and each range's load is every one of its bytes' latest
        assert all(a < b <= c for (a, b, _), (c, _d, _w) in zip(occupants, occupants[1:]))
        assert [w for a, b, w in occupants for _ in range(a, b)] == [
            w for w in owner if w is not None]
        lo = rng.randrange(capacity)
        hi = rng.randint(lo + 1, capacity)
        assert set(policy._over(occupants, lo, hi)) == {w for w in owner[lo:hi] if w is not None}
