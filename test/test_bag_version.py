# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Bags in the format the target distro reads: 8 for Humble and Iron, 9 for Jazzy and later."""

import os
import subprocess
import sys
import time

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rosbags.rosbag2 import Reader
from std_msgs.msg import String
import yaml

from demand_layering_ros.bag.camera import write_camera_bag
from demand_layering_ros.bag.record import Recorder
from demand_layering_ros.bag.version import check_version, default_version

CLI = [sys.executable, '-m', 'demand_layering_ros.cli.main']


def metadata(bag) -> dict:
    return yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']


def test_default_follows_the_distro():
    assert default_version('humble') == 8 and default_version('iron') == 8
    assert default_version('jazzy') == 9 and default_version('kilted') == 9
    assert default_version('') == 9  # these Kilted wheels (no ROS_DISTRO set)
    with pytest.raises(ValueError, match='8 for Humble'):
        check_version(5)


def test_version_8_is_what_humble_parses(tmp_path):
    bag = write_camera_bag(tmp_path / 'cam8', frames=2, version=8)
    meta = metadata(bag)
    assert meta['version'] == 8
    # Humble decodes this field with as<std::string>(); version 9 writes a list here
    assert all(isinstance(t['topic_metadata']['offered_qos_profiles'], str)
               for t in meta['topics_with_message_count'])
    with Reader(bag) as reader:
        assert sum(c.msgcount for c in reader.connections) == 4
    assert metadata(write_camera_bag(tmp_path / 'cam9', frames=1))['version'] == 9


def test_the_command_line_defaults_to_the_running_distro(tmp_path):
    env = dict(os.environ, ROS_DISTRO='humble')
    subprocess.run([*CLI, 'bag', 'camera', '-o', str(tmp_path / 'h'), '--frames', '1'],
                   env=env, check=True, timeout=120, capture_output=True)
    assert metadata(tmp_path / 'h')['version'] == 8
    subprocess.run([*CLI, 'bag', 'camera', '-o', str(tmp_path / 'k'), '--frames', '1',
                    '--bag-version', '9'], env=env, check=True, timeout=120,
                   capture_output=True)
    assert metadata(tmp_path / 'k')['version'] == 9


@pytest.mark.ros
@pytest.mark.timeout(60)
def test_recording_in_version_8(tmp_path):
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('bag_version_probe', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        pub = node.create_publisher(String, '/chatter', 10)
        recorder = Recorder(node, ['/chatter'], tmp_path / 'rec8', version=8)
        end = time.monotonic() + 20
        while pub.get_subscription_count() == 0 and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.1)
        for i in range(3):
            pub.publish(String(data=f'm{i}'))
            executor.spin_once(timeout_sec=0.2)
        end = time.monotonic() + 10
        while recorder.recording.counts['/chatter'] < 3 and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.1)
        recorder.close()
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
    assert metadata(tmp_path / 'rec8')['version'] == 8
    with Reader(tmp_path / 'rec8') as reader:
        assert [c.msgcount for c in reader.connections] == [3]
