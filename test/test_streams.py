# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Streams without ROS running: names, dotted parameters, views, engines, their targets."""

import os
from pathlib import Path
import re
import threading
from types import SimpleNamespace

import pytest

from demand_layering_ros.engine.policy import Config, Layout, Mode
from demand_layering_ros.engine.simulate import Pipeline
from demand_layering_ros.realtime.runner import FrameRunner
from demand_layering_ros.ros import streams as st
from demand_layering_ros.ros.params import check, settings_from, SPEC
from demand_layering_ros.ros.shared_engines import SharedEngines


def node_values(**overrides):
    """The node-wide defaults, as a node with no parameter file declares them."""
    return {**{n: v[0] for n, v in SPEC.items()}, **overrides}


def declared(names, given=None, **node):
    """What the node declares: the node-wide values, then each stream's (``given`` overrides)."""
    values = node_values(streams=list(names), **node)
    for s in names:
        for name in st.PER_STREAM:
            p = st.parameter(s, name)
            values[p] = (given or {}).get(p, st.default(s, name, values))
    return values


def test_names_and_their_refusals():
    assert st.names(['']) == () and st.names([' front', 'rear ']) == ('front', 'rear')
    assert check('streams', ['']) is None and check('streams', ['front', 'rear_2']) is None
    assert 'valid stream name' in check('streams', ['front/left'])
    assert 'valid stream name' in check('streams', ['2nd'])
    assert 'more than once' in check('streams', ['front', 'front'])
    assert 'node parameter' in check('streams', ['model'])
    assert 'node parameter' in check('streams', ['use_sim_time'])   # rclpy's own


def test_stream_parameters_default_to_the_node_wide_ones_except_its_budget_and_store():
    values = declared(['front', 'rear'], {'rear.model': 'ssd300_vgg16'},
                      model='ssdlite320_mobilenet_v3_large', deadline_ms=250.0,
                      memory_budget_mb=40.0, store_path='/stores/ssdlite.dls')
    assert values['front.deadline_ms'] == values['rear.deadline_ms'] == 250.0
    # a stream's budget is an override of its share, not a copy of the whole budget
    assert values['front.memory_budget_mb'] == values['rear.memory_budget_mb'] == 0.0
    # the node's store holds the node's model: a stream with another model gets its own
    assert values['front.store_path'] == '/stores/ssdlite.dls'
    assert values['rear.store_path'] == ''
    d = st.descriptor('front', 'deadline_ms')
    assert d.name == 'front.deadline_ms' and d.floating_point_range[0].from_value == 1.0
    assert st.descriptor('front', 'model').read_only
    assert not st.descriptor('front', 'memory_budget_mb').read_only


def test_split_and_view():
    names = ('front', 'rear')
    assert st.split('front.deadline_ms', names) == ('front', 'deadline_ms')
    assert st.split('deadline_ms', names) == ('', 'deadline_ms')
    assert st.split('side.deadline_ms', names) == ('', 'side.deadline_ms')   # not a stream
    assert st.split('front.auto_tune', names) == ('', 'front.auto_tune')     # not per stream
    values = declared(names, {'rear.deadline_ms': 90.0, 'rear.class_filter': ['person']})
    rear = st.view('rear', values)
    assert rear['deadline_ms'] == 90.0 and rear['auto_tune'] == values['auto_tune']
    s = settings_from(rear)
    assert s.deadline_ms == 90.0 and s.class_filter == ('person',)
    assert st.view('', values) == values


def test_engines_group_streams_with_the_same_detector(tmp_path):
    same = declared(['front', 'rear', 'side'], {'side.model': 'ssdlite320_mobilenet_v3_large'},
                    model='fasterrcnn_mobilenet_v3_large_320_fpn',
                    store_path=str(tmp_path / 'frcnn.dls'), memory_budget_mb=64.0)
    engines = st.engines(('front', 'rear', 'side'), same)
    assert [(e.name, e.streams) for e in engines] == [
        ('front+rear', ('front', 'rear')), ('side', ('side',))]
    assert engines[0].spec.store_path == tmp_path / 'frcnn.dls'
    assert engines[1].spec.model == 'ssdlite320_mobilenet_v3_large'
    # until the joint plan: the least memory, whatever the node's budget
    assert engines[0].spec.engine.budget_bytes is None
    # another input size, device or store is another engine
    for name, value in (('input_size', [240, 320]), ('device', 'cuda:0'),
                        ('store_path', str(tmp_path / 'other.dls'))):
        values = {**same, f'rear.{name}': value}
        assert len(st.engines(('front', 'rear', 'side'), values)) == 3, name


