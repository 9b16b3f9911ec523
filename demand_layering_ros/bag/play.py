# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Play a rosbag2 bag: its messages with their recorded timing, optionally driving /clock.

Messages are published serialized, as recorded. Publishers are reliable (keep-last 100), which
both best-effort subscribers (camera consumers) and reliable ones (recorders) accept, and keep
the durability the topic was recorded with (latched topics stay latched). With ``clock``, /clock
follows the bag's time (scaled by ``rate``) for nodes running with use_sim_time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from pathlib import Path
import signal
import sys
import threading
import time
from typing import Iterable

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import Reader
from rosbags.rosbag2.errors import ReaderError

from .types import message_class

PROGRESS_EVERY_S = 5.0
CLOCK_HZ = 100.0
LINGER_S = 1.0   # publishers stay this long after the last message
MATCH_GRACE_S = 1.0  # after a subscriber appears, until the match is complete on its side


@dataclass
class Playback:
    """What was played."""

    published: dict[str, int] = field(default_factory=dict)
    loops: int = 0


def first_line(err: BaseException) -> str:
    """The first line of an error's message (rclpy's and yaml's run over several)."""
    lines = str(err).strip().splitlines()
    return lines[0].rstrip(':') if lines else type(err).__name__


def topic_name(name: str, what: str) -> str:
    """``name`` made absolute (a leading slash) and validated; ValueError naming ``what``."""
    from rclpy.exceptions import InvalidTopicNameException
    from rclpy.validate_full_topic_name import validate_full_topic_name
    if not name.strip('/'):
        raise ValueError(f'{what} is empty: a topic name is needed')
    full = '/' + name.lstrip('/')
    try:
        validate_full_topic_name(full)
    except InvalidTopicNameException as err:
        raise ValueError(f'{what} {name!r} is not a valid topic name: '
                         f'{first_line(err).removeprefix("Invalid topic name: ")}') from None
    return full


def parse_remaps(remaps: Iterable[str]) -> dict[str, str]:
    """'FROM:=TO' pairs of valid topic names (leading slashes added), else ValueError."""
    out = {}
    for r in remaps:
        if ':=' not in r:
            raise ValueError(f'remap {r!r}: expected FROM:=TO')
        a, b = r.split(':=', 1)
        out[topic_name(a, f'remap {r!r}: FROM')] = topic_name(b, f'remap {r!r}: TO')
    return out


def open_bag(bag: Path) -> Reader:
    """An open reader of ``bag``; ValueError in one line if it is missing, not a bag or damaged."""
    if not bag.exists():
        raise FileNotFoundError(f'bag {bag} does not exist')
    try:
        reader = Reader(bag)
        reader.open()
    except FileNotFoundError:
        raise ValueError(f'{bag} is not a rosbag2 bag: no metadata.yaml (a recording killed '
                         'before it closed leaves one only in its .partial folder)') from None
    except (ReaderError, OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f'cannot read bag {bag}: {first_line(err)}') from None
    return reader


def check_rate_and_offset(rate: float, start_offset: float) -> None:
    """Raise ValueError unless ``rate`` is positive and finite, ``start_offset`` 0 or more."""
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f'rate {rate}: must be a positive finite number (1 plays at the '
                         'recorded speed, 0.5 at half)')
    if not (math.isfinite(start_offset) and start_offset >= 0):
        raise ValueError(f'start offset {start_offset}: must be 0 or more seconds into the bag')


def publisher_qos(connection: object) -> QoSProfile:
    """Reliable keep-last 100, transient local if the topic was recorded so."""
    offered = getattr(connection.ext, 'offered_qos_profiles', None) or []  # type: ignore
    latched = bool(offered) and getattr(offered[0].durability, 'value',
                                        offered[0].durability) == 1  # 1 = transient local
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched
                      else DurabilityPolicy.VOLATILE)


