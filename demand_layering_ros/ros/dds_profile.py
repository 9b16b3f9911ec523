# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The package's Fast DDS profile for camera-sized frames, and the variable that applies it.

``config/fastdds_large_frames.xml`` explains the cause (best-effort frames larger than the
publisher's shared-memory segment are lost). Fast DDS reads the file named by an environment
variable when a process creates its first participant: Fast DDS 3 (Kilted) reads
FASTDDS_DEFAULT_PROFILES_FILE and warns about the old name, Fast DDS 2 (Humble, Iron, Jazzy)
reads only FASTRTPS_DEFAULT_PROFILES_FILE.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import MutableMapping

FILENAME = 'fastdds_large_frames.xml'
VARIABLES = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')
FAST_DDS_2_DISTROS = ('humble', 'iron', 'jazzy')


def variable(distro: str | None = None) -> str:
    """The variable the distro's Fast DDS reads (ROS_DISTRO; unset: these Kilted wheels)."""
    distro = (distro if distro is not None else os.environ.get('ROS_DISTRO', '')).lower()
    return VARIABLES[1] if distro in FAST_DDS_2_DISTROS else VARIABLES[0]


def profile_path() -> Path:
    """The installed profile (share/demand_layering_ros/config), or the source tree's."""
    try:
        from ament_index_python.packages import get_package_share_directory
        installed = Path(get_package_share_directory('demand_layering_ros')) / 'config' / FILENAME
        if installed.is_file():
            return installed
    except (ImportError, LookupError, ValueError):
        pass
    return Path(__file__).resolve().parents[2] / 'config' / FILENAME


def apply(env: MutableMapping[str, str] = os.environ) -> str | None:
    """Point Fast DDS at the profile unless the user chose a profile; returns the path set.

    Call before the process (or the child given ``env``) creates its first participant.
    """
    if any(env.get(v) for v in VARIABLES):
        return None
    path = str(profile_path())
    env[variable(env.get('ROS_DISTRO'))] = path
    return path
