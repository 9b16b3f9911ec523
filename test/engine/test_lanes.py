# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Lanes: one model's inferences side by side, exact, with its resident units held once."""

import threading

import pytest
import torch

from demand_layering_ros.engine import DemandLayeredModel, empty_weights, LayerStore
from demand_layering_ros.engine.lanes import Lanes
from demand_layering_ros.engine.policy import weight_bytes_of
from .toy import make_toy, Toy


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    model = make_toy(seed=3)
    xs = [torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(i)) for i in (1, 2)]
    store = LayerStore.export(model, tmp_path_factory.mktemp('lanes') / 'toy.dls', (xs[0],))
    with torch.no_grad():
        refs = [model(x) for x in xs]
    return store, xs, refs


def skeleton():
    with empty_weights():
        return Toy()


def lanes_of(store, n=2, **kwargs):
    return Lanes(DemandLayeredModel(skeleton(), store, **kwargs),
                 [skeleton() for _ in range(n - 1)])


def side_by_side(lanes, xs, refs, frames=6):
    """Each input on a thread of its own; every output checked against its reference."""
    errors = []

    def run(i):
        try:
            for _ in range(frames):
                assert torch.equal(lanes(xs[i]), refs[i])
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors


def test_two_inferences_run_at_once(toy):
    store, xs, refs = toy
    lanes = lanes_of(store)
    meet = threading.Barrier(2, timeout=20)   # broken unless both passes are inside at once

    def both_inside(*_):
        meet.wait()   # returns the thread's index: the hook must return None

    for m in lanes.members:
        m.skeleton.block1.register_forward_pre_hook(both_inside)
    side_by_side(lanes, xs, refs, frames=2)
    assert not meet.broken
    assert lanes.stats()['inferences'] == 4
    lanes.close()


@pytest.mark.parametrize('mode', ['sequential', 'pipelined', 'preload'])
def test_every_mode_is_exact_side_by_side(toy, mode):
    store, xs, refs = toy
    lanes = lanes_of(store, mode=mode)
    side_by_side(lanes, xs, refs)
    lanes.close()


def test_resident_units_are_held_once(toy):
    store, xs, refs = toy
    lanes = lanes_of(store)
    big = max(store.units, key=lambda u: u.nbytes)
    cfg = lanes.reconfigure(budget_bytes=lanes.min_budget('pipelined', [big.index]) + 4096,
                            resident=[big.name])
    side_by_side(lanes, xs, refs, frames=2)
    owner, lane = (m.weight_bytes() for m in lanes.members)
    plan = lanes.owner.plan
    assert plan.resident == {big.index}
    assert owner == plan.weight_bytes
    assert lane == plan.weight_bytes - plan.resident_bytes    # the owner's, bound, not copied
    assert lanes.weight_bytes() == owner + lane <= weight_bytes_of(
        cfg.budget_bytes, big.nbytes, 2) < 2 * cfg.budget_bytes
    lanes.close()


def test_reconfigure_while_both_lanes_infer(toy):
    store, xs, refs = toy
    lanes = lanes_of(store)
    low = lanes.min_budget('pipelined')
    steps = [dict(budget_bytes=low + 8192), dict(resident=[0, 1]), dict(mode='preload'),
             dict(mode='sequential', resident=[]), dict(mode='pipelined', budget_bytes=low)]
    stop = threading.Event()
    errors = []

    def tuner():
        i = 0
        while not stop.is_set():
            try:
                lanes.reconfigure(**steps[i % len(steps)])
            except BaseException as err:  # noqa: BLE001
                errors.append(err)
            i += 1
            stop.wait(0.002)

    t = threading.Thread(target=tuner)
    t.start()
    try:
        side_by_side(lanes, xs, refs, frames=8)
    finally:
        stop.set()
        t.join()
    assert not errors
    lanes.close()


def test_growing_leaves_no_old_memory_behind(toy):
    store, xs, refs = toy
    lanes = lanes_of(store)
    big = max(store.units, key=lambda u: u.nbytes).index
    # the other lanes view the owner's resident units, then the owner's mapping grows
    steps = [dict(mode='pipelined', resident=[big]), dict(mode='preload'),
             dict(mode='pipelined', resident=[big]), dict(mode='sequential', resident=[])]
    for step in steps:
        lanes.reconfigure(**step)
        side_by_side(lanes, xs, refs, frames=1)
        # the owner's old mapping was returned: every lane holds exactly its plan's memory
        assert all(m._loader.arena.held_bytes == m._loader.arena.size for m in lanes.members)
        assert lanes.weight_bytes() <= lanes.held_budget(lanes.config), step
    assert lanes.owner._loader.maps >= 2
    lanes.close()


def test_each_inference_sees_its_own_lanes_progress(toy):
    store, xs, refs = toy
    lanes = lanes_of(store)
    lanes(xs[0])
    meet = threading.Barrier(2, timeout=20)
    seen = {}

    def hold(where):
        def hook(*_):
            name = threading.current_thread().name
            if name == where:
                seen[name] = lanes.progress   # the abort check reads it on this thread
                meet.wait()
        return hook

    for m in lanes.members:
        m.skeleton.block1.register_forward_pre_hook(hold('early'))
        m.skeleton.big.register_forward_pre_hook(hold('late'))
    threads = [threading.Thread(target=lanes, args=(xs[i],), name=n)
               for i, n in enumerate(('early', 'late'))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not meet.broken and 0 < seen['early'] < seen['late'], seen
    lanes.close()


def test_a_reconfigure_does_not_wait_for_the_lanes_applying_one(toy):
    store, xs, refs = toy
    lanes = lanes_of(store)
    lanes(xs[0])
    applying, go_on = threading.Event(), threading.Event()
    real = lanes.owner.apply_now

    def slow_apply():   # the owner reading its resident units from a slow disk
        applying.set()
        go_on.wait(10)
        real()

    lanes.owner.apply_now = slow_apply
    lanes.reconfigure(resident=[0])
    out = []
    t = threading.Thread(target=lambda: out.append(lanes(xs[1])))
    t.start()
    assert applying.wait(10)
    answered = []   # answered while the lanes apply [0], not after
    asker = threading.Thread(target=lambda: answered.append(lanes.reconfigure(mode='preload')))
    asker.start()
    asker.join(timeout=5)
    assert answered and answered[0].mode == 'preload' and lanes.config == answered[0]
    go_on.set()
    t.join(timeout=30)
    assert torch.equal(out[0], refs[1])
    lanes.owner.apply_now = real
    assert torch.equal(lanes(xs[0]), refs[0])   # the newer configuration, applied to all
    assert all(m.plan.config.mode == 'preload' for m in lanes.members)
    lanes.close()


def test_release_gives_every_lane_back_and_the_next_inference_is_exact(toy):
    store, xs, refs = toy
    lanes = lanes_of(store, n=3)
    lanes.reconfigure(resident=[0])
    side_by_side(lanes, xs + xs[:1], refs + refs[:1], frames=2)
    assert lanes.weight_bytes() > 0
    lanes.release()
    assert lanes.weight_bytes() == 0
    assert torch.equal(lanes(xs[1]), refs[1])
    lanes.close()


def test_lanes_refuse_a_gpu(toy):
    store, *_ = toy
    owner = DemandLayeredModel(skeleton(), store)
    owner.device = torch.device('cuda')   # only the check is exercised: nothing runs on it
    with pytest.raises(Exception, match='CPU only'):
        Lanes(owner, [skeleton()])
    owner.device = torch.device('cpu')
    owner.close()
