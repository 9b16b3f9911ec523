# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Layer store: format, alignment, validation of bad files."""

import json
import os
import re
import struct

import pytest
from safetensors.torch import load_file
import torch

from demand_layering_ros.engine import (DemandLayeredModel, empty_weights, LayerStore,
                                        StoreCorruptError, StoreExistsError, StoreFormatError,
                                        StoreMismatchError)
from demand_layering_ros.engine.page_cache import cached_fraction
from demand_layering_ros.perception.detector import Detector
from demand_layering_ros.perception.models import build_model, example_input
from .toy import make_toy, Toy


@pytest.fixture
def toy_store(tmp_path):
    model = make_toy()
    x = torch.randn(1, 3, 16, 16)
    return model, x, LayerStore.export(model, tmp_path / 'toy.dls', (x,))


def test_units_are_aligned_ordered_and_readable_by_safetensors(toy_store):
    model, _x, store = toy_store
    for u in store.units:
        assert u.offset % 4096 == 0 and u.nbytes % 4096 == 0
    assert [u.offset for u in store.units] == sorted(u.offset for u in store.units)
    # first-use order: the stem comes first, the unused branch last
    assert store.units[0].modules[0] == 'stem'
    assert 'rare' in store.units[-1].modules
    # a standard reader sees every tensor, bit for bit; the tied weight is stored once
    loaded = load_file(str(store.path))
    state = model.state_dict()
    for key, value in state.items():
        if key == 'out_tied.weight':
            assert key not in loaded
            continue
        assert torch.equal(loaded[key], value), key
    assert sum(1 for k in loaded if k.endswith('out.weight')) == 1


def test_schedule_records_repeated_use_and_holds(toy_store):
    _model, _x, store = toy_store
    assert len(store.schedule) >= len(store.units) - 1  # 'rare' is never visited
    # a block's own scale is needed while its children run: held across their visits
    assert store.holds, 'parents that own tensors must be held while their children run'


def test_export_refuses_to_overwrite(tmp_path):
    model = make_toy()
    x = torch.randn(1, 3, 16, 16)
    LayerStore.export(model, tmp_path / 's.dls', (x,))
    with pytest.raises(StoreExistsError, match='exists'):
        LayerStore.export(model, tmp_path / 's.dls', (x,))
    LayerStore.export(model, tmp_path / 's.dls', (x,), overwrite=True)
    assert not (tmp_path / 's.dls.partial').exists()


def test_truncated_store_is_refused_naming_the_unit(toy_store, tmp_path):
    _m, _x, store = toy_store
    data = store.path.read_bytes()
    bad = tmp_path / 'short.dls'
    bad.write_bytes(data[:-5000])
    with pytest.raises(StoreFormatError, match='truncated.*unit'):
        LayerStore.open(bad)


def test_not_a_store_is_refused(tmp_path):
    junk = tmp_path / 'junk.dls'
    junk.write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"a": 1}' + b' ' * 8)
    with pytest.raises(StoreFormatError):
        LayerStore.open(junk)
    empty = tmp_path / 'empty.dls'
    empty.write_bytes(b'')
    with pytest.raises(StoreFormatError, match='too short'):
        LayerStore.open(empty)


def test_corrupt_unit_is_refused_before_anything_runs(toy_store, tmp_path):
    _m, x, store = toy_store
    victim = max(store.units, key=lambda u: u.nbytes)
    data = bytearray(store.path.read_bytes())
    data[victim.offset + 100] ^= 0xFF
    bad = tmp_path / 'corrupt.dls'
    bad.write_bytes(bytes(data))
    with empty_weights():
        skeleton = Toy()
    dl = DemandLayeredModel(skeleton, LayerStore.open(bad), mode='sequential')
    with pytest.raises(StoreCorruptError, match=victim.name.replace('+', r'\+')):
        dl(x)
    dl.close()