def test_engines_inferring_side_by_side_split_the_nodes_threads(tmp_path):
    names = ('front', 'rear', 'side')
    values = declared(names, {'side.model': 'ssdlite320_mobilenet_v3_large'},
                      model='fasterrcnn_mobilenet_v3_large_320_fpn', num_threads=4,
                      store_path=str(tmp_path / 'frcnn.dls'))
    # front and rear share a detector: a lane each, side by side with side's engine
    engines = st.engines(names, values)
    assert [(e.spec.lanes, e.spec.num_threads) for e in engines] == [(2, 1), (1, 1)]
    two = st.engines(('front', 'side'), values)
    assert [(e.spec.lanes, e.spec.num_threads) for e in two] == [(1, 2), (1, 2)]
    # one engine for all three: three lanes, at least one thread each
    one = {**values, 'side.model': values['model'], 'side.store_path': values['store_path']}
    assert [(e.spec.lanes, e.spec.num_threads) for e in st.engines(names, one)] == [(3, 1)]
    three = {**values, 'rear.input_size': [240, 320], 'num_threads': 2}
    assert [e.spec.num_threads for e in st.engines(names, three)] == [1, 1, 1]
    # on a GPU the streams of one engine take turns (no lanes)
    gpu = {**one, 'device': 'cuda', 'front.device': 'cuda', 'rear.device': 'cuda',
           'side.device': 'cuda'}
    assert [(e.spec.lanes, e.spec.num_threads) for e in st.engines(names, gpu)] == [(1, 4)]
    # 0: a share of the CPUs this process may run on
    cpus = len(os.sched_getaffinity(0))
    shared = st.engines(('front', 'side'), {**values, 'num_threads': 0})
    assert [e.spec.num_threads for e in shared] == [max(1, cpus // 2)] * 2
    assert st.engines((), node_values(num_threads=0))[0].spec.num_threads == 0  # as before
    # engines taking turns infer one at a time: each on all of them, no lanes
    turns = st.engines(names, {**values, 'engines_take_turns': True})
    assert [(e.spec.lanes, e.spec.num_threads) for e in turns] == [(1, 4), (1, 4)]


def test_one_store_file_for_two_detectors_is_refused(tmp_path):
    store = str(tmp_path / 'one.dls')
    values = declared(['front', 'rear'], {'front.store_path': store, 'rear.store_path': store,
                                          'rear.weights': str(tmp_path / 'mine.safetensors')})
    with pytest.raises(ValueError, match='one store file'):
        st.engines(('front', 'rear'), values)


def test_without_streams_one_unnamed_engine_as_before():
    values = node_values(memory_budget_mb=12.0)
    (engine,) = st.engines((), values)
    assert engine.name == '' and engine.streams == ('',)
    assert engine.spec.engine.budget_bytes == 12 * 2 ** 20   # the single stream's own request
    assert Path(engine.spec.store_path).name.startswith(values['model'])


class FakeDetector:
    """What SharedEngines uses of a detector: records, a calibrated model, memory."""

    name = 'ssdlite320_mobilenet_v3_large'
    bytes_read = 0
    lanes = 1

    def __init__(self, predicted_s: float) -> None:
        self.observers = []
        self.calibrator = SimpleNamespace(
            predict=lambda config: SimpleNamespace(latency_s=predicted_s),
            pipeline=None)
        self.predicted_s = predicted_s

    def observe(self, fn):
        self.observers.append(fn)

    def ran(self, latency_s: float) -> None:
        record = SimpleNamespace(config=Config(Mode.PIPELINED, 4096, frozenset()),
                                 latency_s=latency_s)
        for fn in self.observers:
            fn(record)


def test_auto_tune_aims_a_quantile_of_each_engine_at_its_streams_deadline():
    names = ('front', 'rear', 'side')
    values = declared(names, {'side.model': 'ssd300_vgg16'}, auto_tune=True, deadline_ms=300.0)
    engines = st.engines(names, values)
    detectors = [FakeDetector(0.05), FakeDetector(0.05)]
    quiet = SimpleNamespace(info=lambda _t: None, warn=lambda _k, _t: None)
    runners = {s: FrameRunner(convert=None, publish=None, clock_ns=lambda: 0,
                              reporter=quiet) for s in names}
    shared = SharedEngines(engines, detectors, runners, info=lambda _t: None)
    plain = shared.request(values).targets
    # before any frame: the deadline less a tenth (no outside time measured yet), less the
    # tuner's tolerance; front and rear run side by side, a lane each, on one engine
    assert plain['side'] == pytest.approx(0.27 / 1.02)
    assert plain['front+rear'] == pytest.approx(plain['side'])
    for k in range(20):   # the side engine runs 1.0-1.9 x slower than its model says
        detectors[1].ran(0.05 * (1 + (k % 10) / 10))
    assert shared.margin('side') == pytest.approx(1.81, abs=0.01)
    assert shared.margin('front+rear') == 1.0   # nothing measured: no margin
    aimed = shared.request(values)
    assert aimed.targets == plain                # the deadline's; plans are scaled instead:
    assert aimed.margin('side', 'pipelined') == pytest.approx(shared.margin('side'))
    assert aimed.margin('side', 'preload') == aimed.margin('side', 'pipelined')  # not run yet
    assert aimed.margin('front+rear', 'pipelined') == 1.0
    assert shared.margin('side', mode='pipelined') == shared.margin('side')
    # at most one frame in a hundred late: the margin's 99th percentile
    strict = shared.request({**values, 'auto_tune_quantile': 0.99})
    assert shared.margin('side', 0.99) > shared.margin('side')
    assert strict.margin('side', 'pipelined') == pytest.approx(shared.margin('side', 0.99))
    assert shared.affects(['auto_tune_quantile'], values)
    # the budget: fixed per engine by the largest of its streams' own budgets
    fixed = shared.request({**values, 'front.memory_budget_mb': 3.0,
                            'rear.memory_budget_mb': 5.0}).fixed
    assert fixed == {'front+rear': 5 * 2 ** 20}
    assert shared.affects(['rear.deadline_ms'], values)
    assert not shared.affects(['rear.deadline_ms'], {**values, 'auto_tune': False})
    assert shared.affects(['memory_budget_mb'], {**values, 'auto_tune': False})


def test_a_budget_too_small_for_every_lane_says_how_to_run_one(tmp_path):
    names = ('front', 'rear')
    values = declared(names, model='fasterrcnn_mobilenet_v3_large_320_fpn',
                      store_path=str(tmp_path / 'frcnn.dls'))
    engines = st.engines(names, values)
    assert engines[0].spec.lanes == 2
    det = FakeDetector(0.05)
    det.lanes = 2
    page = 4096
    det.calibrator.pipeline = Pipeline(Layout((page,) * 8, tuple(range(8)), ((),) * 8),
                                       (0.01,) * 8, (0.01,) * 8)
    quiet = SimpleNamespace(info=lambda _t: None, warn=lambda _k, _t: None)
    runners = {s: FrameRunner(convert=None, publish=None, clock_ns=lambda: 0,
                              reporter=quiet) for s in names}
    shared = SharedEngines(engines, [det], runners, info=lambda _t: None)
    lane_min = det.calibrator.pipeline.min_budget('pipelined')
    joint, _req = shared.plan({**values, 'memory_budget_mb': 2 * lane_min / 2 ** 20})
    assert joint.total_bytes <= 2 * lane_min
    with pytest.raises(ValueError, match='a lane per stream.*engines_take_turns: true'):
        shared.plan({**values, 'memory_budget_mb': 1.5 * lane_min / 2 ** 20})


class PlanningDetector(FakeDetector):
    """A FakeDetector with a model to plan with, taking the plans handed to it."""

    def __init__(self, predicted_s: float) -> None:
        super().__init__(predicted_s)
        page = 4096   # I/O-bound: each resident page saves time, so targets decide the plan
        self.calibrator.pipeline = Pipeline(Layout((page,) * 8, tuple(range(8)), ((),) * 8),
                                            (0.03,) * 8, (0.01,) * 8)
        self.handed = []

    def apply_plan(self, plan):
        self.handed.append(plan)

    def weight_bytes(self):
        return 0

    def close(self):
        pass


def two_planning_engines(names, values):
    """The two streams ``names`` served by two PlanningDetectors (SharedEngines)."""
    detectors = [PlanningDetector(0.1), PlanningDetector(0.1)]
    quiet = SimpleNamespace(info=lambda _t: None, warn=lambda _k, _t: None)
    runners = {s: FrameRunner(convert=None, publish=None, clock_ns=lambda: 0,
                              reporter=quiet) for s in names}
    said = []   # the log lines
    return SharedEngines(st.engines(names, values), detectors, runners,
                         info=said.append), detectors, said


def test_auto_tune_re_plans_at_once_for_engines_behind_and_in_the_planning_process_else():
    names = ('front', 'side')
    values = declared(names, {'side.model': 'ssd300_vgg16'}, auto_tune=True,
                      deadline_ms=300.0)
    shared, detectors, said = two_planning_engines(names, values)
    worker, searched = shared._worker, []   # the plans the planning process made
    real = worker.joint_plan
    worker.joint_plan = lambda *a, **kw: searched.append(real(*a, **kw)) or searched[-1]
    try:
        shared.apply(*shared.plan(values))

        def replan(deadline_ms, *latency_s):
            for det, latency in zip(detectors, latency_s):
                for _ in range(5):
                    det.ran(latency)
            before = shared.budget.generation
            shared.replan_if_due({**values, **{st.parameter(s, 'deadline_ms'): deadline_ms
                                               for s in names}})
            assert shared.planning and shared.join_planning(60)
            assert shared.budget.generation == before + 1

        # a tighter deadline, frames over its target (132 ms): at once, here
        replan(150.0, 0.2, 0.2)
        assert not searched and worker.pid is None
        assert re.search(r'\(searched at once in \d+ ms\)$', said[-1]), said[-1]
        # a looser one, frames within its target (265 ms): in the planning process, whose
        # plan is the planner's
        replan(300.0, 0.1, 0.1)
        assert searched == [shared.budget.in_force] and worker.pid is not None
        assert 'searched by the planning process in' in said[-1], said[-1]
        assert shared.budget.in_force == shared.budget.plan(shared.budget.request)
        # one engine behind its target (176 ms) is enough: at once
        replan(200.0, 0.1, 0.2)
        assert len(searched) == 1
        replan(300.0, 0.1, 0.1)
        assert len(searched) == 2
    finally:
        shared.close()


def test_with_auto_tune_a_change_is_checked_at_once_and_planned_on_the_planning_thread():
    names = ('front', 'side')
    values = declared(names, {'side.model': 'ssd300_vgg16'}, deadline_ms=300.0)
    shared, detectors, _said = two_planning_engines(names, values)
    page = 4096
    searched_on = []   # the threads joint plans were searched on
    plan = shared.budget.plan
    shared.budget.plan = lambda *a, **kw: searched_on.append(
        threading.current_thread().name) or plan(*a, **kw)
    try:
        shared.apply(*shared.plan(values))
        # without auto_tune: the budget's split, made here and handed over by the call
        split = shared.accept({**values, 'memory_budget_mb': 5 * page / 2 ** 20})
        assert not shared.planning and shared.budget.generation == 1
        split()
        assert shared.budget.generation == 2 and not shared.planning
        assert shared.budget.in_force.total_bytes <= 5 * page
        # with it: refused here when the budget cannot hold both engines' least (in any
        # mode: auto_tune may plan sequential)...
        tuned = {**values, 'auto_tune': True}
        lowest = sum(d.calibrator.pipeline.min_budget('sequential') for d in detectors)
        with pytest.raises(ValueError, match='cannot hold'):
            shared.accept({**tuned, 'memory_budget_mb': (lowest - 1) / 2 ** 20})
        # ...else searched on the planning thread once the values are in force
        hand_over = shared.accept({**tuned, 'memory_budget_mb': 12 * page / 2 ** 20})
        assert shared.budget.generation == 2 and not shared.planning
        hand_over()
        assert shared.join_planning(60) and shared.budget.generation == 3
        assert shared.budget.request.targets and shared.budget.in_force.total_bytes <= 12 * page
        # a newer request replaces one not yet handed over: only its plan is
        first = shared.accept({**tuned, 'memory_budget_mb': 16 * page / 2 ** 20})
        second = shared.accept({**tuned, 'memory_budget_mb': 10 * page / 2 ** 20})
        first()
        second()
        assert shared.join_planning(60) and shared.budget.generation == 4
        assert shared.budget.request.budget_bytes == 10 * page
        here = threading.current_thread().name
        assert searched_on[:2] == [here, here] and set(searched_on[2:]) == {'dl-joint-plan'}
    finally:
        shared.close()
