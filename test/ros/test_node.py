# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The node for real: headers, live budget, rejections, deadlines, bad frames, lifecycle."""

import subprocess
import sys

from lifecycle_msgs.msg import Transition
import pytest

from .live_node import LiveNode

MODEL = 'ssdlite320_mobilenet_v3_large'
pytestmark = [pytest.mark.ros, pytest.mark.timeout(300)]


@pytest.fixture(scope='module')
def live(tmp_path_factory):
    store = tmp_path_factory.mktemp('store') / 'ssdlite.dls'
    subprocess.run([sys.executable, '-m', 'demand_layering_ros.cli.main', 'export', '--model',
                    MODEL, '--out', str(store)], check=True, timeout=300, capture_output=True)
    node = LiveNode(str(store), MODEL, '-p', 'deadline_ms:=2000.0')
    try:
        node.wait_for(lambda: node.diagnostics and 'budget_bytes' in node.diagnostics[-1], 120,
                      'the node to configure')
        yield node
    finally:
        node.close()


def send_and_collect(live, frames, publish=None):
    publish = publish or live.pub.publish
    start = len(live.detections)
    for f in frames:
        publish(f)
        target = len(live.detections) + 1
        live.wait_for(lambda: len(live.detections) >= target, 30, f'detections of {f.header}')
    return live.detections[start:]


def test_detections_carry_the_source_header_also_when_empty(live):
    assert live.set_params(score_threshold=1.0)[0].successful  # nothing scores above 1
    frames = [live.image(f'cam_{i}') for i in range(3)]
    got = send_and_collect(live, frames)
    assert [d.header for d in got] == [f.header for f in frames]
    assert all(len(d.detections) == 0 for d in got)
    assert live.set_params(score_threshold=0.0)[0].successful
    got = send_and_collect(live, [live.image('cam_any')])
    assert got[0].detections and got[0].detections[0].header == got[0].header


def test_live_budget_change_applies_on_the_next_frame_without_losing_frames(live):
    live.wait_for(lambda: 'min_budget_bytes' in live.diagnostics[-1], 10, 'diagnostics')
    minimum = int(live.diagnostics[-1]['min_budget_bytes'])
    total = int(live.diagnostics[-1]['total_bytes'])
    new_mb = round((minimum + (total - minimum) / 2) / 2 ** 20, 2)
    frames = [live.image(f'b{i}') for i in range(4)]
    got = send_and_collect(live, frames[:2])
    assert live.set_params(memory_budget_mb=new_mb)[0].successful
    got += send_and_collect(live, frames[2:])
    assert [d.header for d in got] == [f.header for f in frames]  # none lost to the change
    live.wait_for(lambda: int(live.diagnostics[-1]['budget_bytes']) == int(new_mb * 2 ** 20),
                  10, 'diagnostics to show the new budget')
    d = live.diagnostics[-1]
    assert int(d['weight_bytes_peak']) <= int(d['budget_bytes'])
    assert int(d['weight_bytes_peak']) > minimum  # the larger budget is being used


def test_invalid_values_are_rejected_with_a_reason(live):
    res = live.set_params(memory_budget_mb=0.5)[0]
    assert not res.successful and 'minimum' in res.reason
    res = live.set_params(execution_mode='warp')[0]
    assert not res.successful and 'execution_mode' in res.reason
    res = live.set_params(score_threshold=1.5)[0]
    assert not res.successful
    res = live.set_params(model='resnet152')[0]
    assert not res.successful  # read-only
    got = send_and_collect(live, [live.image('still_alive')])
    assert got[0].header.frame_id == 'still_alive'


def test_frames_older_than_their_deadline_are_dropped_and_counted(live):
    start = len(live.detections)
    for i in range(3):
        # best-effort input: resend until the node has seen (and dropped) this stale frame
        before = float(live.diagnostics[-1]['dropped_stale'])
        for _ in range(30):
            live.pub.publish(live.image(f'old{i}', age_s=10.0))
            live.spin(0.5)
            if float(live.diagnostics[-1]['dropped_stale']) > before:
                break
        else:
            raise AssertionError('stale frame was never counted as dropped')
    got = send_and_collect(live, [live.image('fresh')])
    assert [d.header.frame_id for d in live.detections[start:]] == ['fresh']
    assert got[0].header.frame_id == 'fresh'


