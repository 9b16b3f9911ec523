# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Faults seen from outside: a store that cannot be used, frames that fail, a stop mid-frame."""

import os
from pathlib import Path
import shutil
import signal
import time

from diagnostic_msgs.msg import DiagnosticStatus
import pytest

from .live_node import export_store, LiveNode

MODEL = 'ssdlite320_mobilenet_v3_large'
pytestmark = [pytest.mark.ros, pytest.mark.timeout(400)]


@pytest.fixture(scope='module')
def store(tmp_path_factory) -> Path:
    return export_store(MODEL, tmp_path_factory.mktemp('store') / 'ssdlite.dls')


def test_a_configure_failure_is_logged_and_shown_with_its_reason(tmp_path):
    bad = tmp_path / 'not_a_store.dls'
    bad.write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"oops": 1}' + b'\0' * 4096)
    node = LiveNode(str(bad), MODEL)
    try:
        node.wait_for(lambda: node.diagnostics and
                      node.diagnostics[-1]['_level'] == DiagnosticStatus.ERROR, 90,
                      'an ERROR from configure')
        message = node.diagnostics[-1]['_message']
        assert message.startswith('configure failed: Store') and 'not_a_store.dls' in message
        node.wait_for(lambda: 'configure failed' in node.output(), 5, 'the log line')
    finally:
        node.close()


@pytest.mark.parametrize('damage', ['truncate', 'overwrite'])
def test_failing_frames_are_error_with_the_last_error_and_clear_when_frames_succeed(
        store, tmp_path, damage):
    copy = tmp_path / 'ssdlite.dls'
    shutil.copy(store, copy)
    good = copy.read_bytes()
    # sequential at its minimum: every frame reads every unit from the file again
    node = LiveNode(str(copy), MODEL, '-p', 'execution_mode:=sequential',
                    '-p', 'deadline_ms:=5000.0')
    try:
        node.wait_for(lambda: node.diagnostics and 'budget_bytes' in node.diagnostics[-1], 120,
                      'the node to configure')

        def send_for(seconds: float, until) -> None:
            end = time.monotonic() + seconds
            i = 0
            while time.monotonic() < end and not until():
                node.pub.publish(node.image(f'f{i}'))
                node.spin(0.4)
                i += 1
        send_for(10, lambda: float(node.diagnostics[-1]['processed']) >= 2)
        node.spin(2.5)  # the last frame done, and diagnostics saying so
        assert node.diagnostics[-1]['_level'] == DiagnosticStatus.OK
        processed = float(node.diagnostics[-1]['processed'])
        published = len(node.detections)
        with open(copy, 'r+b') as f:
            if damage == 'truncate':  # the store loses its second half while the node runs
                f.truncate(len(good) // 2)
            else:  # 4 x 64 bytes in the middle are overwritten
                for k in range(4):
                    f.seek(len(good) // 2 + k * 4096)
                    f.write(b'\xa5' * 64)
        broke = time.monotonic()
        send_for(20, lambda: node.diagnostics[-1]['_level'] == DiagnosticStatus.ERROR)
        d = node.diagnostics[-1]
        assert d['_level'] == DiagnosticStatus.ERROR, d['_message']
        assert time.monotonic() - broke < 10
        assert 'frames failed in the last 10 s: ' in d['_message']
        # a failing frame publishes nothing: every array published was a processed frame
        node.spin(2.5)
        assert len(node.detections) - published == \
            float(node.diagnostics[-1]['processed']) - processed
        with open(copy, 'r+b') as f:  # the file is good again
            f.write(good)
        mended = time.monotonic()
        send_for(25, lambda: node.diagnostics[-1]['_level'] == DiagnosticStatus.OK)
        assert node.diagnostics[-1]['_level'] == DiagnosticStatus.OK, \
            node.diagnostics[-1]['_message']
        assert time.monotonic() - mended < 10 + 3  # the window, and a diagnostics period
        assert float(node.diagnostics[-1]['failed']) >= 1  # the counter stays cumulative
    finally:
        node.close()


def test_stopping_during_inference_leaves_cleanly(store):
    # sequential at its minimum budget: each inference takes long enough to be interrupted
    node = LiveNode(str(store), MODEL, '-p', 'execution_mode:=sequential',
                    '-p', 'deadline_policy:=complete', '-p', 'score_threshold:=0.0')
    try:
        node.wait_for(lambda: node.diagnostics and 'budget_bytes' in node.diagnostics[-1], 120,
                      'the node to configure')
        for i in range(6):  # keep the inference thread busy
            node.pub.publish(node.image(f'busy{i}', size=(480, 640)))
            node.spin(0.1)
        os.killpg(node.proc.pid, signal.SIGINT)
        assert node.proc.wait(timeout=20) == 0
        log = node.output()
        assert 'Traceback' not in log and 'context is invalid' not in log, log
    finally:
        node.close()
