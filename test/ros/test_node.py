# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The node for real: headers, budget, rejections, deadlines, clocks, encodings, QoS, lifecycle."""

import os
import signal
import subprocess
import sys

from diagnostic_msgs.msg import DiagnosticStatus
from lifecycle_msgs.msg import Transition
import numpy as np
import pytest
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import Image

from .live_node import export_store, LiveNode

MODEL = 'ssdlite320_mobilenet_v3_large'
pytestmark = [pytest.mark.ros, pytest.mark.timeout(300)]


@pytest.fixture(scope='module')
def live(tmp_path_factory):
    store = export_store(MODEL, tmp_path_factory.mktemp('store') / 'ssdlite.dls')
    node = LiveNode(str(store), MODEL, '-p', 'deadline_ms:=2000.0')
    try:
        node.wait_for(lambda: node.diagnostics and 'budget_bytes' in node.diagnostics[-1], 120,
                      'the node to configure')
        yield node
    finally:
        node.close()


@pytest.fixture(autouse=True)
def settings_restored(live):
    """Each test starts from the module's settings, whatever the one before left."""
    yield
    if live.proc.poll() is None:
        live.set_params(auto_tune=False, deadline_ms=2000.0, deadline_policy='skip_stale',
                        deadline_reference='stamp', memory_budget_mb=0.0,
                        execution_mode='pipelined', score_threshold=0.5, max_detections=100,
                        class_filter=[''])


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


def test_frame_stats_carry_each_processed_frame_while_someone_listens(live):
    from diagnostic_msgs.msg import DiagnosticArray
    stats: list = []
    sub = live.node.create_subscription(DiagnosticArray, '/demand_layering_node/frame_stats',
                                        stats.append, 10)
    try:
        live.wait_for(lambda: live.node.count_publishers(
            '/demand_layering_node/frame_stats') > 0, 10, 'the frame_stats publisher')
        live.spin(0.5)  # the match completes on both sides
        frames = [live.image(f'stats{i}') for i in range(2)]
        send_and_collect(live, frames)
        live.wait_for(lambda: len(stats) >= 2, 10, 'frame_stats of both frames')
    finally:
        live.node.destroy_subscription(sub)
    assert [m.header.stamp for m in stats[-2:]] == [f.header.stamp for f in frames]
    kv = {k.key: k.value for k in stats[-1].status[0].values}
    assert set(kv) >= {'inference_ms', 'latency_ms', 'deadline_ms', 'missed', 'predicted_ms',
                       'mode', 'budget_bytes', 'weight_bytes', 'resident_units', 'auto_tune'}
    d = live.diagnostics[-1]
    assert float(kv['inference_ms']) > 0 and float(kv['deadline_ms']) == 2000.0
    assert kv['missed'] == 'False' and stats[-1].status[0].level == DiagnosticStatus.OK
    assert kv['mode'] == d['mode'] and int(kv['budget_bytes']) == int(d['budget_bytes'])
    assert 0 < int(kv['weight_bytes']) <= int(kv['budget_bytes'])
    assert float(kv['predicted_ms']) > 0   # the calibrated model's, for the configuration


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


def frame_of(live, encoding: str, data: np.ndarray, frame_id: str, **fields) -> Image:
    msg = live.image(frame_id)
    h, w = data.shape[:2]
    msg.height, msg.width, msg.encoding = h, w, encoding
    msg.step = data.strides[0]
    msg.data = np.ascontiguousarray(data).tobytes()
    for k, v in fields.items():
        setattr(msg, k, v)
    return msg


def test_camera_encodings_produce_detections(live):
    assert live.set_params(score_threshold=0.0)[0].successful
    rng = np.random.default_rng(3)
    frames = [
        frame_of(live, 'yuv422', rng.integers(0, 255, (120, 320), dtype=np.uint8), 'uyvy',
                 width=160),  # two bytes a pixel
        frame_of(live, 'bayer_rggb8', rng.integers(0, 255, (120, 160), dtype=np.uint8),
                 'bayer'),
        frame_of(live, 'mono16', rng.integers(0, 65535, (120, 160), dtype=np.uint16).astype(
            '>u2'), 'mono16', is_bigendian=1)]
    got = send_and_collect(live, frames)
    assert [d.header.frame_id for d in got] == ['uyvy', 'bayer', 'mono16']
    assert all(d.detections for d in got)


def test_diagnostics_split_the_latency_and_name_the_hardware(live):
    assert live.set_params(score_threshold=0.0, max_detections=20)[0].successful
    start = len(live.detections)
    frames = [live.image(f'vga{i}', size=(480, 640)) for i in range(8)]
    for f in frames:  # rgb8 as cameras publish it
        f.encoding, f.step = 'rgb8', 640 * 3
    send_and_collect(live, frames)
    assert all(len(d.detections) == 20 for d in live.detections[start:])  # a busy scene
    live.spin(2.5)
    d = live.diagnostics[-1]
    for stage in ('transport', 'queue', 'convert', 'inference', 'publish'):
        assert float(d[f'{stage}_ms_p50']) >= 0 and f'{stage}_ms_p99' in d, stage
    # the node's own work beyond inference, per frame at 640x480 with 20 detections
    assert float(d['convert_publish_ms_p50']) <= 5.0, d['convert_publish_ms_p50']
    assert d['_hardware_id'].startswith('cpu')
    assert live.set_params(score_threshold=0.5, max_detections=100)[0].successful


