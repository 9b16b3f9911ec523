# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The node in this process, unconfigured: parameter handling on every distro, publishers."""

import pytest
import rclpy
from rclpy.lifecycle.publisher import LifecyclePublisher
from rclpy.parameter import Parameter

from demand_layering_ros.realtime import DeadlineReference

from .in_process import in_process_node

pytestmark = [pytest.mark.ros, pytest.mark.timeout(60)]


@pytest.fixture(params=['kilted', 'humble'])
def node(request, monkeypatch):
    if request.param == 'humble':
        # Humble's rclpy has no pre- or post-set callback: the node must not need them
        monkeypatch.delattr(rclpy.node.Node, 'add_post_set_parameters_callback')
        monkeypatch.delattr(rclpy.node.Node, 'add_pre_set_parameters_callback')
    with in_process_node('-p', 'model:=ssdlite320_mobilenet_v3_large') as n:
        yield n


def test_accepted_changes_reach_the_frame_loop_as_one_snapshot(node):
    before = node.runner.settings
    results = node.set_parameters_atomically([
        Parameter('score_threshold', value=0.25), Parameter('deadline_reference', value='arrival'),
        Parameter('class_filter', value=['person', 'dog'])])
    assert results.successful
    s = node.runner.settings
    assert s is not before  # replaced as a whole, never edited in place
    assert (s.score_threshold, s.deadline_reference, s.class_filter) == (
        0.25, DeadlineReference.ARRIVAL, ('person', 'dog'))


def test_refused_changes_leave_everything_as_it_was(node):
    before = node.runner.settings
    result = node.set_parameters_atomically([Parameter('score_threshold', value=0.1),
                                             Parameter('class_filter', value=['unicorn'])])
    assert not result.successful and 'unicorn' in result.reason
    assert node.runner.settings is before
    assert node.get_parameter('score_threshold').value == 0.5


def test_outputs_are_lifecycle_publishers_and_diagnostics_are_not(node):
    for pub in (node.det_pub, node.label_pub, node.debug_pub):
        assert isinstance(pub, LifecyclePublisher) and not pub.is_activated
    assert not isinstance(node.diag_pub, LifecyclePublisher)  # they explain an inactive node


def test_a_failing_status_is_logged_and_the_node_keeps_running(node, monkeypatch):
    def broken(*_args, **_kwargs):
        raise ValueError('mmap closed or invalid')
    real = node._engine_values
    monkeypatch.setattr(node, '_engine_values', broken)
    said = []
    logger = node.get_logger().get_child('diagnostics')
    monkeypatch.setattr(type(logger), 'error', lambda _self, text, **_kw: said.append(text))
    node._publish_diagnostics()   # before: the exception left the timer callback (and spin)
    assert len(said) == 1 and 'mmap closed or invalid' in said[0]
    monkeypatch.setattr(node, '_engine_values', real)
    node._publish_diagnostics()   # the next period publishes again
    assert len(said) == 1
