# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Simulator and planner against pipelines computed by hand (units of one page, times in s)."""

import re

import pytest

from demand_layering_ros.engine import planner
from demand_layering_ros.engine.policy import IOSettings, Layout
from demand_layering_ros.engine.simulate import Pipeline, simulate
from demand_layering_ros.engine.sizes import mib, MiB

B = 4096  # every unit is one page: units are page multiples in real stores


def pipe(read, compute, holds=None, nbytes=B, **kw):
    n = len(compute)
    layout = Layout((nbytes,) * len(read), tuple(range(n)), tuple(holds or [()] * n))
    return Pipeline(layout, tuple(read), tuple(compute), **kw)


BALANCED = pipe([1, 1, 1], [1, 1, 1])
IO_BOUND = pipe([2, 2, 2, 2], [1, 1, 1, 1])


def test_sequential_is_read_then_compute_per_unit():
    pred = simulate(BALANCED, 'sequential', B)
    assert pred.latency_s == 6
    assert pred.stall_s == (1, 1, 1)
    assert pred.peak_bytes == B


def test_pipelined_hides_reads_behind_compute():
    # reads 0-1, 1-2 at start; unit 2 is read 2-3 while unit 1 computes 2-3
    assert simulate(BALANCED, 'pipelined', 2 * B).latency_s == 4
    assert simulate(BALANCED, 'pipelined', 2 * B).peak_bytes == 2 * B
    assert simulate(BALANCED, 'preload', 3 * B).latency_s == 3


def test_io_bound_pipeline_waits_for_every_read():
    pred = simulate(IO_BOUND, 'pipelined', 2 * B)
    assert pred.latency_s == 9
    assert pred.stall_s == (2, 1, 1, 1)


def test_resident_units_are_not_read_and_count_against_the_budget():
    # unit 0 resident: reads 1 (0-2), 2 (2-4); unit 3 waits for room until visit 2 (3), reads 4-6
    pred = simulate(IO_BOUND, 'pipelined', 3 * B, {0})
    assert pred.latency_s == 7
    assert pred.bytes_read == 3 * B
    with pytest.raises(ValueError, match='minimum'):
        simulate(IO_BOUND, 'pipelined', 3 * B - 1, {0})


def figures(message):
    """The sizes a message shows, as shown."""
    return re.findall(r'-?[\d.]+ MiB(?: \(\d+ bytes\))?', message)


def test_sizes_in_refusals_read_differently_where_they_differ():
    # the probe's: 2.4531 MiB read as the 2.5 MiB minimum it is below, 0.01 MiB as 0.0
    asked, least = int(2.4531 * MiB), int(2.4531 * MiB) + 100
    assert mib(asked, least) == [f'2.45 MiB ({asked} bytes)', f'2.45 MiB ({least} bytes)']
    assert mib(int(0.01 * MiB), 2 * MiB) == ['0.01 MiB', '2.00 MiB']
    assert mib(1000, 2 * MiB) == ['0.00 MiB (1000 bytes)', '2.00 MiB']
    assert mib(0, 2 * MiB) == ['0.00 MiB', '2.00 MiB']
    # a least the reader may set: its bytes always (two decimals round it down as often as up)
    assert mib(MiB, 3 * MiB, exact={3 * MiB}) == ['1.00 MiB', f'3.00 MiB ({3 * MiB} bytes)']
    # every refusal of the planner and the simulator, a page below its least
    p = pipe([1] * 8, [1] * 8, nbytes=600 * B)    # units of 2.34 MiB
    least, lanes = p.min_budget('sequential'), planner.least_held(p, 2).held_bytes(2)
    fixed = planner.Request(None, {'a': least - B})
    for refuse in (lambda: planner.plan_for_budget(p, least - B),
                   lambda: p.plan('sequential', least - B),
                   lambda: planner.check_request({'a': p}, fixed),
                   lambda: planner.plan_within(p, lanes - B, lanes=2)):
        with pytest.raises(ValueError) as err:
            refuse()
        shown = figures(str(err.value))
        assert len(shown) == 2 and shown[0] != shown[1], str(err.value)
        assert shown[1].endswith(' bytes)'), shown   # the least: its bytes, to be set


def test_prefetch_depth_limits_read_ahead():
    # depth 1 behaves like sequential reads but submitted at the same moments as the executor's
    assert simulate(BALANCED, 'pipelined', 2 * B, prefetch_depth=1).latency_s == 6
    assert simulate(BALANCED, 'pipelined', 2 * B, prefetch_depth=2).latency_s == 4


