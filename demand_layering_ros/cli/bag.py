# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""``demand-layering bag``: record, play, and write the bundled camera stream."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

DEFAULT_CAMERA_BAG = Path(os.environ.get(
    'DEMAND_LAYERING_STORES', Path.home() / '.cache' / 'demand_layering_ros')) / 'demo_camera'


def add_parser(sub: Any) -> None:
    """Register ``bag record``, ``bag play`` and ``bag camera``."""
    bag = sub.add_parser('bag', help='record and play rosbag2 bags (MCAP or sqlite3)')
    cmds = bag.add_subparsers(dest='bag_command', required=True)

    r = cmds.add_parser('record', help='record topics into a bag')
    r.add_argument('topics', nargs='+')
    r.add_argument('-o', '--output', required=True, type=Path)
    r.add_argument('--storage', choices=['mcap', 'sqlite3'], default='mcap')
    r.add_argument('--duration', type=float,
                   help='stop after this many seconds (> 0; leave out for no limit)')
    r.add_argument('--max-messages', type=int,
                   help='stop after this many messages (>= 1; leave out for no limit)')
    _version_arg(r)
    r.set_defaults(func=cmd_record)

    p = cmds.add_parser('play', help="publish a bag's messages with their timing")
    p.add_argument('bag', type=Path)
    p.add_argument('--rate', type=float, default=1.0,
                   help='speed factor, positive (0.5: half the recorded speed)')
    p.add_argument('--loop', action='store_true')
    p.add_argument('--clock', action='store_true', help='publish /clock (for use_sim_time)')
    p.add_argument('--topics', nargs='+')
    p.add_argument('--remap', nargs='+', default=[], metavar='FROM:=TO')
    p.add_argument('--start-offset', type=float, default=0.0,
                   help='seconds into the bag (0 or more, before its end)')
    p.add_argument('--wait-for-subscribers', type=float, default=3.0, metavar='SECONDS',
                   help='wait up to this long for every topic to have a subscriber')
    p.set_defaults(func=cmd_play)

    c = cmds.add_parser('camera', help='write the bundled 30 Hz camera stream as a bag')
    c.add_argument('-o', '--output', type=Path, default=DEFAULT_CAMERA_BAG)
    c.add_argument('--frames', type=int, default=90)
    c.add_argument('--storage', choices=['mcap', 'sqlite3'], default='mcap')
    c.add_argument('--overwrite', action='store_true')
    _version_arg(c)
    c.set_defaults(func=cmd_camera)


def _version_arg(p: argparse.ArgumentParser) -> None:
    from ..bag.version import default_version, VERSIONS
    p.add_argument('--bag-version', type=int, choices=VERSIONS, default=default_version(),
                   help='rosbag2 format: 8 for Humble and Iron, 9 for Jazzy and later (default: '
                   'the newest the running distro, $ROS_DISTRO, reads; %(default)s here)')


def cmd_record(args: argparse.Namespace) -> int:
    """Record until Ctrl-C or SIGTERM, --duration or --max-messages."""
    from ..bag.record import record
    rec = record(args.topics, args.output, storage=args.storage, duration=args.duration,
                 max_messages=args.max_messages, version=args.bag_version)
    print(json.dumps({'bag': str(rec.path), 'messages': rec.counts}))
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    """Play a bag."""
    from ..bag.play import parse_remaps, play
    result = play(args.bag, rate=args.rate, loop=args.loop, clock=args.clock,
                  topics=args.topics, remap=parse_remaps(args.remap),
                  start_offset=args.start_offset,
                  wait_for_subscribers=args.wait_for_subscribers)
    print(json.dumps({'bag': str(args.bag), 'published': result.published,
                      'loops': result.loops}))
    return 0


def cmd_camera(args: argparse.Namespace) -> int:
    """Write the camera stream bag."""
    from ..bag.camera import write_camera_bag
    out = write_camera_bag(args.output, args.frames, args.storage, args.overwrite,
                           args.bag_version)
    print(json.dumps({'bag': str(out)}))
    return 0
