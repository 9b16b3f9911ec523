# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""A node with streams in this process, unconfigured: parameters from the file, topics, changes."""

import pathlib

import pytest
from rclpy.parameter import Parameter


from .in_process import in_process_node

ROOT = pathlib.Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.ros, pytest.mark.timeout(60)]


@pytest.fixture
def node():
    with in_process_node('--params-file', str(ROOT / 'config/two_cameras.yaml')) as n:
        yield n


def test_each_stream_has_its_parameters_from_the_file_and_the_node_wide_defaults(node):
    assert node.stream_names == ('front', 'rear')
    get = node.get_parameter
    assert get('front.model').value == 'fasterrcnn_mobilenet_v3_large_320_fpn'
    assert get('rear.model').value == 'ssdlite320_mobilenet_v3_large'
    assert (get('front.deadline_ms').value, get('rear.deadline_ms').value) == (200.0, 400.0)
    assert get('rear.score_threshold').value == get('score_threshold').value  # node-wide
    assert get('rear.memory_budget_mb').value == 0.0      # its share, not the whole budget
    assert node.describe_parameter('front.model').read_only
    assert node._start_error is None
    assert [e.streams for e in node._engines] == [('front',), ('rear',)]


def test_each_stream_publishes_under_its_name(node):
    topics = {name for name, _types in node.get_topic_names_and_types()}
    # lifecycle publishers exist before activation; the inputs are subscribed on activate
    for s in ('front', 'rear'):
        for out in ('detections', 'label_info', 'debug_image', 'frame_stats'):
            assert f'/{s}/{out}' in topics, (s, out, topics)
    assert '/detections' not in topics and '/demand_layering_node/frame_stats' not in topics
    assert [io.input_topic for io in node.streams.values()] == ['front/image', 'rear/image']


def test_a_stream_change_is_checked_against_its_model_and_reaches_only_that_stream(node):
    front, rear = (node.streams[s].runner for s in ('front', 'rear'))
    before = front.settings
    refused = node.set_parameters_atomically([Parameter('rear.class_filter', value=['unicorn'])])
    assert not refused.successful and 'stream rear' in refused.reason
    assert node.set_parameters_atomically([
        Parameter('rear.deadline_ms', value=120.0),
        Parameter('rear.class_filter', value=['person'])]).successful
    assert (rear.settings.deadline_ms, rear.settings.class_filter) == (120.0, ('person',))
    assert front.settings is before
    assert not node.set_parameters_atomically(
        [Parameter('front.model', value='ssd300_vgg16')]).successful   # fixed at configure
