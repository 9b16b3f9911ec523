# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""ROS linter: docstring conventions (pep257 as configured by ament)."""

import pathlib

from ament_pep257.main import main
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCES = ['demand_layering_ros', 'test', 'launch', 'scripts', 'setup.py']


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    # google convention: summary on the first line, descriptive mood allowed; the D1xx
    # missing-docstring checks are left out as in ament's own convention
    rc = main(argv=[str(ROOT / p) for p in SOURCES] + [
        '--convention', 'google', '--add-ignore', 'D100', 'D101', 'D102', 'D103', 'D104', 'D105',
        'D106', 'D107'])
    assert rc == 0, 'Found code style errors / warnings'
