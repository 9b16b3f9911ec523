# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Every served model, every mode: outputs equal the all-resident model's, bit for bit."""

import pytest
import torch

from demand_layering_ros.engine import DemandLayeredModel, LayerStore
from demand_layering_ros.perception.models import build_model, build_skeleton, example_input

MODELS = ['resnet152', 'densenet201', 'ssdlite320_mobilenet_v3_large',
          'fasterrcnn_mobilenet_v3_large_320_fpn', 'ssd300_vgg16', 'retinanet_resnet50_fpn',
          'fcos_resnet50_fpn', 'fasterrcnn_resnet50_fpn']


def keep_every_box(model):
    """Random weights score low: keep all boxes so the comparison covers real detections."""
    for m in [model, getattr(model, 'roi_heads', None)]:
        if m is not None and hasattr(m, 'score_thresh'):
            m.score_thresh = 0.0
    return model


def same(a, b):
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert set(x) == {'boxes', 'scores', 'labels'}
        if not all(torch.equal(x[k], y[k]) for k in x):
            return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize('name', MODELS)
def test_model_exact_in_every_mode(name, tmp_path):
    torch.set_num_threads(2)
    model = keep_every_box(build_model(name, 'none', seed=3))
    store = LayerStore.export(model, tmp_path / f'{name}.dls', example_input(name), progress=False)
    x = example_input(name, hw=(240, 320) if name.startswith(('fcos', 'retina', 'fasterrcnn_r'))
                      else None, seed=11)
    with torch.no_grad():
        ref = model(*x)
    if isinstance(ref, list):
        assert ref[0]['boxes'].shape[0] > 0, 'nothing to compare'
    del model
    dl = DemandLayeredModel(keep_every_box(build_skeleton(name)), store, mode='sequential')
    assert same(dl(*x), ref)
    dl.reconfigure(mode='pipelined')
    assert same(dl(*x), ref)
    # spend the memory between the minimum and the model on resident units, live
    big = sorted(store.units, key=lambda u: -u.nbytes)[:2]
    dl.reconfigure(resident=[u.name for u in big],
                   budget_bytes=dl.min_budget('pipelined', [u.index for u in big]) + (1 << 20))
    assert same(dl(*x), ref)
    dl.reconfigure(mode='preload')
    assert same(dl(*x), ref)
    s = dl.stats()
    assert s['weight_bytes_peak'] <= s['budget_bytes'] and s['on_demand_loads'] == 0
    dl.close()
