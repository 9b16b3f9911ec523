# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""ROS linter: flake8 with the ament configuration (99 columns)."""

import pathlib

from ament_flake8.main import main_with_errors
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCES = ['demand_layering_ros', 'test', 'launch', 'scripts', 'setup.py']


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    rc, errors = main_with_errors(argv=[str(ROOT / p) for p in SOURCES])
    assert rc == 0, 'Found %d code style errors / warnings:\n' % len(errors) + '\n'.join(errors)
