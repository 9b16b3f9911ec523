# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The 3-stage CUDA path (read -> pinned staging -> copy stream -> device arena -> compute)."""

import pytest
import torch

from demand_layering_ros.engine import DemandLayeredModel, empty_weights, LayerStore, profile
from .toy import make_toy, Toy

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(),
                                                   reason='no CUDA device on this machine')]


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    model = make_toy()
    x = torch.randn(1, 3, 16, 16)
    store = LayerStore.export(model, tmp_path_factory.mktemp('cuda') / 'toy.dls', (x,))
    with torch.no_grad():
        ref = model.cuda()(x.cuda())
    return store, x.cuda(), ref


def skeleton():
    with empty_weights():
        return Toy()


@pytest.mark.parametrize('mode', ['preload', 'sequential', 'pipelined'])
def test_cuda_modes_equal_the_resident_model_on_the_gpu(toy, mode):
    store, x, ref = toy
    dl = DemandLayeredModel(skeleton(), store, mode=mode, device='cuda')
    for _ in range(3):
        assert torch.equal(dl(x), ref)
    s = dl.stats()
    assert s['weight_bytes_peak'] <= s['budget_bytes'] and s['maps'] == 0
    dl.close()


def test_cuda_live_reconfiguration_with_resident_units_and_on_demand(toy):
    store, x, ref = toy
    dl = DemandLayeredModel(skeleton(), store, mode='pipelined', device='cuda')
    big = sorted(store.units, key=lambda u: -u.nbytes)[:2]
    dl.reconfigure(resident=[u.index for u in big],
                   budget_bytes=dl.min_budget('pipelined', [u.index for u in big]) + (1 << 20))
    for _ in range(2):
        assert torch.equal(dl(x), ref)
    with torch.no_grad():
        rare = make_toy().cuda()(x, take_rare=True)
    assert torch.equal(dl(x, take_rare=True), rare)
    assert dl.stats()['on_demand_loads'] == 1
    dl.reconfigure(mode='sequential', resident=[], budget_bytes=dl.min_budget('sequential'))
    assert torch.equal(dl(x), ref)
    dl.close()


def test_cuda_profile_times_the_gpu_with_events(toy):
    store, x, _ref = toy
    dl = DemandLayeredModel(skeleton(), store, mode='pipelined', device='cuda')
    prof = profile.measure(dl, (x,), runs=2, probe=False)
    p = prof.pipeline
    assert len(p.compute_s) == len(store.schedule) and all(c >= 0 for c in p.compute_s)
    assert p.layout.staging and p.stream_bps > 0
    dl.close()
