# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The planning process: the planner's answers, at a lower priority, without torch."""

import io
import os
import pickle
import signal
import threading

import pytest

from demand_layering_ros.engine import planner
from demand_layering_ros.engine.plan_worker import NICE, PlanWorker, PlanWorkerError, serve
from demand_layering_ros.engine.policy import Layout
from demand_layering_ros.engine.simulate import Pipeline

B = 4096
# eight one-page units, I/O-bound: the curve has many points, so the search has work to do
MODEL = Pipeline(Layout((B,) * 8, tuple(range(8)), ((),) * 8), (0.010,) * 8, (0.006,) * 8,
                 stream_bps=B / 0.010)


@pytest.fixture
def worker():
    w = PlanWorker()
    yield w
    w.close()


def test_its_plans_are_the_planners(worker):
    correction = {'sequential': 1.3, 'pipelined': 1.2, 'preload': 1.0}
    for target in (0.2, 0.09, 0.07, 0.055, 0.01):
        here = planner.plan_for_deadline(MODEL, target, None, correction=correction.__getitem__)
        there = worker.plan_for_deadline(MODEL, target, None,
                                         correction=correction.__getitem__)
        assert there == here
    assert worker.call('plan_for_budget', MODEL, 3 * B) == planner.plan_for_budget(MODEL, 3 * B)
    # the joint plan of several engines, each plan scaled by its engine's margins
    other = Pipeline(Layout((B,) * 4, tuple(range(4)), ((),) * 4), (0.004,) * 4, (0.01,) * 4)
    models = {'a': MODEL, 'b': other}
    for req in (planner.Request(None, {}, {'a': 0.07, 'b': 0.05},
                                {'a': {'pipelined': 1.2}, 'b': {'': 1.1}}),
                planner.Request(5 * B, {'b': 2 * B}, {'a': 0.2, 'b': 0.05}),
                planner.Request(6 * B)):
        assert worker.joint_plan(models, req) == planner.joint_plan(models, req)


def test_its_errors_reach_the_caller_and_it_serves_on(worker):
    with pytest.raises(ValueError, match='below the minimum'):
        worker.call('plan_for_budget', MODEL, B // 2)
    with pytest.raises(ValueError, match='not served'):
        worker.call('pareto_curve', MODEL)
    assert worker.plan_for_deadline(MODEL, 1.0)[1]


def test_it_runs_at_a_lower_priority_without_torch(worker):
    worker.plan_for_deadline(MODEL, 0.07)
    pid = worker.pid
    assert os.getpriority(os.PRIO_PROCESS, pid) == max(NICE, os.getpriority(os.PRIO_PROCESS, 0))
    with open(f'/proc/{pid}/maps') as maps:
        assert 'libtorch' not in maps.read()
    worker.close()
    assert worker.pid is None and not os.path.exists(f'/proc/{pid}')   # ended and reaped


def test_a_child_that_died_is_started_again_and_one_that_dies_mid_plan_is_an_error(worker):
    worker.plan_for_deadline(MODEL, 0.07)
    first = worker.pid
    os.kill(first, signal.SIGKILL)
    worker._child.wait()
    assert worker.plan_for_deadline(MODEL, 0.07)[1] and worker.pid != first
    # the child is killed while the caller waits for its answer (a long search)
    n = 300
    large = Pipeline(Layout((B,) * n, tuple(range(n)), ((),) * n), (0.010,) * n, (0.006,) * n,
                     stream_bps=B / 0.010)
    threading.Timer(0.5, os.kill, (worker.pid, signal.SIGKILL)).start()
    with pytest.raises(PlanWorkerError, match='ended without an answer'):
        worker.plan_for_deadline(large, 2.5)
    assert worker.pid is None and worker.plan_for_deadline(MODEL, 0.07)[1]


def test_serve_answers_until_its_input_ends():
    requests = io.BytesIO(pickle.dumps(('plan_for_budget', (MODEL, 3 * B), {}))
                          + pickle.dumps(('plan_for_budget', (MODEL, 1), {})))
    answers = io.BytesIO()
    serve(requests, answers)
    answers.seek(0)
    assert pickle.load(answers) == (True, planner.plan_for_budget(MODEL, 3 * B))
    ok, err = pickle.load(answers)
    assert not ok and isinstance(err, ValueError)