def test_store_of_another_model_is_refused(toy_store):
    _m, _x, store = toy_store

    class Other(Toy):
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Conv2d(16, 16, 3)  # other shape

    with empty_weights():
        other = Other()
    with pytest.raises(StoreMismatchError, match=r'head.weight.*\[16, 16, 1, 1\]'):
        DemandLayeredModel(other, store)
    with empty_weights():
        half = Toy().half()
    with pytest.raises(StoreMismatchError, match='float32'):
        DemandLayeredModel(half, store)


def test_store_of_another_model_of_its_class_says_what_differs(toy_store):
    _m, _x, store = toy_store

    class Narrow(Toy):
        def __init__(self):
            super().__init__(c=8)

    Narrow.__name__ = 'Toy'   # another model of the class the store names (it records no more)
    with empty_weights():
        other = Narrow()
    with pytest.raises(StoreMismatchError) as err:
        DemandLayeredModel(other, store)
    msg = str(err.value)
    assert msg.startswith('toy.dls does not fit this Toy (the store names only its class: Toy): ')
    found = re.search(r'(\d+) of its (\d+) tensors differ \(first stem\.weight: float32 '
                      r'\[16, 3, 3, 3\] in the store, float32 \[8, 3, 3, 3\] in the Toy\)', msg)
    assert found and 0 < int(found[1]) < int(found[2]), msg   # the output layers fit
    assert msg.endswith(' - re-export it for this model, or set store_path'), msg


def test_a_detector_on_the_store_of_another_model_of_its_class_names_both(tmp_path):
    # ssdlite320 and ssd300 are both SSD, the only name their stores record
    torch.set_num_threads(2)
    name = 'ssdlite320_mobilenet_v3_large'
    path = tmp_path / 'ssdlite.dls'
    LayerStore.export(build_model(name, 'none', seed=0), path, example_input(name),
                      progress=False)
    with pytest.raises(StoreMismatchError) as err:
        Detector('ssd300_vgg16', path)
    msg = str(err.value)
    assert re.fullmatch(r'model ssd300_vgg16: ssdlite\.dls does not fit this SSD \(the store '
                        r'names only its class: SSD\): (\d+) of its \1 tensors differ \(first '
                        r'backbone\.features\.0\.0\.0\.weight: not in the SSD\), \d+ of the '
                        r'SSD\'s are not in it - re-export it for this model, or set store_path',
                        msg), msg
    assert len(msg) <= 300   # a node's status shows the first 300 characters


def test_header_that_lies_about_a_tensor_is_refused(toy_store, tmp_path):
    _m, _x, store = toy_store
    data = store.path.read_bytes()
    (hlen,) = struct.unpack('<Q', data[:8])
    header = json.loads(data[8:8 + hlen])
    header['stem.weight']['shape'] = [999]
    head = json.dumps(header).encode()
    head += b' ' * (hlen - len(head))
    bad = tmp_path / 'lies.dls'
    bad.write_bytes(data[:8] + head + data[8 + hlen:])
    with pytest.raises(StoreFormatError, match='stem.weight'):
        LayerStore.open(bad)


def test_direct_io_leaves_no_store_pages_in_the_page_cache(toy_store):
    _m, x, store = toy_store
    with empty_weights():
        skeleton = Toy()
    dl = DemandLayeredModel(skeleton, store, mode='pipelined')
    dl(x)
    stats = dl.stats()
    dl.close()
    if not stats['direct_io']:
        pytest.skip(f'O_DIRECT not supported on the filesystem of {store.path}')
    assert stats['bytes_read'] >= store.total_bytes - store.units[-1].nbytes  # all but 'rare'
    # the header was read with buffered I/O; the unit data must not be cached
    data_pages = (os.path.getsize(store.path) - store.data_start)
    assert cached_fraction(store.path) * os.path.getsize(store.path) <= store.data_start + 4096, (
        f'{cached_fraction(store.path):.2%} of the store is cached ({data_pages} data bytes)')
