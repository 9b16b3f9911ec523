# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Point the ROS wheels' exported CMake files at this interpreter's include directories."""

import pathlib
import re
import sys
import sysconfig

import numpy


def main(venv: str) -> int:
    """Rewrite build-machine include paths under ``venv/share`` in place; print what changed."""
    py_include = sysconfig.get_paths()['include']
    np_include = numpy.get_include()
    numpy_pattern = re.compile(r'/opt/python/cp311-cp311/[^;"\s]*numpy/_?core/include')
    py_pattern = re.compile(r'/opt/python/cp311-cp311/include/python3\.11')
    changed = 0
    for path in pathlib.Path(venv, 'share').rglob('*.cmake'):
        text = path.read_text(errors='surrogateescape')
        if '/opt/python/cp311-cp311' not in text:
            continue
        new = py_pattern.sub(py_include, numpy_pattern.sub(np_include, text))
        if new != text:
            path.write_text(new, errors='surrogateescape')
            changed += 1
    print(f'[setup] CMake include paths fixed in {changed} files')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1]))
