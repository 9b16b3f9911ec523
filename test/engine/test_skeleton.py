# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""empty_weights: skeletons on one thread, real modules on the others, in any interleaving."""

import threading

from torch import nn

from demand_layering_ros.engine import empty_weights


def _in_block(entered: threading.Event, leave: threading.Event, out: dict, key: str) -> None:
    with empty_weights():
        out[key + '_before'] = nn.Linear(4, 4)
        entered.set()
        leave.wait(10)
        out[key + '_after'] = nn.BatchNorm2d(4)


def test_blocks_on_two_threads_leave_in_any_order_and_touch_no_other_thread():
    out: dict = {}
    a_in, a_go, b_in, b_go = (threading.Event() for _ in range(4))
    a = threading.Thread(target=_in_block, args=(a_in, a_go, out, 'a'))
    b = threading.Thread(target=_in_block, args=(b_in, b_go, out, 'b'))
    a.start()
    assert a_in.wait(10)
    b.start()
    assert b_in.wait(10)
    real = nn.Linear(4, 4)         # this thread is in no block while both others are
    a_go.set()                     # the first in leaves first (a stack would restore wrongly)
    a.join(10)
    also_real = nn.Conv2d(2, 2, 1)
    b_go.set()
    b.join(10)
    after = nn.BatchNorm2d(3)
    for m in (real, also_real, after):
        assert all(t.device.type == 'cpu' for t in [*m.parameters(), *m.buffers()])
    for key in ('a_before', 'a_after', 'b_before', 'b_after'):
        tensors = [*out[key].parameters(), *out[key].buffers()]
        assert tensors and all(t.device.type == 'meta' for t in tensors), key


def test_nested_blocks_on_one_thread():
    with empty_weights():
        with empty_weights():
            inner = nn.Linear(2, 2)
        outer = nn.Linear(2, 2)
    plain = nn.Linear(2, 2)
    assert inner.weight.device.type == outer.weight.device.type == 'meta'
    assert plain.weight.device.type == 'cpu'
