# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Which rosbag2 format version to write: the newest that the target distro's ``ros2 bag`` reads.

rosbag2 metadata version 9 (Jazzy, Kilted) writes ``offered_qos_profiles`` as a YAML list;
Humble (which writes version 5) and Iron (7) read that field as a string and fail. They read
version 8 (keys they do not know are ignored). rosbags writes versions 8 and 9.
"""

from __future__ import annotations

import os

VERSIONS = (8, 9)
NEWEST_READ = {'humble': 8, 'iron': 8, 'jazzy': 9, 'kilted': 9, 'rolling': 9}


def default_version(distro: str | None = None) -> int:
    """The version for ``distro`` (default: $ROS_DISTRO; unset or unknown: the newest, 9)."""
    distro = (distro if distro is not None else os.environ.get('ROS_DISTRO', '')).lower()
    return NEWEST_READ.get(distro, max(VERSIONS))


def check_version(version: int) -> int:
    """``version`` if rosbags can write it; ValueError naming the choices otherwise."""
    if version not in VERSIONS:
        raise ValueError(f'bag version {version}: one of {", ".join(map(str, VERSIONS))} '
                         '(8 for Humble and Iron, 9 for Jazzy and later)')
    return version
