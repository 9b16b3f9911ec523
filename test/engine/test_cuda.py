# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The 3-stage CUDA path (read -> host buffer -> copy stream -> device -> compute); needs a GPU."""

import pytest
import torch

from demand_layering_ros.engine import DemandLayeredModel, empty_weights, LayerStore
from .toy import make_toy, Toy

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(),
                                                   reason='no CUDA device on this machine')]


@pytest.mark.parametrize('mode', ['preload', 'sequential', 'pipelined'])
def test_cuda_modes_equal_the_resident_model_on_the_gpu(mode, tmp_path):
    model = make_toy()
    x = torch.randn(1, 3, 16, 16)
    store = LayerStore.export(model, tmp_path / 'toy.dls', (x,))
    with torch.no_grad():
        ref = model.cuda()(x.cuda())
    with empty_weights():
        skeleton = Toy()
    dl = DemandLayeredModel(skeleton, store, mode=mode, device='cuda')
    for _ in range(3):
        assert torch.equal(dl(x.cuda()), ref)
    s = dl.stats()
    assert s['weight_bytes_peak'] <= s['budget_bytes']
    dl.close()
