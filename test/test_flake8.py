# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""ROS linter: flake8 with the ament configuration (99 columns).

In a fresh interpreter: flake8 forks a pool of workers, and a fork of this pytest process,
which holds torch's and rclpy's threads by the time this test runs, can crash in the child
(seen: every worker segfaulting while collecting garbage, and the pool waiting for them).
"""

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCES = ['demand_layering_ros', 'test', 'launch', 'scripts', 'setup.py']


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    done = subprocess.run([sys.executable, '-m', 'ament_flake8.main',
                           *[str(ROOT / p) for p in SOURCES]],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f'flake8 found code style errors:\n{done.stdout}{done.stderr}'
