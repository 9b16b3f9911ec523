# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Installed as on a robot: every import declared, executables where ``ros2 run`` finds them."""

import ast
import os
import pathlib
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# import name -> rosdep key (None: no key; installed with pip, as the README says)
KEYS = {
    'rclpy': 'rclpy', 'sensor_msgs': 'sensor_msgs', 'std_msgs': 'std_msgs',
    'diagnostic_msgs': 'diagnostic_msgs', 'lifecycle_msgs': 'lifecycle_msgs',
    'rcl_interfaces': 'rcl_interfaces', 'rosgraph_msgs': 'rosgraph_msgs',
    'vision_msgs': 'vision_msgs', 'ament_index_python': 'ament_index_python',
    'launch': 'launch', 'launch_ros': 'launch_ros', 'numpy': 'python3-numpy',
    'cv2': 'python3-opencv', 'torch': 'python3-torch', 'torchvision': 'python3-torchvision',
    'rosbags': 'python3-rosbags-pip', 'skimage': 'python3-skimage', 'tqdm': 'python3-tqdm',
    'matplotlib': 'python3-matplotlib', 'safetensors': None, 'accelerate': None,
}


def imported_modules() -> set[str]:
    found = set()
    for path in [*(ROOT / 'demand_layering_ros').rglob('*.py'), *(ROOT / 'launch').glob('*.py')]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split('.')[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split('.')[0])
    return {m for m in found if m not in sys.stdlib_module_names} - {'demand_layering_ros'}


def test_package_xml_declares_every_imported_package_and_nothing_unused():
    declared = {e.text for e in ET.parse(ROOT / 'package.xml').getroot()
                if e.tag in ('depend', 'exec_depend')}
    modules = imported_modules()
    unknown = modules - set(KEYS)
    assert not unknown, f'imported but not mapped to a rosdep key here: {unknown}'
    missing = {KEYS[m] for m in modules if KEYS[m]} - declared
    assert not missing, f'imported but not in package.xml: {missing}'
    unused = declared - {KEYS[m] for m in modules}
    assert not unused, f'declared but never imported: {unused}'


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """A plain (not symlinked) colcon install of the package, as on a robot."""
    ws = tmp_path_factory.mktemp('ws')
    proc = subprocess.run(
        ['colcon', '--log-base', str(ws / 'log'), 'build', '--base-paths', str(ROOT),
         '--packages-select', 'demand_layering_ros', '--build-base', str(ws / 'build'),
         '--install-base', str(ws / 'install'), '--event-handlers', 'console_direct-'],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return ws / 'install' / 'demand_layering_ros'


def robot_env(prefix: pathlib.Path) -> dict[str, str]:
    """What `source install/setup.bash` gives: the package on the paths, lib/<pkg> NOT on PATH."""
    site = next(prefix.glob('lib/python3*/site-packages'))
    env = dict(os.environ, PYTHONPATH=f'{site}:{os.environ.get("PYTHONPATH", "")}',
               AMENT_PREFIX_PATH=f'{prefix}:{os.environ.get("AMENT_PREFIX_PATH", "")}')
    env['PATH'] = ':'.join(p for p in env['PATH'].split(':') if 'lib/demand_layering_ros' not in p)
    return env


def test_executables_are_where_ros2_run_looks(installed):
    env = robot_env(installed)
    # ros2 run PKG EXE runs <prefix of PKG in the ament index>/lib/PKG/EXE
    prefix = subprocess.run(
        [sys.executable, '-c', 'from ament_index_python.packages import get_package_prefix as p;'
         'print(p("demand_layering_ros"))'], env=env, capture_output=True, text=True,
        check=True, timeout=60).stdout.strip()
    assert pathlib.Path(prefix) == installed
    for exe in ('demand_layering_node', 'demand-layering'):
        path = installed / 'lib' / 'demand_layering_ros' / exe
        assert path.is_file() and os.access(path, os.X_OK), path
    cli = subprocess.run([str(installed / 'lib/demand_layering_ros/demand-layering'), 'bag',
                          '--help'], env=env, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0 and 'record' in cli.stdout, cli.stderr
    share = installed / 'share' / 'demand_layering_ros'
    assert {p.name for p in (share / 'config').iterdir()} >= {'demand_layering.yaml',
                                                              'fastdds_large_frames.xml'}
    assert (share / 'launch' / 'demand_layering.launch.py').is_file()
    assert (share / 'LICENSE').is_file()


@pytest.mark.ros
@pytest.mark.timeout(120)
def test_the_demo_starts_the_node_without_path(installed):
    from demand_layering_ros.cli.demo import node_command
    env = robot_env(installed)
    proc = subprocess.Popen(node_command('-p', 'autostart:=false'), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        time.sleep(6)
        assert proc.poll() is None, proc.stdout.read().decode()
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_licence_file_is_the_apache_license():
    text = (ROOT / 'LICENSE').read_text()
    assert 'Apache License' in text and 'Version 2.0, January 2004' in text
    assert 'END OF TERMS AND CONDITIONS' in text
    assert '<license>Apache-2.0</license>' in (ROOT / 'package.xml').read_text()
