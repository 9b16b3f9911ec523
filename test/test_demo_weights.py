# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The demo's weights: torchvision's DEFAULT when they can be had, else seeded random, quickly."""

import socket
import time

import pytest

import demand_layering_ros.cli.demo as demo
import demand_layering_ros.perception as perception

MODEL = 'fasterrcnn_mobilenet_v3_large_320_fpn'


@pytest.fixture
def exports(monkeypatch, tmp_path):
    """Record the exports asked for instead of running them; an empty torch hub cache."""
    calls = []
    monkeypatch.setattr(perception, 'ensure_store',
                        lambda model, weights, path, **_kw: calls.append(weights) or path)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.setenv('DEMAND_LAYERING_STORES', str(tmp_path / 'stores'))
    return calls


def test_offline_falls_back_to_random_weights_with_a_notice_and_fast(
        exports, monkeypatch, capsys):
    def hanging(*_a, **_kw):  # a resolver that does not answer in time
        time.sleep(10)
        raise OSError('timed out')
    monkeypatch.setattr(socket, 'create_connection', hanging)
    t0 = time.monotonic()
    weights, store = demo.prepare_store(MODEL, 'auto')
    assert time.monotonic() - t0 < demo.REACH_TIMEOUT_S + 1.0
    assert weights == 'none' and exports == ['none'] and 'random' in store.name
    assert 'NOTICE' in capsys.readouterr().out


def test_cached_default_weights_are_used(exports):
    import torch
    from torchvision.models.detection import FasterRCNN_MobileNet_V3_Large_320_FPN_Weights as W
    cache = demo.Path(torch.hub.get_dir()) / 'checkpoints'
    cache.mkdir(parents=True)
    (cache / demo.Path(W.DEFAULT.url).name).write_bytes(b'weights')
    weights, store = demo.prepare_store(MODEL, 'auto')
    assert weights == 'DEFAULT' and exports == ['DEFAULT'] and 'default' in store.name


def test_a_failed_default_export_still_runs_the_demo(exports, monkeypatch):
    monkeypatch.setattr(demo, 'default_weights_available', lambda _m: True)

    def fail_default(model, weights, path, **_kw):
        if weights == 'DEFAULT':
            raise perception.ModelError('download interrupted')
        exports.append(weights)
        return path
    monkeypatch.setattr(perception, 'ensure_store', fail_default)
    assert demo.prepare_store(MODEL, 'auto')[0] == 'none' and exports == ['none']


def test_explicit_weights_are_used_as_given(exports):
    assert demo.prepare_store(MODEL, 'none')[0] == 'none'
    assert exports == ['none']
