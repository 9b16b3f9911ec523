# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""One disk shared by several executors: reads are served earliest deadline first."""

import threading
import time

import torch

from demand_layering_ros.engine import DemandLayeredModel, Disk, empty_weights, LayerStore
from demand_layering_ros.engine.reader import Reader
from .toy import make_toy, Toy


def test_the_nearer_deadline_gets_the_disk_first(tmp_path, monkeypatch):
    x = torch.randn(1, 3, 16, 16)
    stores = [LayerStore.export(make_toy(seed), tmp_path / f'toy{seed}.dls', (x,))
              for seed in (0, 1)]
    refs = []
    for seed in (0, 1):
        with torch.no_grad():
            refs.append(make_toy(seed)(x))
    disk = Disk(queue_depth=1)
    models = []
    for store in stores:
        with empty_weights():
            skeleton = Toy()
        models.append(DemandLayeredModel(skeleton, store, mode='pipelined', disk=disk,
                                         verify='none'))
    for dl, ref in zip(models, refs):   # warm: configurations applied, results exact
        assert torch.equal(dl(x), ref)
    served = []
    real_read = Reader.read

    def slow_read(self, offset, view, what=''):
        served.append(self.path.name)
        time.sleep(0.01)   # a slow disk: the order of service decides who waits
        return real_read(self, offset, view, what)

    monkeypatch.setattr(Reader, 'read', slow_read)
    done = {}

    def run(i, deadline):
        out = models[i].infer(x, deadline=deadline)
        done[i] = time.monotonic()
        assert torch.equal(out, refs[i])

    now = time.monotonic()
    far = threading.Thread(target=run, args=(0, now + 100.0))
    near = threading.Thread(target=run, args=(1, now + 1.0))
    far.start()
    time.sleep(0.015)   # the far stream is already reading when the near one arrives
    near.start()
    far.join(timeout=60)
    near.join(timeout=60)
    assert set(done) == {0, 1}
    assert done[1] < done[0], 'the near deadline finished after the far one'
    first_near = served.index('toy1.dls')
    # once the near stream reads, the far one gets the disk only between its visits
    assert served[first_near:].count('toy0.dls') <= served[first_near:].count('toy1.dls')
    for dl in models:
        dl.close()


def test_frames_waiting_for_one_executor_run_earliest_deadline_first(tmp_path):
    x = torch.randn(1, 3, 16, 16)
    store = LayerStore.export(make_toy(), tmp_path / 'toy.dls', (x,))
    with empty_weights():
        skeleton = Toy()
    dl = DemandLayeredModel(skeleton, store, mode='sequential', verify='none')
    dl(x)
    order = []
    gate = threading.Event()
    original = dl._check_store

    def hold_first():   # the first inference holds the executor until the others queue up
        if not order:
            order.append('busy')
            gate.wait(10)
        original()

    dl._check_store = hold_first
    now = time.monotonic()

    def run(name, deadline):
        dl.infer(x, deadline=deadline)
        order.append(name)

    first = threading.Thread(target=run, args=('first', None))
    first.start()
    while not order:
        time.sleep(0.001)
    late = threading.Thread(target=run, args=('late', now + 50))
    late.start()
    time.sleep(0.05)
    soon = threading.Thread(target=run, args=('soon', now + 1))
    soon.start()
    time.sleep(0.05)
    gate.set()
    for t in (first, late, soon):
        t.join(timeout=30)
    assert order == ['busy', 'first', 'soon', 'late']
    dl.close()
