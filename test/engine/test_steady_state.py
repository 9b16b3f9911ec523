# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Steady state: after the first frames nothing is mapped again and the process does not grow."""

import json
import subprocess
import sys
import threading

import pytest
import torch

from demand_layering_ros.engine import DemandLayeredModel, empty_weights, LayerStore
from demand_layering_ros.engine.arena import HostArena
from .toy import make_toy, Toy

MiB = 2 ** 20


@pytest.mark.slow
def test_a_hundred_frames_map_nothing_and_keep_rss_flat(tmp_path):
    store = tmp_path / 'resnet18.dls'
    cli = [sys.executable, '-m', 'demand_layering_ros.cli.main']
    subprocess.run(cli + ['export', '--model', 'resnet18', '--out', str(store)], check=True,
                   capture_output=True, timeout=300)
    out = subprocess.run(cli + ['run', '--model', 'resnet18', '--store', str(store), '--mode',
                                'pipelined', '--budget-x-largest', '3', '--frames', '100',
                                '--json'], check=True, capture_output=True, text=True,
                         timeout=600).stdout
    frames = [json.loads(line) for line in out.splitlines() if '"frame"' in line]
    assert len(frames) == 100
    steady = frames[3:]
    assert all(f['maps'] == 0 for f in steady), [f['maps'] for f in steady]
    growth = steady[-1]['rss_bytes'] / frames[3]['rss_bytes'] - 1
    assert growth < 0.01, f'RSS grew {growth:.2%} from frame 3 to frame 100'


def test_the_arena_is_mapped_once_per_configuration(tmp_path):
    model = make_toy()
    x = torch.randn(1, 3, 16, 16)
    store = LayerStore.export(model, tmp_path / 'toy.dls', (x,))
    with empty_weights():
        skeleton = Toy()
    dl = DemandLayeredModel(skeleton, store, mode='pipelined')
    for _ in range(5):
        dl(x)
    s = dl.stats()
    assert s['maps'] == 0 and s['maps_total'] == 1
    assert s['weight_bytes'] == s['budget_bytes']
    dl.reconfigure(budget_bytes=s['budget_bytes'] + 8192)   # larger: mapped anew
    dl(x)
    assert dl.stats()['maps_total'] == 2 and dl.weight_bytes() == s['budget_bytes'] + 8192
    dl.reconfigure(budget_bytes=s['budget_bytes'])   # smaller: the tail's pages go back
    for _ in range(3):
        dl(x)
    assert dl.stats()['maps_total'] == 2 and dl.weight_bytes() == s['budget_bytes']
    dl.close()


def test_the_arenas_held_bytes_can_be_read_while_it_re_maps():
    """Diagnostics read ``held_bytes`` on the executor thread while inference re-maps."""
    arena = HostArena()
    arena.resize(32 * MiB)
    errors, running = [], threading.Event()
    running.set()

    def diagnostics():
        while running.is_set():
            try:
                assert arena.held_bytes >= 0
            except ValueError as err:   # before: 'mmap closed or invalid' while unmapping
                errors.append(err)

    reader = threading.Thread(target=diagnostics)
    reader.start()
    try:
        for k in range(12):   # each larger than any before: the old mapping is unmapped
            arena.resize((64 + 16 * k) * MiB)
    finally:
        running.clear()
        reader.join()
        arena.release()
    assert not errors, errors[0]
