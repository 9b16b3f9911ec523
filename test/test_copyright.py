# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Licence header on every Python file (ament_copyright is not on PyPI, so checked here)."""

import pathlib
import subprocess

HEADER = ('# Copyright 2026 demand_layering_ros maintainers. '
          'Licensed under the Apache License, Version 2.0.')


def test_every_python_file_has_the_licence_header():
    root = pathlib.Path(__file__).resolve().parents[1]
    files = subprocess.run(
        ['git', 'ls-files', '--cached', '--others', '--exclude-standard', '*.py'],
        cwd=root, capture_output=True, text=True, check=True).stdout.split()
    assert files, 'no Python files found'
    missing = [f for f in files if not (root / f).read_text().startswith(HEADER)]
    assert not missing, f'files without the licence header: {missing}'