def test_malformed_images_are_counted_and_the_node_keeps_running(live):
    before = float(live.diagnostics[-1]['rejected'])
    bad = live.image('bad')
    bad.step = 3
    live.pub.publish(bad)
    live.spin(0.5)
    wrong = live.image('bad2')
    wrong.encoding = '32FC1'
    live.pub.publish(wrong)
    live.spin(0.5)
    got = send_and_collect(live, [live.image('after_bad')])
    assert got[0].header.frame_id == 'after_bad'
    live.wait_for(lambda: float(live.diagnostics[-1]['rejected']) >= before + 2, 10,
                  'rejections to be counted')


def test_auto_tune_plans_least_memory_for_the_deadline_and_the_fastest_when_unreachable(live):
    d = live.diagnostics[-1]
    total, minimum = int(d['total_bytes']), int(d['min_budget_bytes'])
    assert live.set_params(auto_tune=True, deadline_ms=60000.0, memory_budget_mb=0.0)[0].successful
    send_and_collect(live, [live.image('tune1')])  # planned before this frame
    live.wait_for(lambda: live.diagnostics[-1]['auto_tune'] == 'True'
                  and int(live.diagnostics[-1]['budget_bytes']) < minimum + 1, 10,
                  'the least memory (any plan meets a 60 s deadline)')
    assert float(live.diagnostics[-1]['predicted_ms']) > 0
    # no configuration reaches 1 ms; 'complete' so the late frame still runs (and re-plans)
    assert live.set_params(deadline_ms=1.0, deadline_policy='complete')[0].successful
    send_and_collect(live, [live.image('tune2')])
    live.wait_for(lambda: int(live.diagnostics[-1]['budget_bytes']) == total, 10,
                  'the fastest plan (all resident)')
    cap_mb = round((minimum + (total - minimum) / 3) / 2 ** 20, 2)
    assert live.set_params(memory_budget_mb=cap_mb)[0].successful  # the cap bounds the plan
    send_and_collect(live, [live.image('tune3')])
    live.wait_for(lambda: int(live.diagnostics[-1]['budget_bytes']) <= int(cap_mb * 2 ** 20),
                  10, 'the plan within the cap')
    assert live.set_params(auto_tune=False, deadline_ms=2000.0, deadline_policy='skip_stale',
                           memory_budget_mb=0.0)[0].successful
    live.wait_for(lambda: int(live.diagnostics[-1]['budget_bytes']) == minimum, 10,
                  'manual parameters again')


def test_abort_policy_cancels_an_inference_that_cannot_meet_its_deadline(live):
    assert live.set_params(deadline_policy='abort', deadline_ms=50.0)[0].successful
    before = float(live.diagnostics[-1]['aborted'])
    for i in range(20):  # best-effort input: send until one is aborted
        live.pub.publish(live.image(f'late{i}'))
        live.spin(0.5)
        if float(live.diagnostics[-1]['aborted']) > before:
            break
    else:
        raise AssertionError('no inference was aborted with a 50 ms deadline')
    assert live.set_params(deadline_policy='skip_stale', deadline_ms=2000.0)[0].successful
    got = send_and_collect(live, [live.image('after_abort')])
    assert got[0].header.frame_id == 'after_abort'


def test_deactivate_releases_weight_memory_and_activate_resumes(live):
    assert live.change_state(Transition.TRANSITION_DEACTIVATE)
    live.wait_for(lambda: live.diagnostics[-1]['_message'] == 'inactive'
                  and int(live.diagnostics[-1]['weight_bytes']) == 0, 10, 'release')
    assert live.change_state(Transition.TRANSITION_ACTIVATE)
    got = send_and_collect(live, [live.image('back')])
    assert got[0].header.frame_id == 'back'
