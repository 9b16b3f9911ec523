# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""An export that fails says what failed first, not the tail of a traceback or of advice."""

import pickle

import pytest

from demand_layering_ros.perception import ensure_store, ModelError
from demand_layering_ros.perception.detector import child_error

TRACEBACK = '''Traceback (most recent call last):
  File "/x/cli/main.py", line 20, in cmd_export
    store = LayerStore.export(model, args.out)
  File "/x/engine/export.py", line 240, in export_store
    f.write(region)
OSError: [Errno 28] No space left on device
'''


def test_the_exception_line_of_a_traceback():
    assert child_error(TRACEBACK) == 'OSError: [Errno 28] No space left on device'


def test_the_first_line_of_a_known_error():
    stderr = ('demand-layering export: weights /w.pt: cannot be read (Weights only load failed.\n'
              'This file can still be loaded, to do so you have two options ...\n'
              'setting weights_only to False will likely succeed)\n')
    assert child_error(stderr) == 'weights /w.pt: cannot be read (Weights only load failed.'


class Payload:
    def __reduce__(self):
        return (print, ('this must never run',))


@pytest.mark.timeout(300)
def test_a_pickle_is_refused_and_the_reason_comes_first(tmp_path):
    weights = tmp_path / 'evil.pt'
    weights.write_bytes(pickle.dumps({'backbone.weight': Payload()}))
    with pytest.raises(ModelError) as err:
        ensure_store('ssdlite320_mobilenet_v3_large', str(weights), tmp_path / 'x.dls')
    message = str(err.value)
    assert message.startswith('exporting ssdlite320_mobilenet_v3_large (weights ')
    assert 'failed: weights' in message and 'cannot be read' in message
    assert 'will likely succeed' not in message and '\n' not in message
    assert not (tmp_path / 'x.dls').exists()
