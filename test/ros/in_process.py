# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The node in the test's own process, in a context of its own, unconfigured."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import rclpy

from demand_layering_ros.ros.node import DemandLayeringNode


@contextmanager
def in_process_node(*ros_args: str) -> Iterator[DemandLayeringNode]:
    """A node made with ``--ros-args <ros_args> -p autostart:=false``; destroyed after."""
    context = rclpy.Context()
    rclpy.init(context=context, args=['--ros-args', *ros_args, '-p', 'autostart:=false'])
    node = DemandLayeringNode(context=context)
    try:
        yield node
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
