# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Record topics into a rosbag2 bag (MCAP by default, sqlite3 on request).

Messages are taken serialized (CDR) from the subscription and written as they are. The bag is
written inside ``.<out>.partial/`` and moved to ``<out>`` once closed with its metadata.yaml, so
``<out>`` is never a half-written bag: an interrupted recording still closes cleanly (Ctrl-C), and
a killed one leaves only the ``.partial`` folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from pathlib import Path
import shutil
import signal
import threading
import time
from typing import Any

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness, QosReliability,
                                QosTime)
from rosbags.rosbag2 import StoragePlugin, Writer

from .play import topic_name
from .types import message_class, typestore
from .version import check_version, default_version

STORAGE = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}


def staging(out: Path) -> tuple[Path, Path]:
    """(hidden folder, bag path inside it) where a bag for ``out`` is written until closed."""
    root = out.parent / f'.{out.name}.partial'
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    return root, root / out.name


def publish_bag(root: Path, out: Path) -> None:
    """Move a closed bag from its staging folder to ``out``."""
    (root / out.name).rename(out)
    root.rmdir()


def check_limits(duration: float | None, max_messages: int | None) -> None:
    """Raise ValueError unless each limit given is positive (no limit: None, not 0)."""
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise ValueError(f'duration {duration}: must be a positive number of seconds (leave it '
                         'out to record until Ctrl-C)')
    if max_messages is not None and max_messages <= 0:
        raise ValueError(f'max messages {max_messages}: must be 1 or more (leave it out for no '
                         'limit)')


@dataclass
class Recording:
    """What a recorder wrote."""

    path: Path
    counts: dict[str, int] = field(default_factory=dict)


def subscriber_qos(node: Node, topic: str) -> QoSProfile:
    """A QoS that matches the topic's publishers: best effort if any is, transient local if all.

    Like ``ros2 bag record``: a reliable subscription would not match a sensor-data publisher,
    and latched topics (label_info) must be received from before the recording started.
    """
    infos = node.get_publishers_info_by_topic(topic)
    best_effort = any(i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for i in infos)
    latched = bool(infos) and all(
        i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                      reliability=ReliabilityPolicy.BEST_EFFORT if best_effort
                      else ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched
                      else DurabilityPolicy.VOLATILE)


def bag_qos(qos: QoSProfile) -> Qos:
    """The rosbag2 record of a QoS (what ``play`` offers again)."""
    never = QosTime(sec=0x7FFFFFFF, nsec=0xFFFFFFFF)
    return Qos(history=QosHistory.KEEP_LAST, depth=qos.depth,
               reliability=QosReliability.BEST_EFFORT
               if qos.reliability == ReliabilityPolicy.BEST_EFFORT else QosReliability.RELIABLE,
               durability=QosDurability.TRANSIENT_LOCAL
               if qos.durability == DurabilityPolicy.TRANSIENT_LOCAL else QosDurability.VOLATILE,
               deadline=never, lifespan=never, liveliness=QosLiveliness.AUTOMATIC,
               liveliness_lease_duration=never, avoid_ros_namespace_conventions=False)


class Recorder:
    """Subscribes to topics as they appear and writes every message to one bag."""

    def __init__(self, node: Node, topics: list[str], out: Path, storage: str = 'mcap',
                 max_messages: int | None = None, version: int | None = None) -> None:
        if storage not in STORAGE:
            raise ValueError(f'storage {storage!r}: one of {", ".join(STORAGE)}')
        check_limits(None, max_messages)
        self.topics = [topic_name(t, 'topic') for t in topics]
        self.node = node
        self.out = Path(out)
        if self.out.exists():
            raise FileExistsError(f'{self.out} exists')
        self._staging, self.partial = staging(self.out)
        self.max_messages = max_messages
        self.recording = Recording(self.out, {t: 0 for t in self.topics})
        self.done = threading.Event()
        self._lock = threading.Lock()
        version = check_version(version if version is not None else default_version())
        self._writer = Writer(self.partial, version=version,  # type: ignore[arg-type]
                              storage_plugin=STORAGE[storage])
        self._writer.open()
        self._connections: dict[str, Any] = {}
        self._subs: list[Any] = []
        self._timer = node.create_timer(0.2, self._discover)
        self._discover()

    def _discover(self) -> None:
        known = dict(self.node.get_topic_names_and_types())
        for topic in self.topics:
            if topic in self._connections or topic not in known:
                continue
            msgtype = known[topic][0]
            cls = message_class(msgtype)
            qos = subscriber_qos(self.node, topic)
            with self._lock:
                self._connections[topic] = self._writer.add_connection(
                    topic, msgtype, typestore=typestore(), offered_qos_profiles=[bag_qos(qos)])
            self._subs.append(self.node.create_subscription(
                cls, topic, lambda data, t=topic: self._write(t, data), qos, raw=True))
            self.node.get_logger().info(f'recording {topic} ({msgtype})')

    def _write(self, topic: str, data: bytes) -> None:
        with self._lock:
            if self.done.is_set():
                return
            self._writer.write(self._connections[topic], self.node.get_clock().now().nanoseconds,
                               data)
            self.recording.counts[topic] += 1
            if self.max_messages and sum(self.recording.counts.values()) >= self.max_messages:
                self.done.set()

    def close(self) -> Recording:
        """Stop, write metadata.yaml and move the bag to its final name."""
        with self._lock:
            self.done.set()
            self._timer.cancel()
            for sub in self._subs:
                self.node.destroy_subscription(sub)
            self._subs.clear()
            self._writer.close()
        publish_bag(self._staging, self.out)
        return self.recording


def record(topics: list[str], out: Path, *, storage: str = 'mcap', duration: float | None = None,
           max_messages: int | None = None, node_name: str = 'demand_layering_recorder',
           version: int | None = None) -> Recording:
    """Record until SIGINT (Ctrl-C) or SIGTERM, ``duration`` seconds or ``max_messages`` messages.

    A limit must be positive; None is no limit.
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    check_limits(duration, max_messages)
    for t in topics:  # refused before anything starts
        topic_name(t, 'topic')
    # Our own signal handling, as in ``play``: both signals close the bag (`kill` too).
    try:
        from rclpy.signals import SignalHandlerOptions
        # args=[]: this command's own arguments are no ROS arguments
        rclpy.init(args=[], signal_handler_options=SignalHandlerOptions.NO)
    except ImportError:  # older rclpy without the option: keep its handlers
        rclpy.init(args=[])
    node = Node(node_name)
    try:
        rec = Recorder(node, topics, out, storage, max_messages, version)
    except BaseException:
        node.destroy_node()
        rclpy.try_shutdown()
        raise
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        handlers = {s: signal.signal(s, lambda *_: rec.done.set())
                    for s in (signal.SIGINT, signal.SIGTERM)}
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    end = time.monotonic() + duration if duration is not None else None
    try:
        while not rec.done.is_set() and (end is None or time.monotonic() < end):
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        result = rec.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return result