def test_parent_held_while_children_run():
    holds = [(), (0,), (0,), ()]
    p = pipe([1] * 4, [1] * 4, holds)
    assert p.min_budget('sequential') == 2 * B   # the parent beside one child
    assert p.min_budget('pipelined') == 3 * B    # ... and the next child
    pred = simulate(p, 'sequential', 2 * B)
    assert pred.latency_s == 8 and pred.peak_bytes == 2 * B
    with pytest.raises(ValueError):
        simulate(p, 'sequential', 2 * B - 1)


def test_stream_bandwidth_and_handoff_in_the_pipeline():
    slow = pipe([1, 1, 1], [1, 1, 1], stream_bps=B / 2, handoff_s=0.5,
                io=IOSettings(queue_depth=1))
    # streaming reads take 2: 0-2, 2-4, then 4-6 once unit 0 is released; each ready
    # 0.5 after its read: computes 2.5-3.5, 4.5-5.5, 6.5-7.5
    assert simulate(slow, 'pipelined', 2 * B).latency_s == 7.5
    # sequential reads are timed alone (read_s): hand-off only
    assert simulate(slow, 'sequential', B).latency_s == 7.5


def test_requests_in_flight_share_the_stream():
    # two in flight: reads 0 and 1 share the disk 0-4 (each alone would take 2); unit 0
    # computes 4.5-5.5; read 2 has the disk to itself 5.5-7.5 beside unit 1's compute
    # (5.5-6.5); unit 2 computes 8-9
    shared = pipe([1, 1, 1], [1, 1, 1], stream_bps=B / 2, handoff_s=0.5,
                  io=IOSettings(queue_depth=2))
    pred = simulate(shared, 'pipelined', 2 * B)
    assert pred.latency_s == 9.0
    assert pred.stall_s == (4.5, 0.0, 1.5)
    assert pred.overlap_s == (0.0, 1.0, 0.0)
    # read_s are times of a unit read alone: those reads are replayed one at a time
    assert simulate(shared, 'sequential', B).latency_s == 7.5


