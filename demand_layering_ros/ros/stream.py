# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""One camera stream's ROS side: its input, its outputs and its frame runner.

The node has one of these per stream. The unnamed stream (no ``streams`` parameter) keeps the
single-stream names: ``image``, ``detections``, ``label_info``, ``~/debug_image``,
``~/frame_stats``. A named stream puts everything under its name: ``front/image``,
``front/detections``, ``front/label_info``, ``front/debug_image``, ``front/frame_stats``.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import LifecycleNode
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray, LabelInfo

from . import conversion, diagnostics
from ..perception.detections import Detection
from ..realtime.runner import FrameReport, FrameRunner, Reporter
from ..realtime.settings import Settings

# REP-2003 sensor data: best effort, volatile, only the newest frame matters (users override
# these with the standard qos_overrides.<topic>.subscription.* parameters)
INPUT_QOS = dict(history=HistoryPolicy.KEEP_LAST, depth=1,
                 reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE)

Message = Image | CompressedImage


class Prefixed:
    """A reporter that says which stream speaks (kinds stay apart per stream)."""

    def __init__(self, reporter: Reporter, stream: str) -> None:
        self._reporter = reporter
        self._stream = stream

    def warn(self, kind: str, text: str) -> None:
        """A throttled warning of this stream."""
        self._reporter.warn(f'{self._stream}.{kind}', f'[{self._stream}] {text}')

    def info(self, text: str) -> None:
        """An information line of this stream."""
        self._reporter.info(f'[{self._stream}] {text}')


class StreamIO:
    """A stream's subscription, lifecycle publishers, runner and input bookkeeping."""

    def __init__(self, node: LifecycleNode, name: str, settings: Settings, reporter: Reporter,
                 hardware_id: Callable[[], str]) -> None:
        self.node = node
        self.name = name
        self._hardware_id = hardware_id
        under = f'{name}/' if name else ''
        private = under if name else '~/'
        self.runner: FrameRunner[Message] = FrameRunner(
            convert=self._to_rgb, publish=self._publish, clock_ns=self._now_ns,
            reporter=Prefixed(reporter, name) if name else reporter, settings=settings,
            debug=self._publish_debug, want_debug=self._debug_wanted,
            on_frame=self._publish_frame_stats, want_frames=self._frame_stats_wanted)
        self.input_topic = f'{under}image'
        self.det_pub = node.create_lifecycle_publisher(Detection2DArray, f'{under}detections', 10)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.label_pub = node.create_lifecycle_publisher(LabelInfo, f'{under}label_info', latched)
        self.debug_pub = node.create_lifecycle_publisher(Image, f'{private}debug_image', 1)
        # per processed frame: what the engine ran and how long it took (built only while
        # someone subscribes); reliable, so a recorder gets every frame
        self.frame_stats_pub = node.create_lifecycle_publisher(
            DiagnosticArray, f'{private}frame_stats', 50)
        self._sub: Any = None
        self.active_since: float | None = None
        self._last_frame = 0.0
        # frames since activation or since the publishers changed: a new camera whose frames
        # never arrive is told apart from one that stopped
        self._received = 0
        self._input_publishers = 0
        self._input_publishers_since = 0.0
        self._arrays = conversion.DetectionArrayBuilder()  # used by the inference thread only

    # -- input --------------------------------------------------------------------------------
    def subscribe(self, compressed: bool) -> None:
        """Subscribe to the input and start the runner."""
        self._sub = self.node.create_subscription(
            CompressedImage if compressed else Image,
            f'{self.input_topic}/compressed' if compressed else self.input_topic,
            self._on_image, QoSProfile(**INPUT_QOS),
            qos_overriding_options=QoSOverridingOptions.with_default_policies())
        self.runner.start()
        self._received = 0
        self.active_since = time.monotonic()

    def unsubscribe(self) -> None:
        """Stop taking frames and stop the runner (an inference in progress is cancelled)."""
        self.active_since = None
        if self._sub is not None:
            self.node.destroy_subscription(self._sub)
            self._sub = None
        self.runner.stop()

    def publish_labels(self, categories: Sequence[str], score_threshold: float) -> None:
        """Latch the class map (on activate)."""
        header = conversion.Header()
        header.stamp = self.node.get_clock().now().to_msg()
        self.label_pub.publish(conversion.to_label_info(categories, score_threshold, header))

    # -- frames -------------------------------------------------------------------------------
    def _now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def _on_image(self, msg: Message) -> None:
        self._last_frame = time.monotonic()
        self._received += 1
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        self.runner.offer(msg, stamp, self._now_ns())

    @staticmethod
    def _to_rgb(msg: Message, s: Settings) -> Any:
        return conversion.to_rgb(msg, s.max_input_pixels)

    def _publish(self, msg: Message, detections: list[Detection]) -> None:
        self.det_pub.publish(self._arrays.build(detections, msg.header))

    def _debug_wanted(self) -> bool:
        return self.debug_pub.get_subscription_count() > 0

    def _publish_debug(self, msg: Message, rgb: Any, detections: list[Detection]) -> None:
        self.debug_pub.publish(conversion.rgb_to_image(conversion.draw(rgb, detections),
                                                       msg.header))

    def _frame_stats_wanted(self) -> bool:
        return self.frame_stats_pub.get_subscription_count() > 0

    def _publish_frame_stats(self, report: FrameReport) -> None:
        self.frame_stats_pub.publish(diagnostics.frame_stats(report, self._label('frame'),
                                                             self._hardware_id()))

    # -- diagnostics --------------------------------------------------------------------------
    def _label(self, kind: str) -> str:
        fqn = self.node.get_fully_qualified_name()
        return f'{fqn}: {self.name}: {kind}' if self.name else f'{fqn}: {kind}'

    @property
    def status_name(self) -> str:
        """This stream's diagnostics status name."""
        return self._label('detector')

    def inputs(self, engine: dict[str, Any], error: str | None, preparing: str | None
               ) -> diagnostics.Inputs:
        """What diagnostics say about this stream: its frames, input and health."""
        topic = self._sub.topic_name if self._sub is not None else ''
        publishers = self.node.count_publishers(topic) if topic else 0
        now = time.monotonic()
        if publishers != self._input_publishers:
            self._input_publishers, self._input_publishers_since = publishers, now
            self._received = 0
        silent = (now - max(self.active_since, self._last_frame, self._input_publishers_since)
                  if self.active_since is not None else 0.0)
        return diagnostics.Inputs(
            name=self.status_name, hardware_id=self._hardware_id(),
            frames=self.runner.stats.snapshot(self._now_ns()), engine=engine,
            health=self.runner.health.assess(), error=error, preparing=preparing,
            active=self.active_since is not None, topic=topic, publishers=publishers,
            silent_s=silent, received=self._received)