class Player:
    """Publishes a bag's messages from a node, paced by the wall clock."""

    def __init__(self, node: Node, bag: Path, *, rate: float = 1.0, loop: bool = False,
                 clock: bool = False, topics: Iterable[str] | None = None,
                 remap: dict[str, str] | None = None, start_offset: float = 0.0,
                 progress: bool = True, wait_for_subscribers: float = 3.0) -> None:
        check_rate_and_offset(rate, start_offset)
        self.node, self.bag, self.rate, self.loop = node, Path(bag), rate, loop
        self.start_offset = start_offset
        self.progress = progress
        self.wait_for_subscribers = wait_for_subscribers
        self.stop = threading.Event()
        self.result = Playback()
        wanted = {'/' + t.lstrip('/') for t in topics} if topics else None
        remap = remap or {}
        self._reader = open_bag(self.bag)
        try:
            self._select(wanted)
        except ValueError:
            self._reader.close()
            raise
        self._pubs = {}
        for c in self._conns:
            name = remap.get(c.topic, c.topic)
            if name not in self._pubs:
                self._pubs[name] = node.create_publisher(message_class(c.msgtype), name,
                                                         publisher_qos(c))
            self.result.published.setdefault(name, 0)
        self._name = {c.id: remap.get(c.topic, c.topic) for c in self._conns}
        self._clock_pub = None
        if clock:
            from rosgraph_msgs.msg import Clock
            self._clock_pub = node.create_publisher(Clock, '/clock', 10)
        self._bag_now: int | None = None
        self._clock_lock = threading.Lock()
        self._clock_last = 0

    def _select(self, wanted: set[str] | None) -> None:
        """The connections to play; ValueError if a pass would publish nothing."""
        self._conns = [c for c in self._reader.connections if wanted is None or c.topic in wanted]
        if wanted and not self._conns:
            raise ValueError(f'none of {sorted(wanted)} is in {self.bag} '
                             f'({sorted({c.topic for c in self._reader.connections})})')
        if self.message_count == 0:
            raise ValueError(f'nothing to play: {self.bag} has no messages'
                             + (f' on {sorted(wanted)}' if wanted else ''))
        if self._first_ns() >= self._reader.end_time:
            raise ValueError(f'nothing to play: start offset {self.start_offset} s is past the '
                             f'end of {self.bag}, {self._span()}')

    def _first_ns(self) -> int:
        """The bag time a pass starts at (its start, plus the offset)."""
        return self._reader.start_time + int(self.start_offset * 1e9)

    def _span(self) -> str:
        """The bag's duration, in words."""
        # rosbags' end_time is one past the last message
        span = (self._reader.end_time - 1 - self._reader.start_time) / 1e9
        return f'whose messages span {span:.3f} s'

    @property
    def message_count(self) -> int:
        """Messages per pass over the selected topics."""
        return sum(c.msgcount for c in self._conns)

    def run(self) -> Playback:
        """Play (blocking) until the end, or forever with loop, or until ``stop`` is set."""
        end = time.monotonic() + self.wait_for_subscribers
        while time.monotonic() < end and not self.stop.is_set() and any(
                p.get_subscription_count() == 0 for p in self._pubs.values()):
            time.sleep(0.05)  # messages published before discovery would be lost
        if self.wait_for_subscribers > 0:
            self.stop.wait(MATCH_GRACE_S)  # the writer sees the reader before the reader sees it
        clock_thread = None
        if self._clock_pub is not None:
            clock_thread = threading.Thread(target=self._clock_loop, daemon=True)
            clock_thread.start()
        try:
            while not self.stop.is_set():
                try:
                    published = self._play_once()
                except ReaderError as err:
                    raise ValueError(f'cannot read bag {self.bag}: {first_line(err)}') from None
                if self.stop.is_set():
                    break
                if not published:  # a loop would spin over nothing
                    raise ValueError(f'nothing to play: no message on the selected topics from '
                                     f'{self.start_offset} s into {self.bag}, {self._span()}')
                self.result.loops += 1
                if not self.loop:
                    break
        finally:
            stopped = self.stop.is_set()
            self.stop.set()
            if clock_thread is not None:
                clock_thread.join(timeout=1)
            self._reader.close()
            # stopped (a signal): leave promptly, whatever a slow subscriber has not taken yet
            self.flush(1.0 if stopped else 10.0)
        return self.result

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until reliable subscribers acknowledged everything (a busy one may lag)."""
        from rclpy.duration import Duration
        return all(p.wait_for_all_acked(Duration(seconds=timeout_s))
                   for p in self._pubs.values())

    def _play_once(self) -> int:
        """One pass; the number of messages published."""
        start_ns = self._first_ns()
        wall0 = time.monotonic()
        with self._clock_lock:
            # a new pass (loop) starts the clock again, like ros2 bag play; the clock thread
            # must not carry the last pass's time into this one (it would hold the clock at
            # the end of the bag for the whole pass)
            self._clock_last = 0
            self._bag_now = None
            self._wall0, self._start_ns = wall0, start_ns
        last_report = wall0
        total = self.message_count
        done = 0
        for conn, ts, data in self._reader.messages(connections=self._conns, start=start_ns):
            due = wall0 + (ts - start_ns) / 1e9 / self.rate
            while not self.stop.is_set():
                wait = due - time.monotonic()
                if wait <= 0:
                    break
                time.sleep(min(wait, 0.05))
            if self.stop.is_set():
                return done
            with self._clock_lock:
                self._bag_now = ts
                self._publish_clock_locked(ts)
            self._pubs[self._name[conn.id]].publish(bytes(data))
            self.result.published[self._name[conn.id]] += 1
            done += 1
            now = time.monotonic()
            if self.progress and now - last_report >= PROGRESS_EVERY_S:
                last_report = now
                print(f'[play] {done}/{total} messages, bag time '
                      f'{(ts - self._reader.start_time) / 1e9:.1f} s', file=sys.stderr,
                      flush=True)
        return done

    def _publish_clock_locked(self, ns: int) -> None:
        """Publish /clock at ``ns`` unless that steps back (two threads publish it)."""
        if self._clock_pub is None or ns < self._clock_last:
            return
        from rosgraph_msgs.msg import Clock
        self._clock_last = ns
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(ns, 1_000_000_000)
        self._clock_pub.publish(msg)

    def _clock_loop(self) -> None:
        while not self.stop.wait(1.0 / CLOCK_HZ):
            # computed and published under the lock: a new pass cannot start in between
            with self._clock_lock:
                if self._bag_now is None:
                    continue
                # bag time advances with the wall clock between messages
                ns = self._start_ns + int((time.monotonic() - self._wall0) * self.rate * 1e9)
                self._publish_clock_locked(max(ns, self._bag_now))


def play(bag: Path, **kwargs: object) -> Playback:
    """Play a bag from a node of its own until done, or until SIGINT or SIGTERM stops it.

    Publishing needs no executor: discovery and delivery run in the middleware's threads.
    """
    import rclpy
    check_rate_and_offset(float(kwargs.get('rate', 1.0)),  # type: ignore[arg-type]
                          float(kwargs.get('start_offset', 0.0)))  # type: ignore[arg-type]
    # Our own signal handling: rclpy's would invalidate the context at once, and the
    # publishers' flush would then fail with a traceback (as in the node's main).
    try:
        from rclpy.signals import SignalHandlerOptions
        # args=[]: this command's own arguments (--remap A:=B) are no ROS arguments
        rclpy.init(args=[], signal_handler_options=SignalHandlerOptions.NO)
    except ImportError:  # older rclpy without the option: keep its handlers
        rclpy.init(args=[])
    player: Player | None = None
    signalled = threading.Event()

    def stop(_signum: int, _frame: object) -> None:
        signalled.set()
        if player is None:
            raise KeyboardInterrupt
        player.stop.set()  # the pass and the waits check it every 50 ms

    handlers = {}
    if threading.current_thread() is threading.main_thread():
        handlers = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    node = None
    try:
        node = Node('demand_layering_player')
        player = Player(node, bag, **kwargs)  # type: ignore[arg-type]
        try:
            return player.run()
        except KeyboardInterrupt:
            player.stop.set()
            return player.result
    finally:
        if player is not None and not signalled.is_set() and any(
                player.result.published.values()):
            # a subscriber's middleware may drop samples it acknowledged but its application
            # has not taken yet when their writer disappears (a busy subscriber takes them late)
            time.sleep(LINGER_S)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
