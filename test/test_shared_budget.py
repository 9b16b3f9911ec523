# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""One budget for several engines, without ROS: joint plans, targets, handing plans over."""

import re
import threading
import time
from types import SimpleNamespace

import pytest

from demand_layering_ros.engine import planner
from demand_layering_ros.engine.planner import joint_plan, Request
from demand_layering_ros.engine.policy import Layout
from demand_layering_ros.engine.simulate import Pipeline
from demand_layering_ros.engine.sizes import MiB
from demand_layering_ros.engine.turns import Turns
from demand_layering_ros.realtime.auto_tune import LOW
from demand_layering_ros.realtime.shared_budget import engine_targets, SharedBudget, StreamEngine

B = 4096


def pipe(units: int, read: float = 0.01, compute: float = 0.01) -> Pipeline:
    layout = Layout((B,) * units, tuple(range(units)), ((),) * units)
    return Pipeline(layout, (read,) * units, (compute,) * units)


# b is I/O bound: each page held resident saves some of its 0.25 s at the pipelined minimum
SMALL, LARGE = pipe(8), pipe(12, read=0.02)


class FakeEngine:
    """An executor's budget side: a plan is taken now and applied at the next inference."""

    def __init__(self, pipeline: Pipeline, held: int = 0, lanes: int = 1) -> None:
        self.calibrator = SimpleNamespace(pipeline=pipeline)
        self.predicted_s = None
        self.held = held
        self.lanes = lanes
        self.pending = None
        self.handed = []

    def apply_plan(self, plan):
        self.handed.append(plan)
        self.pending = plan

    def weight_bytes(self):
        return self.held

    def infer(self):
        if self.pending is not None:
            self.held, self.pending = self.pending.held_bytes(self.lanes), None


