# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Message types for bags: the rosbags typestore (Kilted + vision_msgs) and rclpy classes."""

from __future__ import annotations

from functools import lru_cache
import importlib
from pathlib import Path
from typing import Any

from rosbags.typesys import get_types_from_msg, get_typestore, Stores
from rosbags.typesys.store import Typestore

# what this package records and replays (the typestore knows more)
TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage',
         'vision_msgs/msg/Detection2DArray', 'vision_msgs/msg/LabelInfo',
         'diagnostic_msgs/msg/DiagnosticArray', 'rosgraph_msgs/msg/Clock')


@lru_cache(maxsize=1)
def typestore() -> Typestore:
    """ROS 2 Kilted's message types plus vision_msgs, read from the installed package's .msg.

    The definitions come from the vision_msgs that rclpy uses here (the real package on a robot),
    so the type hashes written into bags are that package's.
    """
    store = get_typestore(Stores.ROS2_KILTED)
    if 'vision_msgs/msg/Detection2DArray' not in store.fielddefs:
        from ament_index_python.packages import get_package_share_directory
        msg_dir = Path(get_package_share_directory('vision_msgs')) / 'msg'
        types: dict[str, Any] = {}
        for f in sorted(msg_dir.glob('*.msg')):
            types.update(get_types_from_msg(f.read_text(), f'vision_msgs/msg/{f.stem}'))
        store.register(types)
    return store


def message_class(msgtype: str) -> Any:
    """The rclpy message class of 'pkg/msg/Name'; ValueError if it is not installed."""
    try:
        pkg, kind, name = msgtype.split('/')
        return getattr(importlib.import_module(f'{pkg}.{kind}'), name)
    except (ValueError, ImportError, AttributeError) as err:
        raise ValueError(f'message type {msgtype!r} is not available here ({err})') from err


def type_name(cls: Any) -> str:
    """'pkg/msg/Name' of an rclpy message class."""
    module = cls.__module__.split('.')
    return f'{module[0]}/{module[1]}/{cls.__name__}'
