# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The shipped parameter file applies to a node started in a namespace (as the launch file does).

The launch package is not installable here, so the node is started the way launch_ros starts it
(``--params-file FILE -r __ns:=/front``) and its parameters are read back over its parameter
service, as ``ros2 param get /front/demand_layering_node ...`` would.
"""

import pathlib

import pytest
import yaml

from .live_node import LiveNode

ROOT = pathlib.Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.ros, pytest.mark.timeout(120)]
CHANGED = {'model': 'ssdlite320_mobilenet_v3_large', 'score_threshold': 0.37,
           'deadline_ms': 750.0, 'deadline_reference': 'arrival', 'class_filter': ['person'],
           'max_input_pixels': 4_000_000, 'num_threads': 1, 'autostart': False}


def test_the_parameter_file_applies_under_a_namespace(tmp_path):
    params = yaml.safe_load((ROOT / 'config/demand_layering.yaml').read_text())
    key, = params  # the shipped file's key, whatever it is
    params[key]['ros__parameters'].update(CHANGED)  # a user's copy with values changed
    path = tmp_path / 'front.yaml'
    path.write_text(yaml.safe_dump(params))
    expected = params[key]['ros__parameters']
    node = LiveNode(str(tmp_path / 'unused.dls'), CHANGED['model'], '--params-file', str(path),
                    '-r', '__ns:=/front', namespace='/front')
    try:
        assert node.params.wait_for_services(timeout_sec=60), node.output()
        names = sorted(expected)
        got = dict(zip(names, node.get_params(*names)))
        assert got == expected
        # The graph learns node names from a discovery topic of its own, which can arrive after the
        # parameter services answer (CI saw only the probe itself right after them): wait for it.
        node.wait_for(lambda: ('demand_layering_node', '/front')
                      in node.node.get_node_names_and_namespaces(), 30, 'the node in /front')
    finally:
        node.close()