def test_without_targets_the_budget_is_split_and_fixed_budgets_kept():
    pipes = {'a': SMALL, 'b': LARGE}
    joint = joint_plan(pipes, Request(10 * B))
    assert joint.total_bytes <= 10 * B and not joint.missed
    # each its pipelined minimum, the rest in proportion to what it needs beyond it
    assert joint.plans['b'].budget_bytes > joint.plans['a'].budget_bytes >= 2 * B
    fixed = joint_plan(pipes, Request(10 * B, {'a': 4 * B}))
    assert fixed.plans['a'].budget_bytes == 4 * B and fixed.total_bytes <= 10 * B
    # 0 (None): every engine at its pipelined minimum
    least = joint_plan(pipes, Request(None))
    assert [p.budget_bytes for p in least.plans.values()] == [2 * B, 2 * B]
    with pytest.raises(ValueError, match='cannot hold'):
        joint_plan(pipes, Request(3 * B))
    with pytest.raises(ValueError, match='engine a: fixed budget'):
        joint_plan(pipes, Request(10 * B, {'a': B // 2}))


def test_with_targets_the_least_memory_meeting_them_or_the_misses_named():
    pipes = {'a': SMALL, 'b': LARGE}
    targets = {'a': 1.0, 'b': 0.18}
    joint = joint_plan(pipes, Request(None, targets=targets))
    assert not joint.missed
    assert joint.plans['a'].budget_bytes <= 2 * B   # a loose target: the least memory
    least_b = planner.plan_for_deadline(LARGE, 0.18)[0]
    assert joint.plans['b'].budget_bytes == least_b.budget_bytes > 5 * B
    assert joint.plans['b'].predicted_s <= 0.18
    capped = joint_plan(pipes, Request(6 * B, targets=targets))
    assert capped.missed == ('b',) and capped.total_bytes <= 6 * B
    # a fixed engine keeps its budget; its target is judged too
    fixed = joint_plan(pipes, Request(None, {'b': 2 * B}, targets=targets))
    assert fixed.plans['b'].budget_bytes == 2 * B and fixed.missed == ('b',)


def test_with_targets_a_cap_below_the_pipelined_minimums_is_planned_sequential():
    # as a single stream's auto_tune plans within its cap: before, a cap the planner's own plans
    # fitted (sequential) was refused against the pipelined minimums
    pipes = {'a': SMALL, 'b': LARGE}
    targets = {'a': 1.0, 'b': 0.18}
    tight = joint_plan(pipes, Request(3 * B, targets=targets))   # pipelined: 4 pages at least
    assert tight.total_bytes <= 3 * B and tight.missed == ('b',)
    assert 'sequential' in {p.mode for p in tight.plans.values()}
    msg = refusal(pipes, Request(B, targets=targets))
    assert 'a: sequential minimum' in msg and 'b: sequential minimum' in msg, msg
    # where the pipelined minimums fit, the one that misses is not pushed below its own
    # (a keeps its least plan for its loose target, which is sequential)
    roomy = joint_plan(pipes, Request(6 * B, targets=targets))
    assert roomy.plans['b'].mode == 'pipelined' and roomy.total_bytes <= 6 * B
    # without targets the split is the pipelined minimums' (execution_mode is not the planner's)
    assert 'pipelined minimum' in refusal(pipes, Request(3 * B))


def test_an_engine_serving_n_streams_must_run_within_a_share_of_their_nearest_target():
    targets = engine_targets({'front+rear': ('front', 'rear'), 'side': ('side',)},
                             {'front': 0.3, 'rear': 0.2, 'side': 0.5})
    assert targets == {'front+rear': pytest.approx(0.1), 'side': pytest.approx(0.5)}
    # every engine in turns: a frame may wait for every other stream's inference
    targets = engine_targets({'front+rear': ('front', 'rear'), 'side': ('side',)},
                             {'front': 0.3, 'rear': 0.2, 'side': 0.6}, in_turns=True)
    assert targets == {'front+rear': pytest.approx(0.2 / 3), 'side': pytest.approx(0.2)}
    # a lane per stream: no stream waits for another's inference; three streams on two lanes:
    # a frame may wait for one
    lanes = engine_targets({'front+rear': ('front', 'rear'), 'all': ('a', 'b', 'c')},
                           {'front': 0.3, 'rear': 0.2, 'a': 0.6, 'b': 0.6, 'c': 0.6},
                           lanes={'front+rear': 2, 'all': 2})
    assert lanes == {'front+rear': pytest.approx(0.2), 'all': pytest.approx(0.3)}


def test_lanes_count_what_each_streams_and_the_resident_units_once():
    pipes = {'a': SMALL, 'b': LARGE}
    lanes = {'b': 2}
    joint = joint_plan(pipes, Request(16 * B), lanes)
    b = joint.plans['b']
    assert b.resident_bytes > 0 and joint.total_bytes <= 16 * B
    assert joint.held_bytes('b') == 2 * b.budget_bytes - b.resident_bytes
    # 0: each lane at its pipelined minimum
    assert joint_plan(pipes, Request(None), lanes).total_bytes == 2 * B + 2 * 2 * B
    with pytest.raises(ValueError, match='cannot hold'):
        joint_plan(pipes, Request(5 * B), lanes)
    # the whole model: preloaded once, whatever the lanes
    whole = joint_plan({'b': LARGE}, Request(12 * B), lanes)
    assert whole.plans['b'].mode == 'preload' and whole.total_bytes == 12 * B
    # targets: the least memory meeting them, each lane's streamed memory counted
    targets = {'a': 1.0, 'b': 0.18}
    met = joint_plan(pipes, Request(None, targets=targets), lanes)
    assert not met.missed and met.plans['b'].predicted_s <= 0.18
    assert met.held_bytes('b') > met.plans['b'].budget_bytes
    capped = joint_plan(pipes, Request(8 * B, targets=targets), lanes)
    assert capped.missed == ('b',) and capped.total_bytes <= 8 * B
    with pytest.raises(ValueError, match='engine b: fixed budget'):
        joint_plan(pipes, Request(10 * B, {'b': 3 * B // 2}), lanes)   # 2 lanes: 2 x 1 page


def test_lanes_may_hold_a_large_unit_once_to_fit_a_tight_budget():
    n = 8
    p = Pipeline(Layout((10 * B, 100 * B) + (10 * B,) * (n - 2), tuple(range(n)), ((),) * n),
                 (0.01,) * n, (0.01,) * n)
    # each lane at its pipelined minimum holds 2 x 110 pages; the 100-page unit resident,
    # 100 + 2 x 20
    assert p.min_budget('pipelined') == 110 * B
    floor = planner.least_held(p, 2)
    assert floor.resident == {1} and floor.held_bytes(2) == 140 * B
    joint = joint_plan({'a': p}, Request(150 * B), {'a': 2})
    assert joint.total_bytes <= 150 * B and 1 in joint.plans['a'].resident
    assert joint_plan({'a': p}, Request(None), {'a': 2}).total_bytes == 140 * B
    with pytest.raises(ValueError, match='cannot hold'):
        joint_plan({'a': p}, Request(139 * B), {'a': 2})
    assert planner.least_held(p).budget_bytes == 110 * B   # one lane: as before


def test_a_reshuffle_with_lanes_stays_within_the_budget():
    engines = {'a': FakeEngine(SMALL), 'b': FakeEngine(LARGE, lanes=2)}
    budget = SharedBudget(engines)
    before = 0
    for total in (16 * B, 8 * B, 20 * B, 6 * B):
        req = Request(total)
        assert budget.apply(budget.plan(req), req)
        for _ in range(2):
            for name, e in engines.items():
                budget.before_inference(name)
                e.infer()
                assert sum(f.held for f in engines.values()) <= max(total, before)
        assert sum(f.held for f in engines.values()) <= total and not budget.waiting
        before = total


def test_a_reshuffle_never_holds_more_than_the_larger_budget():
    engines = {'a': FakeEngine(SMALL), 'b': FakeEngine(LARGE)}
    budget = SharedBudget(engines)
    first = joint_plan(budget.pipelines(), Request(10 * B))
    assert budget.apply(first, Request(10 * B))
    for e in engines.values():
        e.infer()
    before = {n: e.held for n, e in engines.items()}
    # a grows to 6 pages, b must shrink to 4 first
    req = Request(10 * B, {'a': 6 * B})
    second = joint_plan(budget.pipelines(), req)
    assert budget.apply(second, req)
    assert engines['b'].pending.budget_bytes == 4 * B   # the shrinking one at once
    assert engines['a'].pending is None and budget.waiting == ('a',)
    budget.before_inference('a')        # b still holds its old memory: a waits
    engines['a'].infer()
    assert engines['a'].held == before['a'] and budget.waiting == ('a',)
    assert sum(e.held for e in engines.values()) <= 10 * B
    engines['b'].infer()                # b shrank: now a gets its plan before its next frame
    budget.before_inference('a')
    engines['a'].infer()
    assert engines['a'].held == 6 * B and not budget.waiting
    assert sum(e.held for e in engines.values()) <= 10 * B
    # the same plan again is not handed over (its resident units would be read again)
    handed = len(engines['a'].handed)
    budget.apply(second, req)
    assert len(engines['a'].handed) == handed


def test_a_plan_made_meanwhile_wins_over_an_older_one():
    budget = SharedBudget({'a': FakeEngine(SMALL)})
    since = budget.generation
    budget.apply(joint_plan(budget.pipelines(), Request(4 * B)), Request(4 * B))
    assert not budget.apply(joint_plan(budget.pipelines(), Request(3 * B)), Request(3 * B),
                            since)
    assert budget.request.budget_bytes == 4 * B


def test_auto_tune_replans_when_a_target_or_the_prediction_drifts():
    engine = FakeEngine(LARGE)
    budget = SharedBudget({'b': engine})
    req = Request(None, targets={'b': 0.18})
    joint = joint_plan(budget.pipelines(), req)
    budget.apply(joint, req)
    engine.predicted_s = joint.plans['b'].predicted_s

    def due(target: float, margin: float = 1.0) -> bool:
        return budget.due(Request(None, targets={'b': target}, margins={'b': {'': margin}}))
    assert not due(0.18) and not due(0.185)
    assert due(0.25)                             # the deadline or the time outside moved
    # a margin that moves while the plan in force stays within the band: no re-plan
    assert not due(0.18, margin=1.02) and not due(0.18, margin=0.9)
    assert due(0.18, margin=1.2)                 # the model misses more: slower than the target
    engine.predicted_s = 0.2                     # the machine got slower
    assert due(0.18)
    engine.predicted_s = 0.1                     # ... or faster: memory to give back
    assert due(0.18)


def test_a_plan_far_faster_than_its_target_made_so_is_not_made_again():
    """The least memory that meets the target may predict well under it: not made again.

    Four units that read 2 s and compute 1 s: 3 pages take 6 s, 2 pages 9 s. For 8.5 s the
    plan is 3 pages, under 80% of the target; planning again with the same figures gives the
    same plan, so it is due only once the machine got faster or the target looser.
    """
    engine = FakeEngine(pipe(4, read=2.0, compute=1.0))
    budget = SharedBudget({'b': engine})
    req = Request(None, targets={'b': 8.5}, margins={'b': {'': 1.0}})
    joint = joint_plan(budget.pipelines(), req)
    plan = joint.plans['b']
    budget.apply(joint, req)
    engine.predicted_s = plan.predicted_s
    assert plan.peak_bytes == 3 * B and plan.predicted_s < 8.5 * LOW
    assert joint_plan(budget.pipelines(), req).plans['b'] == plan
    assert not budget.due(req)
    engine.predicted_s = plan.predicted_s * 0.8       # the machine got faster
    assert budget.due(req)
    engine.predicted_s = plan.predicted_s
    # or the model's misses shrank
    assert budget.due(Request(None, targets={'b': 8.5}, margins={'b': {'': 0.8}}))


def test_each_mode_has_its_margin_in_the_joint_plan():
    """A mode that runs slower than predicted is planned with its own margin.

    Lanes with the whole model resident ran 1.6x their prediction (one interpreter for two
    lanes' compute), streaming lanes as predicted: the plan streams rather than preload.
    """
    pipes = {'b': pipe(4, read=2.0, compute=1.0)}   # preload 4 s, 3 pages 6 s, 2 pages 9 s
    plain = joint_plan(pipes, Request(None, targets={'b': 6.5}))
    assert plain.plans['b'].peak_bytes == 3 * B and not plain.missed
    slow_preload = Request(None, targets={'b': 6.5}, margins={'b': {'preload': 1.6, '': 1.0}})
    assert joint_plan(pipes, slow_preload).plans['b'] == plain.plans['b']
    # every mode 1.2x: 3 pages (7.2 s) miss 6.5 s, and preload (4.8 s) is the least that meets it
    slower = joint_plan(pipes, Request(None, targets={'b': 6.5}, margins={'b': {'': 1.2}}))
    assert slower.plans['b'].mode == 'preload' and not slower.missed
    # ... unless preload runs 1.7x: nothing meets it, named
    worst = joint_plan(pipes, Request(None, targets={'b': 6.5},
                                      margins={'b': {'preload': 1.7, '': 1.2}}))
    assert worst.missed == ('b',)


def test_a_stream_hands_the_engine_its_waiting_plan_before_it_detects():
    calls = []
    budget = SimpleNamespace(before_inference=lambda e: calls.append(('budget', e)))
    detector = SimpleNamespace(detect=lambda rgb, **kw: calls.append(('detect', kw)) or [],
                               predicted_s=0.1, remaining_s=lambda: 0.0)
    engine = StreamEngine(detector, budget, 'front+rear')
    engine.detect(None, deadline=5.0)
    assert calls == [('budget', 'front+rear'), ('detect', {'deadline': 5.0})]
    with pytest.raises(RuntimeError, match='jointly'):
        engine.apply_plan(None)


def test_engines_in_turns_never_infer_at_once_and_the_nearer_deadline_goes_first():
    turns = Turns()
    budget = SimpleNamespace(before_inference=lambda e: None)
    running, order = [], []
    gate = threading.Event()

    def detect(name):
        def run(rgb, **kw):
            running.append(name)
            assert len(running) == 1, running   # never two engines at once
            order.append(name)
            if name == 'a':
                gate.wait(5)   # b and c queue meanwhile
            running.remove(name)
            return []
        return run
    engines = {n: StreamEngine(SimpleNamespace(detect=detect(n)), budget, n, turns,
                               lambda: True) for n in 'abc'}
    first = threading.Thread(target=engines['a'].detect, args=(None,), kwargs={'deadline': 1.0})
    first.start()
    while not order:
        time.sleep(0.001)
    later = [threading.Thread(target=engines[n].detect, args=(None,), kwargs={'deadline': d})
             for n, d in (('c', 9.0), ('b', 2.0))]
    for t in later:
        t.start()
    time.sleep(0.05)
    gate.set()
    for t in (first, *later):
        t.join(5)
    assert order == ['a', 'b', 'c']


def refusal(pipes, req, lanes=None):
    """The joint plan's refusal of ``req``; the check's, found without a search, is the same."""
    with pytest.raises(ValueError) as err:
        joint_plan(pipes, req, lanes)
    with pytest.raises(ValueError) as checked:
        planner.check_request(pipes, req, lanes)
    assert str(checked.value) == str(err.value)
    return str(err.value)


def test_a_refusal_gives_fixed_budgets_as_asked_and_names_every_engine():
    # the probe's: two streams on one engine, one fixing 100 MiB, a node total below the model
    whole = SMALL.min_budget('preload')   # 8 pages
    msg = refusal({'a': SMALL}, Request(6 * B, {'a': 100 * MiB}))
    assert msg == (f'budget 0.02 MiB cannot hold the 0.03 MiB the engines need at the least - '
                   f'a: fixed budget 100.00 MiB, counted as its whole model, {whole / MiB:.2f} '
                   'MiB (no plan holds more)')
    # beside another engine (two lanes): it is named, with its least
    msg = refusal({'a': SMALL, 'b': LARGE}, Request(7 * B, {'a': 100 * MiB}), {'b': 2})
    assert 'a: fixed budget 100.00 MiB, counted as its whole model, 0.03 MiB' in msg
    assert msg.endswith('; b: least for its 2 lanes 0.02 MiB'), msg
    # a fixed budget within the model counts as asked; the others at their pipelined minimum
    msg = refusal({'a': SMALL, 'b': LARGE}, Request(4 * B, {'b': 3 * B}))
    assert msg.startswith('budget 0.02 MiB (16384 bytes) cannot hold the 0.02 MiB (20480 bytes)')
    assert msg.endswith(f'a: pipelined minimum 0.01 MiB ({2 * B} bytes); b: fixed budget '
                        f'0.01 MiB ({3 * B} bytes)'), msg
    assert not re.search(r':\s*(;|$)', msg)


def test_the_check_refuses_exactly_what_the_joint_plan_refuses():
    pipes = {'a': SMALL, 'b': LARGE}
    seen = {True: 0, False: 0}
    for lanes in ({}, {'b': 2}):
        for targets in (None, {'a': 0.1, 'b': 0.2}):
            for fixed in ({}, {'a': B}, {'a': 3 * B}, {'b': 40 * B}):
                for budget in (None, *range(2 * B, 30 * B, B)):
                    req = Request(budget, fixed, targets)
                    try:
                        joint_plan(pipes, req, lanes)
                        refused = None
                    except ValueError as err:
                        refused = str(err)
                    try:
                        planner.check_request(pipes, req, lanes)
                        checked = None
                    except ValueError as err:
                        checked = str(err)
                    assert checked == refused, (lanes, targets, fixed, budget)
                    seen[refused is None] += 1
    assert seen[True] > 50 and seen[False] > 50, seen   # both kinds were met
