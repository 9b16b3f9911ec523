# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The detection types on the wire carry the published vision_msgs type hashes."""

import os
import subprocess
import sys
import textwrap
import time

import pytest
import rclpy

EXPECTED = {
    'vision_msgs/msg/Detection2DArray':
        'RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968',
    'vision_msgs/msg/LabelInfo':
        'RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783',
}

PUBLISHER = textwrap.dedent('''
    import time, rclpy
    from vision_msgs.msg import Detection2DArray, LabelInfo
    rclpy.init()
    node = rclpy.create_node('hash_publisher')
    node.create_publisher(Detection2DArray, 'hash_test/detections', 10)
    node.create_publisher(LabelInfo, 'hash_test/label_info', 10)
    time.sleep(30)
''')


@pytest.mark.timeout(90)
def test_hashes_seen_from_another_process():
    proc = subprocess.Popen([sys.executable, '-c', PUBLISHER], env=os.environ.copy())
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node('hash_observer', context=context)
        seen = {}
        deadline = time.monotonic() + 45
        while len(seen) < 2 and time.monotonic() < deadline:
            for topic in ('hash_test/detections', 'hash_test/label_info'):
                for info in node.get_publishers_info_by_topic(topic):
                    seen[info.topic_type] = str(info.topic_type_hash)
            time.sleep(0.2)
        assert seen == EXPECTED
    finally:
        rclpy.shutdown(context=context)
        proc.kill()
        proc.wait(timeout=10)


def test_message_layout_matches_vision_msgs_4_1():
    from vision_msgs.msg import BoundingBox2D, Detection2D, ObjectHypothesisWithPose
    assert list(Detection2D.get_fields_and_field_types()) == ['header', 'results', 'bbox', 'id']
    assert list(BoundingBox2D.get_fields_and_field_types()) == ['center', 'size_x', 'size_y']
    assert list(ObjectHypothesisWithPose.get_fields_and_field_types()) == ['hypothesis', 'pose']
