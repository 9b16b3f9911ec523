# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The default store of a weights file: one per content, never another file's."""

import os

from demand_layering_ros.perception import default_store_path

MODEL = 'ssdlite320_mobilenet_v3_large'


def test_weights_files_of_one_name_get_stores_of_their_own(tmp_path):
    # the probe's: w1/model.safetensors and w2/model.safetensors shared one store, so a node
    # given w2 silently ran w1's weights (the store is reused whenever it exists)
    (tmp_path / 'w1').mkdir()
    (tmp_path / 'w2').mkdir()
    w1, w2 = tmp_path / 'w1' / 'model.safetensors', tmp_path / 'w2' / 'model.safetensors'
    w1.write_bytes(b'seed 1' * 1000)
    w2.write_bytes(b'seed 2' * 1000)
    s1, s2 = (default_store_path(MODEL, str(w), tmp_path) for w in (w1, w2))
    assert s1 != s2 and s1.name.startswith(f'{MODEL}-model-') and s1.name.endswith('-s2.dls')
    # the same content is the same store, wherever it lies
    copy = tmp_path / 'model.safetensors'
    copy.write_bytes(w1.read_bytes())
    assert default_store_path(MODEL, str(copy), tmp_path) == s1
    # a file retrained in place is another store
    w1.write_bytes(b'seed 3' * 1000)
    os.utime(w1, ns=(1, 1))   # even with a time that looks old
    assert default_store_path(MODEL, str(w1), tmp_path) not in (s1, s2)


def test_the_named_weights_and_a_missing_file_keep_their_names(tmp_path):
    assert default_store_path(MODEL, 'none', tmp_path).name == f'{MODEL}-random-s2.dls'
    assert default_store_path(MODEL, 'DEFAULT', tmp_path).name == f'{MODEL}-default-s2.dls'
    # the export says the file is missing; the name must not fail first
    missing = default_store_path(MODEL, str(tmp_path / 'nope.safetensors'), tmp_path)
    assert missing.name == f'{MODEL}-nope-s2.dls'
