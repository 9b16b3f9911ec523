# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The ``demand_layering_node`` lifecycle node: camera in, detections out, live memory tuning.

Receiving and inference run on separate threads joined by a one-frame slot (the newest frame
wins). Parameters are validated in the set-parameters callback and handed to the executor, which
applies them before the next frame.
"""

from __future__ import annotations

from pathlib import Path
import resource
import threading
import time
import traceback
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
import rclpy
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, qos_profile_sensor_data,
                       ReliabilityPolicy)
from rcl_interfaces.msg import SetParametersResult
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray, LabelInfo

from . import conversion, diagnostics
from .params import check, descriptor, SPEC
from ..engine import EngineError, InferenceAborted
from ..engine.profile import Profile
from ..engine.simulate import simulate
from ..perception import default_store_path, Detector, ensure_store, PerceptionError
from ..realtime import Deadline, FrameSlot, FrameStats
from ..realtime.auto_tune import AutoTuner

MiB = 2 ** 20
LIVE_ENGINE = ('memory_budget_mb', 'execution_mode', 'resident_units')
REPLAN_ON = ('auto_tune', 'deadline_ms', 'memory_budget_mb')


class DemandLayeringNode(LifecycleNode):
    """Object detection through the demand-layered executor."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('demand_layering_node', **kwargs)
        for name, (default, *_rest) in SPEC.items():
            self.declare_parameter(name, default, descriptor(name))
        self.declare_parameter('input_qos_reliability', 'best_effort', descriptor_text(
            'best_effort (sensor data) | reliable', read_only=True))
        self.declare_parameter('input_qos_depth', 1, descriptor_text('input queue depth',
                                                                     read_only=True))
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self.detector: Detector | None = None
        self.profile: Profile | None = None
        self.tuner: AutoTuner | None = None
        self._replan = threading.Event()
        self._predicted_s: float | None = None
        self.stats = FrameStats()
        self.slot: FrameSlot[tuple[Any, int]] = FrameSlot()
        self.error: str | None = None
        self._sub = None
        self._worker: threading.Thread | None = None
        self._running = threading.Event()
        self._active = False
        self._warn_clock = Clock(clock_type=ClockType.STEADY_TIME)
        self._last_warn = 0.0
        self.det_pub = self.create_publisher(Detection2DArray, 'detections', 10)
        self.label_pub = self.create_publisher(LabelInfo, 'label_info', QoSProfile(
            depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.debug_pub = self.create_publisher(Image, '~/debug_image', 1)
        self.diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_timer(1.0, self._publish_diagnostics,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        if self.get_parameter('autostart').value:
            self._autostart = self.create_timer(0.01, self._start,
                                                clock=Clock(clock_type=ClockType.STEADY_TIME))

    def _start(self) -> None:
        self._autostart.cancel()
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    # -- lifecycle ----------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Open (or export, in a child process) the store and build the executor."""
        p = self._param
        try:
            path = (Path(p('store_path')) if p('store_path')
                    else default_store_path(p('model'), p('weights')))
            ensure_store(p('model'), p('weights'), path)
            size = tuple(p('input_size'))
            self.detector = Detector(p('model'), path, device=p('device'),
                                     input_hw=size if any(size) else None,
                                     **self._engine_config())
            self.profile = self.detector.profile()
            self.tuner = AutoTuner(self.profile.pipeline)
            self._predict()
            if p('auto_tune'):
                self._replan.set()
        except (EngineError, PerceptionError, OSError) as err:
            self.error = f'configure failed: {err}'
            self.get_logger().error(self.error)
            return TransitionCallbackReturn.FAILURE
        self.error = None
        header = conversion.Header()
        header.stamp = self.get_clock().now().to_msg()
        self.label_pub.publish(conversion.to_label_info(
            self.detector.categories, p('score_threshold'), header))
        s = self.detector.executor.stats()
        self.get_logger().info(
            f'{p("model")}: {s["units"]} units, {s["total_bytes"] / MiB:.1f} MiB of weights, '
            f'{s["mode"]} within {s["budget_bytes"] / MiB:.1f} MiB '
            f'(direct I/O {"on" if s["direct_io"] else "off"}) from {path}; profile: compute '
            f'{self.profile.pipeline.compute_total_s * 1e3:.0f} ms, reads '
            f'{self.profile.read_bandwidth_bps / 1e6:.0f} MB/s')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Subscribe and start the inference thread."""
        compressed = self._param('input_transport') == 'compressed'
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self._param('input_qos_depth'),
                         reliability=ReliabilityPolicy.RELIABLE
                         if self._param('input_qos_reliability') == 'reliable'
                         else qos_profile_sensor_data.reliability)
        self._sub = self.create_subscription(
            CompressedImage if compressed else Image,
            'image/compressed' if compressed else 'image', self._on_image, qos)
        self.slot.reopen()
        self._running.set()
        self._worker = threading.Thread(target=self._infer_loop, name='dl-infer', daemon=True)
        self._worker.start()
        self._active = True
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Stop inference and give the weight memory back."""
        self._stop_worker()
        if self.detector is not None:
            self.detector.executor.release()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Close the executor."""
        self._stop_worker()
        if self.detector is not None:
            self.detector.close()
            self.detector = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """Same as cleanup."""
        return self.on_cleanup(state)

    def _stop_worker(self) -> None:
        self._active = False
        if self._sub is not None:
            self.destroy_subscription(self._sub)
            self._sub = None
        self._running.clear()
        self.slot.close()
        if self._worker is not None:
            self._worker.join(timeout=30)
            self._worker = None

    # -- frames -------------------------------------------------------------------------------
    def _on_image(self, msg: Image | CompressedImage) -> None:
        now = self.get_clock().now().nanoseconds
        self.stats.received(now)
        self.slot.put((msg, now))

    def _infer_loop(self) -> None:
        while self._running.is_set():
            item = self.slot.take(timeout=0.5)
            if item is None:
                continue
            msg, _received = item
            try:
                if self._replan.is_set() and self._param('auto_tune'):
                    self._auto_tune()
                self._process(msg)
            except Exception as err:  # noqa: BLE001 - the node keeps running, and says why
                self.stats.count('failed')
                self._warn(f'frame failed: {err}\n{traceback.format_exc(limit=3)}')

    def _process(self, msg: Image | CompressedImage) -> None:
        p = self._param
        det = self.detector
        assert det is not None
        stamp = rclpy.time.Time.from_msg(msg.header.stamp, clock_type=self.get_clock().clock_type)
        deadline = Deadline.after(stamp.nanoseconds, p('deadline_ms'))
        policy = p('deadline_policy')
        clock = self.get_clock()
        if deadline.should_skip(policy, clock.now().nanoseconds):
            self.stats.count('dropped_stale')
            return
        try:
            rgb = (conversion.compressed_to_rgb(msg) if isinstance(msg, CompressedImage)
                   else conversion.image_to_rgb(msg))
        except PerceptionError as err:
            self.stats.count('rejected')
            self._warn(f'rejected image (frame_id {msg.header.frame_id!r}): {err}')
            return
        t0 = time.perf_counter()
        try:
            detections = det.detect(
                rgb, score_threshold=p('score_threshold'), max_detections=p('max_detections'),
                class_filter=tuple(c for c in p('class_filter') if c),
                abort=deadline.abort_check(policy, lambda: clock.now().nanoseconds,
                                           self._remaining_ns))
        except InferenceAborted:
            self.stats.count('aborted')
            return
        infer_ms = (time.perf_counter() - t0) * 1e3
        if p('auto_tune') and self.tuner is not None and self.tuner.observe(infer_ms / 1e3):
            self._replan.set()
        self.det_pub.publish(conversion.to_detection_array(detections, msg.header))
        now = clock.now().nanoseconds
        if deadline.passed(now):
            self.stats.count('deadline_missed')
        self.stats.processed(now, (now - stamp.nanoseconds) / 1e6, infer_ms)
        if p('debug_image') and self.debug_pub.get_subscription_count() > 0:
            self.debug_pub.publish(conversion.rgb_to_image(conversion.draw(rgb, detections),
                                                           msg.header))

    def _warn(self, text: str) -> None:
        now = time.monotonic()
        if now - self._last_warn > 2.0:  # throttled: a bad stream must not flood the log
            self._last_warn = now
            self.get_logger().warning(text)

    # -- parameters ---------------------------------------------------------------------------
    def _param(self, name: str) -> Any:
        return self.get_parameter(name).value

    def _engine_config(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        values = {n: self._param(n) for n in LIVE_ENGINE}
        values.update(overrides or {})
        mode = values['execution_mode']
        budget = values['memory_budget_mb']
        return dict(mode='pipelined' if mode == 'auto' else mode,
                    budget_bytes=int(budget * MiB) if budget > 0 else None,
                    resident=[r for r in values['resident_units'] if r])

    def _resolved(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The executor configuration of the parameters; budget 0 = the mode's minimum."""
        assert self.detector is not None
        cfg = self._engine_config(overrides)
        if cfg['budget_bytes'] is None:
            ex = self.detector.executor
            cfg['budget_bytes'] = ex.min_budget(cfg['mode'],
                                                [ex.unit_index(r) for r in cfg['resident']])
        return cfg

    def _validate_parameters(self, params: list[Parameter]) -> SetParametersResult:
        changes = {}
        for prm in params:
            if prm.name not in SPEC:
                continue
            reason = check(prm.name, prm.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            changes[prm.name] = prm.value
        if self.detector is not None and any(n in changes for n in LIVE_ENGINE):
            try:
                self.detector.executor.validate(**self._resolved(changes))
            except (EngineError, ValueError) as err:
                return SetParametersResult(successful=False, reason=str(err))
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params: list[Parameter]) -> None:
        if self.detector is None:
            return
        names = {p.name for p in params}
        if self._param('auto_tune'):
            if names & set(REPLAN_ON):
                self._replan.set()  # planned on the inference thread, before the next frame
            return
        if names & (set(LIVE_ENGINE) | {'auto_tune'}):
            applied = self.detector.executor.reconfigure(**self._resolved())
            self._predict()
            self.get_logger().info(f'executor: {applied.mode} within '
                                   f'{applied.budget_bytes / MiB:.1f} MiB from the next frame')

    def _auto_tune(self) -> None:
        """Plan the least memory whose predicted delay meets the deadline, within the budget."""
        assert self.detector is not None and self.tuner is not None
        self._replan.clear()
        frames = self.stats.snapshot(self.get_clock().now().nanoseconds)
        deadline_s = self._param('deadline_ms') / 1e3
        # time outside inference (transport, conversion, waiting) comes off the deadline
        outside = max(0.0, frames.get('latency_ms_p50', 0.0) - frames.get('inference_ms_p50',
                                                                          0.0)) / 1e3
        cap_mb = self._param('memory_budget_mb')
        plan = self.tuner.plan(max(1e-3, deadline_s - (outside or 0.1 * deadline_s)),
                               int(cap_mb * MiB) if cap_mb > 0 else None)
        self.detector.executor.reconfigure(mode=plan.mode, budget_bytes=plan.budget_bytes,
                                           resident=plan.resident)
        self._predicted_s = self.tuner.predicted_s()
        st = self.tuner.state
        self.get_logger().info(
            f'auto_tune: {plan.mode} within {plan.budget_bytes / MiB:.1f} MiB, '
            f'{len(plan.resident)} resident units, predicted {self._predicted_s * 1e3:.0f} ms '
            f'for a target of {st.target_s * 1e3:.0f} ms'
            + ('' if st.met else ' (target not reachable within the budget: fastest allowed)'))

    def _predict(self) -> None:
        """The planner's prediction for the configuration now in force (for diagnostics)."""
        if self.profile is None or self.detector is None:
            return
        cfg = self.detector.executor.config
        try:
            self._predicted_s = simulate(self.profile.pipeline, cfg.mode, cfg.budget_bytes,
                                         cfg.resident, cfg.prefetch_depth).latency_s
        except ValueError:
            self._predicted_s = None

    def _remaining_ns(self) -> int:
        """Predicted compute still to come in the running inference (abort policy)."""
        if self.profile is None or self.detector is None:
            return 0
        ratio = self.tuner.state.ratio if self.tuner is not None else 1.0
        return int(self.profile.remaining_s(self.detector.executor.progress) * ratio * 1e9)

    # -- diagnostics --------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        frames = self.stats.snapshot(self.get_clock().now().nanoseconds)
        frames['superseded'] = float(self.slot.superseded)
        engine: dict[str, Any] = {'rss_peak_bytes': resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss * 1024}
        if self.detector is not None:
            s = self.detector.executor.stats()
            engine.update({k: s[k] for k in (
                'mode', 'budget_bytes', 'weight_bytes', 'weight_bytes_peak', 'min_budget_bytes',
                'total_bytes', 'read_bandwidth_bps', 'stall_seconds', 'direct_io',
                'on_demand_loads', 'resident_units')})
            engine['model'] = self.detector.name
            engine['predicted_ms'] = (self._predicted_s * 1e3 if self._predicted_s is not None
                                      else None)
            engine['auto_tune'] = bool(self._param('auto_tune'))
        st = diagnostics.status(f'{self.get_name()}: detector', frames, engine, self.error,
                                self._active)
        self.diag_pub.publish(diagnostics.array(self.get_clock().now().to_msg(), st))


def descriptor_text(text: str, read_only: bool = False) -> Any:
    """A plain descriptor for parameters outside SPEC."""
    from rcl_interfaces.msg import ParameterDescriptor
    return ParameterDescriptor(description=text, read_only=read_only)


def main(args: list[str] | None = None) -> int:
    """Run the node until shutdown."""
    rclpy.init(args=args)
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
        node._stop_worker()
        if node.detector is not None:
            node.detector.close()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    main()