def test_class_filter_names_must_be_classes_of_the_model(live):
    res = live.set_params(class_filter=['person', 'dragon'])[0]
    assert not res.successful and "['dragon']" in res.reason and 'toothbrush' in res.reason
    assert live.set_params(class_filter=['person', '17'])[0].successful
    assert live.set_params(class_filter=[''])[0].successful


def resend_until(live, make_frame, counter: str, tries: int = 20) -> None:
    """Best-effort input may lose a frame: resend until the node has counted one."""
    before = float(live.diagnostics[-1][counter])
    for i in range(tries):
        live.pub.publish(make_frame(i))
        live.spin(0.5)
        if float(live.diagnostics[-1][counter]) > before:
            return
    raise AssertionError(f'{counter} never counted')


def test_camera_on_its_own_clock_warns_with_the_offset_and_works_from_arrival(live):
    resend_until(live, lambda i: live.image(f'hour{i}', age_s=3600.0), 'dropped_stale')
    live.wait_for(lambda: live.diagnostics[-1]['_level'] == DiagnosticStatus.WARN
                  and '3600' in live.diagnostics[-1]['_message'], 5, 'a WARN naming the offset')
    assert 'deadline_reference: arrival' in live.diagnostics[-1]['_message']
    assert float(live.diagnostics[-1]['clock_offset_s']) == pytest.approx(3600, abs=5)
    assert 's behind the node clock' in live.output()  # and the log says it too
    assert live.set_params(deadline_reference='arrival')[0].successful
    got = send_and_collect(live, [live.image('hour_late', age_s=3600.0)])
    assert got[0].header.frame_id == 'hour_late'
    assert live.set_params(deadline_reference='stamp')[0].successful


def test_frames_with_an_unset_stamp_are_logged(live):
    def unset(i):
        msg = live.image(f'nostamp{i}')
        msg.header.stamp.sec, msg.header.stamp.nanosec = 0, 0
        return msg
    resend_until(live, unset, 'dropped_stale')
    live.wait_for(lambda: 'unset' in live.output(), 5, 'a log line about the unset stamp')
    assert 'header stamps are unset (0)' in live.diagnostics[-1]['_message'] or \
        'unset' in live.output()


def test_input_qos_is_the_standard_override_parameter(live):
    assert live.get_params('qos_overrides./image.subscription.reliability',
                           'qos_overrides./image.subscription.depth') == ['best_effort', 1]
    infos = live.node.get_subscriptions_info_by_topic('/image')
    assert infos and infos[0].qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT


@pytest.mark.parametrize('size', [(480, 640), (720, 1280)])
def test_camera_sized_frames_reach_the_node_at_the_default_best_effort_qos(live, size):
    """20 of 20 rgb8 frames at 2 Hz (the package's Fast DDS profile in both processes)."""
    h, w = size
    live.spin(2.2)  # diagnostics that count every frame sent before
    base = float(live.diagnostics[-1]['received'])
    data = np.random.default_rng(5).integers(0, 255, (h, w, 3), dtype=np.uint8).tobytes()
    for i in range(20):
        msg = live.image(f'big{i}')
        msg.height, msg.width, msg.encoding, msg.step, msg.data = h, w, 'rgb8', w * 3, data
        live.pub.publish(msg)
        live.spin(0.5)
    live.wait_for(lambda: float(live.diagnostics[-1]['received']) >= base + 20, 5,
                  f'20 frames of {w}x{h} (got {float(live.diagnostics[-1]["received"]) - base})')
    assert float(live.diagnostics[-1]['received']) == base + 20


def test_publishers_without_frames_get_a_warn_with_the_cause_and_the_fix(live):
    """A camera started without the profile loses every 1080p frame: the node says why.

    1080p (6.2 MB, about 95 fragments through a 512 KiB segment) was lost in all runs but one; VGA
    (0.9 MB) mostly: CI saw a few VGA frames through, a few seconds apart, which kept the node
    from ever going 5 s without one.
    """
    code = ('import time, numpy as np, rclpy\n'
            'from rclpy.qos import qos_profile_sensor_data\n'
            'from sensor_msgs.msg import Image\n'
            'rclpy.init(); n = rclpy.create_node("bare_camera")\n'
            'p = n.create_publisher(Image, "image", qos_profile_sensor_data)\n'
            'd = np.zeros(1080 * 1920 * 3, np.uint8).tobytes()\n'
            'for i in range(40):\n'
            '    m = Image(height=1080, width=1920, encoding="rgb8", step=5760, data=d)\n'
            '    m.header.stamp = n.get_clock().now().to_msg(); p.publish(m); time.sleep(0.5)\n')
    env = {k: v for k, v in os.environ.items() if not k.endswith('DEFAULT_PROFILES_FILE')}
    before = float(live.diagnostics[-1]['received'])   # the node's frames so far
    camera = subprocess.Popen([sys.executable, '-c', code], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        live.wait_for(lambda: 'but no frame for' in live.diagnostics[-1]['_message'], 25,
                      'the WARN about publishers without frames')
        d = live.diagnostics[-1]
        assert d['_level'] == DiagnosticStatus.WARN
        assert 'shared-memory segment' in d['_message']
        assert 'fastdds_large_frames.xml' in d['_message']
        # the cause is real: of the camera's frames none arrived, or a stray one (CI once saw
        # one of the 40 get through before the 5 s without frames)
        assert float(d['received']) - before <= 2, (d['received'], before)
    finally:
        os.killpg(camera.pid, signal.SIGKILL)
        camera.wait(timeout=10)
