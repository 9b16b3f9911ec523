# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Values a user gives loosely - on the command line, in a file, with ros2 param set."""

from dataclasses import dataclass, field

import pytest
import rclpy
from rclpy.parameter import Parameter

from demand_layering_ros.engine.errors import BudgetError
from demand_layering_ros.perception.detector import EngineRequest

from .in_process import in_process_node

pytestmark = [pytest.mark.ros, pytest.mark.timeout(60)]
MODEL = ('-p', 'model:=ssdlite320_mobilenet_v3_large')
MiB = 2 ** 20


def test_start_values_of_another_type_are_taken_where_they_mean_one_thing(tmp_path):
    params = tmp_path / 'params.yaml'
    params.write_text('/**:\n  ros__parameters:\n    memory_budget_mb: 40\n'
                      '    resident_units: []\n    class_filter: [1, 3]\n    input_size: []\n')
    with in_process_node(*MODEL, '--params-file', str(params), '-p', 'deadline_ms:=300',
                         '-p', 'max_detections:=50.0') as node:
        assert node._start_error is None
        got = {n: node.get_parameter(n).value for n in (
            'deadline_ms', 'memory_budget_mb', 'max_detections', 'resident_units',
            'class_filter', 'input_size')}
        assert got == {'deadline_ms': 300.0, 'memory_budget_mb': 40.0, 'max_detections': 50,
                       'resident_units': [''], 'class_filter': ['1', '3'],
                       'input_size': [0, 0]}
        assert node.runner.settings.deadline_ms == 300.0
    with in_process_node(*MODEL, '-p', 'class_filter:=person') as node:
        assert node.get_parameter('class_filter').value == ['person']


@pytest.mark.parametrize('arg, reason', [
    ('memory_budget_mb:=-5.0', 'memory_budget_mb'),
    ('num_threads:=-1', 'num_threads'),
    ('deadline_ms:=soon', 'deadline_ms'),
    ('class_filter:=0', 'class_filter'),   # the background id is not a class
])
def test_a_bad_start_value_fails_configure_with_its_reason_and_the_node_stays_up(arg, reason):
    # before: the first three ended the node with a traceback while it was being made
    with in_process_node(*MODEL, '-p', arg) as node:
        assert node._start_error is not None and reason in node._start_error
        assert node.trigger_configure() != rclpy.lifecycle.TransitionCallbackReturn.SUCCESS
        assert node.error is not None and reason in node.error
        # what was refused is not in force: the default is
        name = arg.split(':=')[0]
        assert node.get_parameter(name).value != arg.split(':=')[1]


@pytest.fixture(params=['kilted', 'humble'])
def distro(request, monkeypatch):
    if request.param == 'humble':   # neither pre- nor post-set callbacks
        monkeypatch.delattr(rclpy.node.Node, 'add_post_set_parameters_callback')
        monkeypatch.delattr(rclpy.node.Node, 'add_pre_set_parameters_callback')
    return request.param


def test_ros2_param_set_takes_a_whole_number_for_a_decimal(distro):
    with in_process_node(*MODEL) as node:
        result = node.set_parameters([Parameter('deadline_ms', value=300)])[0]
        if distro == 'humble':   # no pre-set callback: rclpy refuses it, and says why
            assert not result.successful and 'type' in result.reason
            return
        assert result.successful
        assert node.get_parameter('deadline_ms').value == 300.0
        assert node.runner.settings.deadline_ms == 300.0
        assert node.set_parameters([Parameter('class_filter', value='dog')])[0].successful
        assert node.runner.settings.class_filter == ('dog',)
        # an empty list is a delete (ros2 param delete): still refused
        assert not node.set_parameters([Parameter('class_filter')])[0].successful


@dataclass
class Engine:
    """A configured detector's validation: pipelined needs 2.5 MiB, sequential 1.4."""

    asked: list = field(default_factory=list)

    def validate(self, request: EngineRequest) -> None:
        self.asked.append(request)
        least = {'sequential': 1.4 * MiB, 'pipelined': 2.5 * MiB}.get(request.mode, 0)
        if request.budget_bytes is not None and request.budget_bytes < least:
            raise BudgetError(f'budget {request.budget_bytes} is below the {request.mode} '
                              f'minimum {int(least)}')


def test_auto_tunes_cap_is_checked_against_the_least_any_mode_holds():
    with in_process_node(*MODEL) as node:
        node.detector = Engine()
        try:
            # before: refused against the pipelined minimum of execution_mode, which auto_tune
            # does not use (it planned sequential within 1.4 MiB)
            ok = node.set_parameters_atomically([Parameter('auto_tune', value=True),
                                                 Parameter('memory_budget_mb', value=2.0)])
            assert ok.successful, ok.reason
            assert node.detector.asked[-1].mode == 'sequential'
            low = node.set_parameters([Parameter('memory_budget_mb', value=1.0)])[0]
            assert not low.successful and 'auto_tune' in low.reason
            assert 'sequential' in low.reason
            # auto_tune off: execution_mode (pipelined) applies again, and 2 MiB is too little
            off = node.set_parameters([Parameter('auto_tune', value=False)])[0]
            assert not off.successful and 'pipelined' in off.reason
        finally:
            node.detector = None
