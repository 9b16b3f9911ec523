# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""A store damaged while in use: noticed before its bytes are used, output stops, it recovers."""

import json
import os
import shutil

import pytest
import torch

from demand_layering_ros.engine import (DemandLayeredModel, empty_weights, LayerStore,
                                        StoreChangedError, StoreCorruptError, StoreFormatError)
from .toy import make_toy, Toy


@pytest.fixture
def served(tmp_path):
    model = make_toy()
    x = torch.randn(1, 3, 16, 16)
    store = LayerStore.export(model, tmp_path / 'toy.dls', (x,))
    with torch.no_grad():
        ref = model(x)
    with empty_weights():
        skeleton = Toy()
    dl = DemandLayeredModel(skeleton, store, mode='pipelined')
    assert torch.equal(dl(x), ref)
    shutil.copy(store.path, tmp_path / 'good.dls')
    yield dl, store, x, ref, tmp_path / 'good.dls'
    dl.close()


def overwrite(path, offset, data):
    with open(path, 'r+b') as f:
        f.seek(offset)
        f.write(data)


def test_a_write_to_the_store_stops_output_until_the_file_is_good_again(served):
    dl, store, x, ref, good = served
    victim = max(store.units, key=lambda u: u.nbytes)
    overwrite(store.path, victim.offset + 4096, b'\xff' * 256)
    for _ in range(2):   # every frame refuses, naming the unit; nothing wrong is returned
        with pytest.raises(StoreChangedError, match=victim.name.replace('+', r'\+')):
            dl(x)
    assert dl.stats()['store_error']
    shutil.copy(good, store.path)   # restored: same contents, a new modification time
    assert torch.equal(dl(x), ref)
    assert dl.stats()['store_error'] is None


def test_a_replaced_or_removed_store_is_noticed(served):
    dl, store, x, ref, good = served
    os.remove(store.path)
    with pytest.raises(StoreChangedError, match='removed'):
        dl(x)
    shutil.copy(good, str(store.path) + '.new')
    os.replace(str(store.path) + '.new', store.path)   # a new inode with the same contents
    assert torch.equal(dl(x), ref)


def test_silent_corruption_is_caught_by_the_rolling_check_within_its_cycle(served):
    dl, store, x, _ref, _good = served
    victim = max(store.units, key=lambda u: u.nbytes)
    st = os.stat(store.path)
    overwrite(store.path, victim.offset + 4096, b'\x00' * 64)
    os.utime(store.path, ns=(st.st_atime_ns, st.st_mtime_ns))   # bit rot leaves no trace
    dl.integrity.identity = type(dl.integrity.identity).of(os.stat(store.path))  # nor ctime
    cycle = dl.stats()['verify_cycle_frames']
    caught = None
    for frame in range(cycle + 1):
        try:
            dl(x)
        except StoreCorruptError as err:
            caught = (frame, str(err))
            break
    assert caught is not None and caught[0] <= cycle and victim.name in caught[1]
    with pytest.raises(StoreCorruptError, match='output stopped'):
        dl(x)   # known corrupt: checked again before every frame


def test_malformed_tables_are_refused_naming_the_field(tmp_path):
    model = make_toy()
    store = LayerStore.export(model, tmp_path / 's.dls', (torch.randn(1, 3, 16, 16),))
    data = store.path.read_bytes()
    hlen = int.from_bytes(data[:8], 'little')
    header = json.loads(data[8:8 + hlen])
    cases = {
        'crc32 is missing': lambda t: t['units'][2].pop('crc32'),
        r'schedule\[3\]': lambda t: t['schedule'].__setitem__(3, 'x'),
        r'offset is .*expected an integer': lambda t: t['units'][1].__setitem__('offset', '4096'),
        r'tensors is .*expected a list': lambda t: t['units'][0].__setitem__('tensors', 'w'),
        r'bindings\[0\]': lambda t: t['units'][0]['bindings'].__setitem__(0, [1, 2]),
        r'holds\[1\] is': lambda t: t['holds'].__setitem__('1', 7),
    }
    for i, (message, damage) in enumerate(cases.items()):
        table = json.loads(header['__metadata__']['demand_layering'])
        damage(table)
        meta = dict(header, __metadata__={'demand_layering': json.dumps(table)})
        head = json.dumps(meta).encode()
        assert len(head) <= hlen
        bad = tmp_path / f'bad{i}.dls'
        bad.write_bytes(data[:8] + head + b' ' * (hlen - len(head)) + data[8 + hlen:])
        with pytest.raises(StoreFormatError, match=message):
            LayerStore.open(bad)
