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
    rc = main(argv=[str(ROOT / p) for p in SOURCES])
    assert rc == 0, 'Found code style errors / warnings'
