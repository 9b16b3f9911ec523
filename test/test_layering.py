# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The engine, perception and realtime layers stay free of ROS."""

import pathlib
import subprocess
import sys

import pytest

PKG = pathlib.Path(__file__).resolve().parents[1] / 'demand_layering_ros'


@pytest.mark.parametrize('layer', ['engine', 'perception', 'realtime'])
def test_layer_imports_no_rclpy(layer):
    sources = list((PKG / layer).rglob('*.py'))
    assert sources
    for path in sources:
        text = path.read_text()
        assert 'rclpy' not in text and 'sensor_msgs' not in text, f'{path} mentions ROS'
    # and importing the layer pulls in no ROS module transitively
    code = (f'import sys, demand_layering_ros.{layer}; '
            'ros = ("rclpy", "sensor_msgs", "vision_msgs"); '
            'bad = [m for m in sys.modules if m.startswith(ros)]; '
            'assert not bad, bad')
    subprocess.run([sys.executable, '-c', code], check=True, timeout=120)


def test_the_planner_imports_without_torch():
    """The planning process (``engine.plan_worker``) stays small: no torch in it."""
    code = ('import sys, demand_layering_ros.engine.plan_worker; '
            'assert "torch" not in sys.modules')
    subprocess.run([sys.executable, '-c', code], check=True, timeout=120)
