# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The ``demand_layering_node`` lifecycle node: an adapter between ROS and the frame runner.

The node turns messages into frames for ``realtime.FrameRunner`` and detections back into
messages; parameters are validated once (on-set callback) and the accepted values applied as a
settings snapshot and an engine request (post-set callback). The slow part of configure -
exporting and profiling the store - runs on a worker thread before the transition, so the
executor keeps answering services and publishing diagnostics meanwhile.
"""

from __future__ import annotations

from functools import partial
import resource
import signal
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
import rclpy
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy)
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.task import Future
from rcl_interfaces.msg import SetParametersResult
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray, LabelInfo

from . import conversion, diagnostics
from .params import (check, descriptor, detector_spec, engine_from, ENGINE, settings_from,
                     SPEC)
from ..engine.errors import EngineError
from ..perception.detections import Detection
from ..perception.detector import Detector
from ..perception.models import spec
from ..perception.prepare import Preparation
from ..realtime.auto_tune import AutoTuner
from ..realtime.runner import describe, FrameReport, FrameRunner
from ..realtime.settings import Settings

MiB = 2 ** 20
WARN_EVERY_S = 5.0  # a bad stream must not flood the log: each kind of warning this often
# REP-2003 sensor data: best effort, volatile, only the newest frame matters (users override
# these with the standard qos_overrides.<topic>.subscription.* parameters)
INPUT_QOS = dict(history=HistoryPolicy.KEEP_LAST, depth=1,
                 reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE)

Message = Image | CompressedImage


class DemandLayeringNode(LifecycleNode):
    """Object detection through the demand-layered executor."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('demand_layering_node', **kwargs)
        for name in SPEC:
            self.declare_parameter(name, SPEC[name][0], descriptor(name))
        self._values: dict[str, Any] = {n: self.get_parameter(n).value for n in SPEC}
        model = self._values['model']
        self.categories: list[str] = spec(model).categories() if not check('model', model) else []
        # values from the command line or a parameter file never passed the on-set callback
        self._start_error = next((r for n, v in self._values.items()
                                  if (r := check(n, v, self.categories))), None)
        self.runner: FrameRunner[Message] = FrameRunner(
            convert=self._to_rgb, publish=self._publish, clock_ns=self._now_ns, reporter=self,
            settings=Settings() if self._start_error else settings_from(self._values),
            debug=self._publish_debug, want_debug=self._debug_wanted,
            on_frame=self._publish_frame_stats, want_frames=self._frame_stats_wanted)
        self.detector: Detector | None = None
        self.error: str | None = None
        self._preparation: Preparation | None = None
        self._pending: tuple[dict[str, Any], set[str]] | None = None
        self._sub: Any = None
        self._active_since: float | None = None
        self._last_frame = 0.0
        # frames since activation or since the publishers changed: a new camera whose frames
        # never arrive is told apart from one that stopped
        self._received = 0
        self._input_publishers = 0
        self._input_publishers_since = 0.0
        self._hardware_id = str(self._values['device'])
        self._loggers: dict[str, Any] = {}
        self._arrays = conversion.DetectionArrayBuilder()  # used by the inference thread only
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # Humble's rclpy has no post-set callback: apply at the end of the on-set callback,
        # which is the last check a set passes (descriptors are checked before it)
        post_set = getattr(self, 'add_post_set_parameters_callback', None)
        self._apply_on_set = post_set is None
        if post_set is not None:
            post_set(self._on_post_set_parameters)
        self.det_pub = self.create_lifecycle_publisher(Detection2DArray, 'detections', 10)
        self.label_pub = self.create_lifecycle_publisher(LabelInfo, 'label_info', QoSProfile(
            depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.debug_pub = self.create_lifecycle_publisher(Image, '~/debug_image', 1)
        # per processed frame: what the engine ran and how long it took (built only while
        # someone subscribes); reliable, so a recorder gets every frame
        self.frame_stats_pub = self.create_lifecycle_publisher(DiagnosticArray, '~/frame_stats',
                                                               50)
        # diagnostics also while unconfigured or inactive: that is when they explain most
        self.diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(1.0, self._publish_diagnostics, clock=steady)
        self._wait_for_preparation_before_configure()
        if self._values['autostart']:
            # its own group: while it awaits the preparation, the default group (parameter
            # services, diagnostics, frames) must stay free to run
            self._autostart = self.create_timer(0.01, self._start, clock=steady,
                                                callback_group=ReentrantCallbackGroup())

    async def _start(self) -> None:
        self._autostart.cancel()
        await self._prepare()
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    # -- configure off the executor thread ----------------------------------------------------
    def _wait_for_preparation_before_configure(self) -> None:
        """Make the change_state service await the export and profile before configuring.

        rclpy's transition callbacks are synchronous: a minutes-long export inside on_configure
        would stop this single-threaded executor. The service callback is wrapped in a
        coroutine, in a callback group of its own, that first awaits the preparation (a worker
        thread) - the executor serves everything else meanwhile - and then runs rclpy's own
        handler, whose on_configure only adopts the prepared detector. The caller's response
        arrives when the work is done; until then the state reads 'unconfigured' and
        diagnostics show the progress.
        """
        service = getattr(self, '_service_change_state', None)
        if service is None:  # enable_communication_interface=False: no service to wrap
            return
        handler = service.callback
        # An awaiting coroutine keeps its callback group busy; in the default group it would
        # block the parameter and get_state services and the diagnostics timer. Reentrant: a
        # second request is answered too (a second configure is refused below).
        group = ReentrantCallbackGroup()
        service.callback_group = group
        group.add_entity(service)

        async def change_state(request: Any, response: Any) -> Any:
            t = request.transition
            if t.id == Transition.TRANSITION_CONFIGURE or t.label == 'configure':
                if self._preparation is not None and not self._preparation.done:
                    response.success = False  # a configure is already under way
                    return response
                await self._prepare()
            return handler(request, response)
        service.callback = change_state

    async def _prepare(self) -> None:
        """Run the preparation on its thread and wait for it without blocking the executor."""
        if self._start_error or self.detector is not None:
            return  # on_configure reports the error / is configured already
        if self._preparation is None:
            self._preparation = Preparation(detector_spec(self._values))
        done: Future[None] = Future(executor=self.executor)
        # a done callback makes the finishing thread wake the executor (it schedules a task)
        done.add_done_callback(lambda _f: None)
        self._preparation.start(on_done=lambda: done.set_result(None))
        await done

    # -- lifecycle ----------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Adopt the prepared detector (preparing it here when configure was called directly)."""
        try:
            if self._start_error:
                raise ValueError(self._start_error)
            prep = self._preparation or Preparation(detector_spec(self._values))
            detector = prep.result()  # waits here only when configure was called directly
            self._preparation = None
            try:  # parameters may have changed while the store was prepared
                detector.reconfigure(engine_from(self._values))
            except BaseException:
                detector.close()
                raise
        except Exception as err:  # noqa: BLE001 - every failure becomes a reason, not a crash
            self._preparation = None
            self.error = f'configure failed: {describe(err)}'
            self.get_logger().error(self.error)
            return TransitionCallbackReturn.FAILURE
        self.error = None
        self.detector = detector
        self._hardware_id = detector.hardware_id
        assert detector.profile is not None
        assert detector.calibrator is not None  # made with the profile
        self.runner.attach(detector, AutoTuner(detector.calibrator))
        s = detector.stats()
        self.get_logger().info(
            f'{detector.name}: {s["total_bytes"] / MiB:.1f} MiB of weights, {s["mode"]} within '
            f'{s["budget_bytes"] / MiB:.1f} MiB (direct I/O {"on" if s["direct_io"] else "off"})'
            f' from {detector.store.path} on {self._hardware_id}; profile: compute '
            f'{detector.profile.pipeline.compute_total_s * 1e3:.0f} ms')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Subscribe, start the runner, enable the publishers and latch the class map."""
        compressed = self._values['input_transport'] == 'compressed'
        self._sub = self.create_subscription(
            CompressedImage if compressed else Image,
            'image/compressed' if compressed else 'image', self._on_image,
            QoSProfile(**INPUT_QOS),
            qos_overriding_options=QoSOverridingOptions.with_default_policies())
        self.runner.start()
        self._received = 0
        self._active_since = time.monotonic()
        result = super().on_activate(state)
        header = conversion.Header()
        header.stamp = self.get_clock().now().to_msg()
        self.label_pub.publish(conversion.to_label_info(
            self.categories, self._values['score_threshold'], header))
        return result

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Stop inference and give the weight memory back."""
        self._stop_input()
        if self.detector is not None:
            self.detector.release()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Close the detector."""
        self.close()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """Same as cleanup."""
        return self.on_cleanup(state)

    def _stop_input(self) -> None:
        self._active_since = None
        if self._sub is not None:
            self.destroy_subscription(self._sub)
            self._sub = None
        self.runner.stop()

    def close(self) -> None:
        """Stop the runner (a running inference is cancelled) and close the detector."""
        self._stop_input()
        self.runner.detach()
        if self.detector is not None:
            self.detector.close()
            self.detector = None

    # -- frames -------------------------------------------------------------------------------
    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

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
        self.frame_stats_pub.publish(diagnostics.frame_stats(
            report, f'{self.get_fully_qualified_name()}: frame', self._hardware_id))

    # -- what the runner says -----------------------------------------------------------------
    def warn(self, kind: str, text: str) -> None:
        """A throttled warning; each kind has its own logger so one cannot hide another."""
        logger = self._loggers.get(kind)
        if logger is None:
            logger = self._loggers[kind] = self.get_logger().get_child(kind)
        logger.warning(text, throttle_duration_sec=WARN_EVERY_S)

    def info(self, text: str) -> None:
        """An information line."""
        self.get_logger().info(text)

    # -- parameters ---------------------------------------------------------------------------
    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Validate a change once; keep the accepted values for the post-set callback."""
        changes = {p.name: p.value for p in params if p.name in SPEC}
        if not changes:
            return SetParametersResult(successful=True)
        for name, value in changes.items():
            reason = check(name, value, self.categories)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        values = {**self._values, **changes}
        if self.detector is not None and set(changes) & {*ENGINE, 'auto_tune'}:
            try:
                self.detector.validate(engine_from(values))
            except (EngineError, ValueError) as err:
                return SetParametersResult(successful=False, reason=str(err))
        self._pending = (values, set(changes))
        if self._apply_on_set:
            self._on_post_set_parameters(params)
        return SetParametersResult(successful=True)

    def _on_post_set_parameters(self, params: list[Parameter]) -> None:
        """Apply what the on-set callback accepted: a new snapshot, and the engine request."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        values, changed = pending
        self._values = values
        det = self.detector
        reconfigure = None
        if det is not None and not values['auto_tune'] and changed & {*ENGINE, 'auto_tune'}:
            reconfigure = partial(det.reconfigure, engine_from(values))
        # one step: a plan auto_tune made just before it went off cannot replace this request
        applied = self.runner.update(settings_from(values), reconfigure)
        if applied is not None:
            self.get_logger().info(f'executor: {applied.mode} within '
                                   f'{applied.budget_bytes / MiB:.1f} MiB from the next frame')

    # -- diagnostics --------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        now_ns = self._now_ns()
        frames = self.runner.stats.snapshot(now_ns)
        engine: dict[str, Any] = {'rss_peak_bytes': resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss * 1024}
        det = self.detector
        if det is not None:
            engine.update(det.stats())
            engine['model'] = det.name
            predicted = self.runner.predicted_s
            engine['predicted_ms'] = predicted * 1e3 if predicted is not None else None
            # auto_tune aims the p90 at the deadline; the p99 says what a deadline needs for
            # fewer than 1% misses
            for q, v in self.runner.predicted_quantiles_s((0.9, 0.99)).items():
                engine[f'predicted_ms_p{round(q * 100)}'] = v * 1e3
            engine['auto_tune'] = bool(self._values['auto_tune'])
        stamp = self.runner.last_stamp
        if stamp is not None:
            engine['clock_offset_s'] = stamp.offset_ns / 1e9
        engine['deadline_reference'] = str(self.runner.settings.deadline_reference)
        active = self._active_since is not None
        topic = self._sub.topic_name if self._sub is not None else ''
        publishers = self.count_publishers(topic) if topic else 0
        now = time.monotonic()
        if publishers != self._input_publishers:
            self._input_publishers, self._input_publishers_since = publishers, now
            self._received = 0
        silent = (now - max(self._active_since, self._last_frame, self._input_publishers_since)
                  if self._active_since is not None else 0.0)
        prep = self._preparation
        st = diagnostics.status(diagnostics.Inputs(
            name=f'{self.get_fully_qualified_name()}: detector', hardware_id=self._hardware_id,
            frames=frames, engine=engine, health=self.runner.health.assess(), error=self.error,
            preparing=prep.progress if prep is not None and not prep.done else None,
            active=active, topic=topic, publishers=publishers, silent_s=silent,
            received=self._received))
        self.diag_pub.publish(diagnostics.array(self.get_clock().now().to_msg(), st))


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def main(args: list[str] | None = None) -> int:
    """Run the node until SIGINT or SIGTERM, then stop inference before leaving ROS."""
    # Our own signal handling: rclpy's would invalidate the context while an inference is
    # still running, and its publish would then fail with a traceback.
    try:
        from rclpy.signals import SignalHandlerOptions
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except ImportError:  # older rclpy without the option: keep its handlers
        rclpy.init(args=args)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    node = DemandLayeringNode()
    # Callbacks only hand frames over and answer services (inference has its own thread); a
    # multi-threaded executor busy-spins a core while a callback group is occupied.
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut this short
        node.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    main()
