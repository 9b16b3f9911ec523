# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Executor: exact outputs in every mode, the budget, live reconfiguration, on-demand, abort."""

import re
import threading

import pytest
import torch

from demand_layering_ros.engine import (BudgetError, ConfigError, DemandLayeredModel,
                                        empty_weights, InferenceAborted, LayerStore)
from demand_layering_ros.perception.prepare import DetectorSpec, open_detector
from .toy import make_toy, Toy


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    model = make_toy()
    x = torch.randn(1, 3, 16, 16)
    store = LayerStore.export(model, tmp_path_factory.mktemp('toy') / 'toy.dls', (x,))
    with torch.no_grad():
        ref = model(x)
        ref_rare = model(x, take_rare=True)
    with empty_weights():
        skeleton = Toy()
    return store, skeleton, x, ref, ref_rare


@pytest.mark.parametrize('mode', ['preload', 'sequential', 'pipelined'])
def test_every_mode_is_exact_and_within_budget(toy, mode):
    store, skeleton, x, ref, _ = toy
    dl = DemandLayeredModel(skeleton, store, mode=mode)
    for _ in range(3):
        assert torch.equal(dl(x), ref)
    s = dl.stats()
    assert s['weight_bytes_peak'] <= s['budget_bytes'] == s['min_budget_bytes']
    assert s['on_demand_loads'] == 0
    if mode != 'preload':
        assert s['budget_bytes'] < store.total_bytes
        assert s['bytes_read'] >= 3 * (store.total_bytes - store.units[-1].nbytes) * 0.5
    dl.close()


def test_skeleton_never_holds_weights(toy):
    _store, skeleton, *_ = toy
    assert all(t.device.type == 'meta' for t in skeleton.parameters())
    assert all(t.device.type == 'meta' for t in skeleton.buffers())


@pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has a CUDA device')
@pytest.mark.parametrize('device', ['cuda', 'cuda:0', 'cuda:1', torch.device('cuda')])
def test_a_cuda_device_without_one_is_refused_saying_so(toy, tmp_path, device):
    # a plain 'cuda' reached torch as 'invalid argument to exchangeDevice'
    store, skeleton, *_ = toy
    with pytest.raises(ConfigError) as err:
        DemandLayeredModel(skeleton, store, device=device)
    assert str(err.value).startswith(f'device {str(device)!r}: torch ')
    assert 'sees no CUDA device' in str(err.value) and str(err.value).endswith('device: cpu')
    # before the store of a detector is exported (minutes), not after
    spec = DetectorSpec('ssdlite320_mobilenet_v3_large', 'none', tmp_path / 'new.dls',
                        device=str(device))
    with pytest.raises(ConfigError, match='sees no CUDA device'):
        open_detector(spec)
    assert not spec.store_path.exists()


def test_budget_below_minimum_is_refused_with_the_minimum(toy):
    store, skeleton, *_ = toy
    dl = DemandLayeredModel(skeleton, store, mode='sequential')
    minimum = dl.stats()['min_budget_bytes']
    assert minimum >= store.largest_unit_bytes
    with pytest.raises(BudgetError, match=f'{minimum} bytes') as err:
        dl.reconfigure(budget_bytes=minimum - 1)
    # a byte below: the MiB figures alone would read alike, so both give their bytes
    shown = re.findall(r'[\d.]+ MiB(?: \(\d+ bytes\))?', str(err.value))
    assert shown == [f'{(minimum - 1) / 2**20:.2f} MiB ({minimum - 1} bytes)',
                     f'{minimum / 2**20:.2f} MiB ({minimum} bytes)'], str(err.value)
    with pytest.raises(BudgetError):
        DemandLayeredModel(skeleton, store, mode='pipelined', budget_bytes=minimum - 1)
    with pytest.raises(ConfigError, match='mode'):
        dl.reconfigure(mode='turbo')
    with pytest.raises(ConfigError, match='no unit'):
        dl.reconfigure(resident=['nonexistent'])
    assert dl.config.budget_bytes == minimum  # a refused change changes nothing
    dl.close()


def test_live_reconfiguration_between_inferences_stays_exact(toy):
    store, skeleton, x, ref, _ = toy
    dl = DemandLayeredModel(skeleton, store, mode='sequential')
    total = store.total_bytes
    steps = [dict(mode='pipelined'), dict(budget_bytes=dl.min_budget('pipelined') + 8192),
             dict(resident=[store.units[0].name, 1]), dict(mode='preload'),
             dict(mode='sequential', budget_bytes=dl.min_budget('sequential', [0, 1])),
             dict(resident=[], mode='pipelined', prefetch_depth=2), dict(budget_bytes=total)]
    for step in steps:
        cfg = dl.reconfigure(**step)
        assert torch.equal(dl(x), ref), step
        s = dl.stats()
        assert s['weight_bytes_peak'] <= cfg.budget_bytes, (step, s)
    # a budget that holds the whole model streams nothing
    before = dl.stats()['bytes_read']
    dl(x)
    assert dl.stats()['bytes_read'] == before
    dl.close()


def test_reconfigure_from_another_thread_while_inferring(toy):
    store, skeleton, x, ref, _ = toy
    dl = DemandLayeredModel(skeleton, store, mode='pipelined')
    budgets = [dl.min_budget('pipelined'), dl.min_budget('pipelined') + 8192, store.total_bytes]
    stop = threading.Event()
    errors = []

    def tuner():
        i = 0
        while not stop.is_set():
            try:
                dl.reconfigure(budget_bytes=budgets[i % 3], mode=('pipelined', 'sequential')[i % 2]
                               if budgets[i % 3] >= dl.min_budget('pipelined') else None)
            except Exception as err:  # noqa: BLE001
                errors.append(err)
            i += 1

    t = threading.Thread(target=tuner)
    t.start()
    try:
        for _ in range(15):
            assert torch.equal(dl(x), ref)
    finally:
        stop.set()
        t.join()
    assert not errors
    dl.close()


def test_data_dependent_branch_loads_on_demand(toy):
    store, skeleton, x, ref, ref_rare = toy
    dl = DemandLayeredModel(skeleton, store, mode='pipelined')
    assert torch.equal(dl(x, take_rare=True), ref_rare)
    s = dl.stats()
    assert s['on_demand_loads'] == 1 and s['weight_bytes_peak'] <= s['budget_bytes']
    assert torch.equal(dl(x), ref)
    dl.close()


def test_abort_between_units_leaves_the_model_usable(toy):
    store, skeleton, x, ref, _ = toy
    dl = DemandLayeredModel(skeleton, store, mode='pipelined')
    calls = []

    def abort():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(InferenceAborted, match='unit'):
        dl.infer(x, abort=abort)
    assert dl.stats()['aborted'] == 1
    assert dl.weight_bytes() <= dl.config.budget_bytes
    assert torch.equal(dl(x), ref)
    dl.close()


def test_release_returns_weight_memory(toy):
    store, skeleton, x, ref, _ = toy
    dl = DemandLayeredModel(skeleton, store, mode='preload')
    dl(x)
    assert dl.weight_bytes() == store.total_bytes
    dl.release()
    assert dl.weight_bytes() == 0
    assert all(t.device.type == 'meta' for t in skeleton.parameters())
    assert torch.equal(dl(x), ref)  # loads again on the next inference
    dl.close()


def test_calling_the_skeleton_directly_is_an_error(toy):
    store, skeleton, x, *_ = toy
    dl = DemandLayeredModel(skeleton, store)
    with pytest.raises(Exception, match='outside DemandLayeredModel'):
        skeleton(x)
    dl.close()