def test_plan_for_budget_keeps_resident_what_cannot_hide():
    plan = planner.plan_for_budget(IO_BOUND, 3 * B)
    assert plan.mode == 'pipelined' and plan.resident
    assert plan.predicted_s <= 7
    assert plan.predicted_s == simulate(IO_BOUND, 'pipelined', 3 * B, plan.resident).latency_s
    assert planner.plan_for_budget(IO_BOUND, 4 * B).mode == 'preload'
    assert planner.plan_for_budget(IO_BOUND, B + B // 2).mode == 'sequential'
    with pytest.raises(ValueError, match='minimum'):
        planner.plan_for_budget(IO_BOUND, B - 1)


def test_plan_for_deadline_takes_the_least_memory_that_meets_it():
    plan, met = planner.plan_for_deadline(IO_BOUND, 7.5, resolution=1)
    assert met and plan.predicted_s <= 7.5
    assert plan.budget_bytes == 3 * B  # less cannot hold a resident unit and stream
    plan, met = planner.plan_for_deadline(IO_BOUND, 3.0)
    assert not met and plan.mode == 'preload'  # even all-resident takes 4
    plan, met = planner.plan_for_deadline(IO_BOUND, 100)
    assert met and plan.mode == 'sequential' and plan.budget_bytes == B


def test_curve_is_a_pareto_front_from_minimum_to_preload():
    curve = planner.pareto_curve(IO_BOUND, points=8)
    assert curve[0].budget_bytes == B and curve[-1].mode == 'preload'
    budgets = [q.budget_bytes for q in curve]
    delays = [q.predicted_s for q in curve]
    assert budgets == sorted(budgets) and delays == sorted(delays, reverse=True)
    assert len(set(delays)) == len(delays)


def test_analytic_resident_bytes():
    # compute 4 s at B/2 bytes/s streams 2 of the 4 units: 2 must stay resident
    assert planner.analytic_resident_bytes(IO_BOUND, B / 2) == 2 * B
    assert planner.analytic_resident_bytes(IO_BOUND, 100.0 * B) == 0


def test_compute_slows_only_while_reads_overlap_it():
    slow = pipe([1, 1, 1], [1, 1, 1], compute_contention=1.5)
    # reads 0-1, 1-2; unit 0 computes 1-2.5 (read 1 overlaps it: +0.5); unit 1 enters at 2.5,
    # read 2 runs 2.5-3.5 under its compute: 2.5-4.0; unit 2 computes alone 4.0-5.0
    assert simulate(slow, 'pipelined', 2 * B).latency_s == 5.0
    assert simulate(slow, 'sequential', B).latency_s == 6  # nothing overlaps


def test_split_budget_gives_minimums_then_shares_in_proportion_to_need():
    small = pipe([1, 1], [1, 1])                 # 2 units: minimum 2B, whole 2B
    big = pipe([2] * 6, [1] * 6)                 # 6 units: minimum 2B, whole 6B
    joint = planner.split_budget([planner.Demand('a', IO_BOUND), planner.Demand('b', big)],
                                 8 * B)
    assert joint.total_bytes <= 8 * B
    assert joint.plans['b'].budget_bytes > joint.plans['a'].budget_bytes   # b needs more
    fixed = planner.split_budget([planner.Demand('a', IO_BOUND, budget_bytes=4 * B),
                                  planner.Demand('b', big)], 8 * B)
    assert fixed.plans['a'].mode == 'preload' and fixed.plans['b'].budget_bytes <= 4 * B
    with pytest.raises(ValueError, match='cannot hold'):
        planner.split_budget([planner.Demand('a', small), planner.Demand('b', big)], 3 * B)


def test_joint_plan_meets_every_target_with_the_least_total_or_misses_the_fewest():
    demands = [planner.Demand('a', IO_BOUND, target_s=7.5),
               planner.Demand('b', BALANCED, target_s=100.0)]
    joint = planner.plan_jointly(demands)
    assert not joint.missed
    least_a, _met = planner.plan_for_deadline(IO_BOUND, 7.5)
    assert joint.plans['a'].budget_bytes == least_a.budget_bytes
    assert joint.plans['b'].budget_bytes == B   # anything meets 100 s: the least
    tight = planner.plan_jointly([planner.Demand('a', IO_BOUND, target_s=4.0),
                                  planner.Demand('b', BALANCED, target_s=4.0)], 5 * B)
    assert tight.total_bytes <= 5 * B
    assert tight.missed == ('a',)   # b can be met (pipelined, 2 pages); a needs all 4 pages


def test_a_visit_that_waited_for_its_unit_pays_the_wake_up():
    woken = pipe([1, 1, 1], [1, 1, 1], wake_s=0.25)
    assert simulate(woken, 'sequential', B).latency_s == 6 + 3 * 0.25   # every visit waits
    assert simulate(woken, 'preload', 3 * B).latency_s == 3             # none does
    # pipelined: only the visits whose unit is late pay (here unit 0: read 0-1, computes
    # 1-2.25; units 1 and 2 are ready when entered)
    pred = simulate(woken, 'pipelined', 2 * B)
    assert pred.latency_s == 4.25
    assert pred.latency_s == 4 + 0.25 * sum(1 for s in pred.stall_s if s > 0)


def test_a_streamed_request_starts_its_lag_after_its_turn_while_the_disk_waits():
    # one reader: read 0 runs 0.5-2.5 (its turn at 0), read 1 3-5 (its turn as the reader came
    # free at 2.5); unit 0 computes 3-4 after the 0.5 hand-off; read 2 (gate: visit 1, entered
    # at 4) waits for the reader until 5, runs 5.5-7.5; unit 1 computes 5.5-6.5, unit 2 8-9
    lagged = pipe([1, 1, 1], [1, 1, 1], stream_bps=B / 2, handoff_s=0.5, request_lag_s=0.5,
                  io=IOSettings(queue_depth=1))
    pred = simulate(lagged, 'pipelined', 2 * B)
    assert pred.latency_s == 9.0   # without the lag: 7.5 (three lags of 0.5)
    assert pred.stall_s == (3.0, 1.5, 1.5)
    # sequential reads are timed alone, a reader's wake-up is in their hand-off: no lag
    assert simulate(lagged, 'sequential', B).latency_s == 7.5
    # two readers: reads 0 and 1 lag together (0-0.5), share the disk 0.5-4.5; unit 0 computes
    # 5-6, unit 1 6-7; read 2 (gate at 6) runs 6.5-8.5; unit 2 computes 9-10
    two = simulate(pipe([1, 1, 1], [1, 1, 1], stream_bps=B / 2, handoff_s=0.5,
                        request_lag_s=0.5, io=IOSettings(queue_depth=2)), 'pipelined', 2 * B)
    assert two.latency_s == 10.0   # test_requests_in_flight_share_the_stream without it: 9
    assert two.stall_s == (5.0, 0.0, 2.0)
