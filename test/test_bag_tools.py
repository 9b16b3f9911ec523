# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The bag commands refuse what they cannot do in one line, and stop promptly on a signal."""

import json
import shutil
import signal
import subprocess
import sys
import time

import pytest
import rclpy
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores

from demand_layering_ros.bag.play import parse_remaps
from demand_layering_ros.bag.record import check_limits

CLI = [sys.executable, '-m', 'demand_layering_ros.cli.main', 'bag']
TOPIC = '/camera/image_raw'


@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    """Five String messages 0.1 s apart (0.4 s), one bag without messages, two damaged."""
    root = tmp_path_factory.mktemp('bags')
    store = get_typestore(Stores.ROS2_KILTED)
    string = store.types['std_msgs/msg/String']
    with Writer(root / 'strings', version=9, storage_plugin=StoragePlugin.MCAP) as w:
        c = w.add_connection(TOPIC, 'std_msgs/msg/String', typestore=store)
        for i in range(5):
            w.write(c, 10**9 + i * 10**8,
                    store.serialize_cdr(string(data=f'm{i}'), 'std_msgs/msg/String'))
    with Writer(root / 'nomsgs', version=9, storage_plugin=StoragePlugin.MCAP) as w:
        w.add_connection(TOPIC, 'std_msgs/msg/String', typestore=store)
    shutil.copytree(root / 'strings', root / 'badmeta')
    (root / 'badmeta' / 'metadata.yaml').write_text('{{{ not yaml')
    shutil.copytree(root / 'strings', root / 'truncmcap')
    mcap = next((root / 'truncmcap').glob('*.mcap'))
    mcap.write_bytes(mcap.read_bytes()[:mcap.stat().st_size // 2])
    (root / 'emptydir').mkdir()
    return root


def refused(*args: str, timeout: float = 30) -> str:
    """Run ``bag ARGS``: it must fail at once with one line (no traceback); that line."""
    run = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 2, (run.returncode, run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in run.stderr, run.stderr
    return lines[0]


PLAY = ['play', '--wait-for-subscribers', '0']


@pytest.mark.timeout(120)
def test_a_pass_with_nothing_to_play_is_an_error_looped_or_not(bags):
    # looped, these spun at 100% CPU for ever
    for loop in ([], ['--loop']):
        assert 'no messages' in refused(*PLAY, str(bags / 'nomsgs'), *loop)
        line = refused(*PLAY, str(bags / 'strings'), '--start-offset', '100', *loop)
        assert 'past the end' in line and '0.400 s' in line, line


@pytest.mark.timeout(120)
@pytest.mark.parametrize('args, words', [
    (['--start-offset', '-100'], 'start offset -100'),  # waited 100 s
    (['--start-offset', 'nan'], 'start offset nan'),
    (['--rate', 'nan'], 'rate nan: must be a positive finite number'),
    (['--remap', f'{TOPIC}:='], 'is empty'),
    (['--remap', f'{TOPIC}:=bad topic'], "'bad topic' is not a valid topic name"),
])
def test_play_refuses_bad_arguments(bags, args, words):
    assert words in refused(*PLAY, str(bags / 'strings'), *args)


@pytest.mark.timeout(120)
@pytest.mark.parametrize('bag, words', [
    ('badmeta', 'Could not load YAML'),
    ('truncmcap', 'cannot read bag'),
    ('emptydir', 'no metadata.yaml'),
])
def test_play_of_a_damaged_bag_says_what_is_wrong(bags, bag, words):
    line = refused(*PLAY, str(bags / bag))
    assert words in line and str(bags / bag) in line, line


@pytest.mark.timeout(120)
@pytest.mark.parametrize('args, words', [
    (['--duration', '0'], 'duration 0.0'),  # recorded for ever
    (['--duration', '-5'], 'duration -5.0'),  # exited 0 with an empty bag
    (['--duration', 'nan'], 'duration nan'),
    (['--max-messages', '0'], 'max messages 0'),  # recorded for ever
])
def test_record_refuses_limits_that_are_not_positive(tmp_path, args, words):
    assert words in refused('record', '/chatter', '-o', str(tmp_path / 'out'), *args)
    assert not list(tmp_path.iterdir())


@pytest.mark.timeout(60)
def test_record_refuses_an_invalid_topic_name(tmp_path):
    line = refused('record', '/chatter', 'bad topic', '-o', str(tmp_path / 'out'),
                   '--duration', '1')
    assert "'bad topic' is not a valid topic name" in line
    assert not list(tmp_path.iterdir())


def test_limits_and_remaps_in_process():
    check_limits(None, None)
    check_limits(0.5, 1)
    for duration, count in ((0.0, None), (float('inf'), None), (None, -1)):
        with pytest.raises(ValueError):
            check_limits(duration, count)
    assert parse_remaps(['a:=/b/c']) == {'/a': '/b/c'}
    with pytest.raises(ValueError, match='FROM'):
        parse_remaps(['1a:=b'])


@pytest.mark.ros
@pytest.mark.timeout(120)
@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT])
def test_play_stops_promptly_and_cleanly_on_a_signal(bags, sig):
    # at rate 0.01 the second message is due 10 s after the first; SIGTERM used to wait for
    # it and then fail in flush() with "publisher's context is invalid"
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('bag_tools_probe', context=context)
    player = subprocess.Popen([*CLI, *PLAY, str(bags / 'strings'), '--rate', '0.01', '--clock'],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 30
        while node.count_publishers(TOPIC) == 0 and time.monotonic() < end:
            time.sleep(0.1)
        assert node.count_publishers(TOPIC), 'the player never started'
        time.sleep(0.5)
        player.send_signal(sig)
        sent = time.monotonic()
        out, err = player.communicate(timeout=15)
        took = time.monotonic() - sent
    finally:
        if player.poll() is None:
            player.kill()
            player.communicate()
        node.destroy_node()
        rclpy.shutdown(context=context)
    assert player.returncode == 0 and 'Traceback' not in err, (player.returncode, err)
    assert took < 2.5, took
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary['loops'] == 0 and summary['published'][TOPIC] == 1
