# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Launch file and parameter file: what can be checked without the launch package."""

import ast
import pathlib

import yaml

from demand_layering_ros.ros.params import SPEC

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_config_documents_every_parameter_with_a_valid_default():
    params = yaml.safe_load((ROOT / 'config/demand_layering.yaml').read_text())
    values = params['/**']['ros__parameters']
    assert set(SPEC) <= set(values), set(SPEC) - set(values)
    for name, (default, *_r) in SPEC.items():
        assert type(values[name]) is type(default), name


def test_launch_file_declares_the_documented_arguments():
    # 'launch' is not installable here: parse the file instead of importing it
    tree = ast.parse((ROOT / 'launch/demand_layering.launch.py').read_text())
    declared = {c.args[0].value for c in ast.walk(tree) if isinstance(c, ast.Call)
                and getattr(c.func, 'id', '') == 'DeclareLaunchArgument'}
    assert declared == {'image', 'namespace', 'params_file', 'use_sim_time', 'log_level'}
