# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Output slicing below the largest layer, and profiles (measure, save, reuse, invalidate)."""

import pytest
import torch
from torch import nn

from demand_layering_ros.engine import DemandLayeredModel, empty_weights, LayerStore, profile
from .toy import make_toy, Toy

# Slices are computed by narrower GEMM / convolution calls, which may block the reduction
# differently: results agree to float32 rounding of sums of a few hundred terms.
ATOL, RTOL = 1e-5, 1e-5


class Wide(nn.Module):
    """A convolution and a linear layer, each much larger than a slice."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(32, 256, 3, padding=1, stride=2)
        self.bn = nn.BatchNorm2d(256)
        self.fc = nn.Linear(256 * 4 * 4, 512)
        self.head = nn.Linear(512, 10, bias=False)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x)))
        y = nn.functional.adaptive_avg_pool2d(y, 4).flatten(1)
        return self.head(torch.relu(self.fc(y)))


@pytest.fixture(scope='module')
def wide(tmp_path_factory):
    torch.manual_seed(3)
    model = Wide().eval()
    with torch.no_grad():
        for t in list(model.parameters()) + [model.bn.running_mean]:
            t.copy_(torch.randn_like(t) * 0.05)
        model.bn.running_var.copy_(torch.rand_like(model.bn.running_var) + 0.5)
    x = torch.randn(2, 32, 8, 8)
    store = LayerStore.export(model, tmp_path_factory.mktemp('wide') / 'wide.dls', (x,),
                              slice_bytes=64 << 10)
    with torch.no_grad():
        ref = model(x)
    return store, x, ref


def test_large_layers_are_stored_as_slices_that_cover_them(wide):
    store, _x, _ref = wide
    sliced = {}
    for u in store.units:
        if u.slice is not None:
            sliced.setdefault(u.slice[0], []).append(u.slice[1:])
    assert set(sliced) == {'conv', 'fc'}
    assert sliced['fc'] == [(0, 64), (64, 128), (128, 192), (192, 256), (256, 320), (320, 384),
                            (384, 448), (448, 512)]
    assert sliced['conv'] == [(0, 64), (64, 128), (128, 192), (192, 256)]  # at least 64 rows


@pytest.mark.parametrize('mode', ['sequential', 'pipelined', 'preload'])
def test_sliced_model_matches_and_goes_below_the_largest_layer(wide, mode):
    store, x, ref = wide
    with empty_weights():
        skeleton = Wide()
    dl = DemandLayeredModel(skeleton, store, mode=mode)
    for _ in range(2):
        out = dl(x)
        assert torch.allclose(out, ref, atol=ATOL, rtol=RTOL), (out - ref).abs().max()
    largest_layer = 512 * 4096 * 4
    if mode != 'preload':
        assert dl.stats()['weight_bytes_peak'] <= dl.stats()['budget_bytes'] < largest_layer
    dl.close()
    assert all(t.device.type == 'meta' for t in skeleton.parameters())
    assert 'forward' not in skeleton.fc.__dict__  # the slicing forward is removed on close


@pytest.fixture(scope='module')
def toy_store(tmp_path_factory):
    x = torch.randn(1, 3, 16, 16)
    store = LayerStore.export(make_toy(), tmp_path_factory.mktemp('p') / 'toy.dls', (x,))
    return store, x


def test_profile_is_measured_saved_reused_and_invalidated(toy_store):
    store, x = toy_store
    with empty_weights():
        skeleton = Toy()
    dl = DemandLayeredModel(skeleton, store, mode='pipelined', budget_bytes=store.total_bytes - 1)
    before = dl.config
    prof = profile.measure(dl, (x,), runs=2)
    assert dl.config == before  # restored
    p = prof.pipeline
    assert list(p.visits) == list(store.schedule)
    assert len(p.compute_s) == len(p.visits) and all(c >= 0 for c in p.compute_s)
    assert all(r > 0 for r in p.read_s) and prof.read_bandwidth_bps > 0
    assert p.compute_contention >= 1.0 and p.handoff_s >= 0 and p.stream_bps > 0
    assert prof.remaining_s(0) == pytest.approx(sum(p.compute_s))
    assert prof.remaining_s(len(p.visits)) == 0
    assert profile.load(dl, (x,)) is None
    path = prof.save(store.path)
    assert path.parent == store.path.parent and path.name.endswith('.profile.json')
    assert profile.load(dl, (x,)) == prof
    assert profile.load(dl, (torch.randn(1, 3, 24, 24),)) is None  # another input size
    path.write_text('{"version": 2, "key": 1}')
    assert profile.load(dl, (x,)) is None  # unreadable: measured again by load_or_measure
    again = profile.load_or_measure(dl, (x,), runs=1)
    assert profile.load(dl, (x,)) == again
    dl.close()
