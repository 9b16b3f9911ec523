# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The ``demand_layering_node`` lifecycle node: an adapter between ROS and the frame runner.

The node turns messages into frames for ``realtime.FrameRunner`` and detections back into
messages; parameters are validated once (on-set callback) and the accepted values applied as a
settings snapshot and an engine request (post-set callback). The slow part of configure -
exporting and profiling the store - runs on a worker thread before the transition, so the
executor keeps answering services and publishing diagnostics meanwhile.

With a ``streams`` parameter the node serves several cameras (``ros.stream``, one runner
each) from engines grouped by detector and planned jointly under one budget
(``ros.shared_engines``); without it, one unnamed stream exactly as before.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
import resource
import signal
import traceback
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
import rclpy
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.task import Future
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult

from . import diagnostics, streams as st
from .params import (check, descriptor, detector_spec, engine_from, ENGINE, loosely,
                     settings_from, SPEC)
from .shared_engines import SharedEngines
from .stream import Message, StreamIO
from ..engine import Disk, IOSettings
from ..engine.errors import EngineError
from ..perception.detector import Detector
from ..perception.models import spec
from ..perception.prepare import Preparation
from ..realtime.auto_tune import AutoTuner
from ..realtime.runner import describe, FrameRunner
from ..realtime.settings import Settings

MiB = 2 ** 20
WARN_EVERY_S = 5.0  # a bad stream must not flood the log: each kind of warning this often


def as_type(p: Parameter, expected: int, default: Any) -> Parameter:
    """``p`` with its value as the type ``expected`` where it means one (``params.loosely``)."""
    value = loosely(expected, p.type_.value, p.value, default)
    return p if value is p.value else Parameter(p.name, value=value)


class DemandLayeringNode(LifecycleNode):
    """Object detection through the demand-layered executor."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('demand_layering_node', **kwargs)
        # values from the command line or a parameter file that do not fit their parameter
        refused = [self._declare(name, SPEC[name][0], descriptor(name)) for name in SPEC]
        values: dict[str, Any] = {n: self.get_parameter(n).value for n in SPEC}
        self.stream_names = () if check('streams', values['streams']) else st.names(
            values['streams'])
        for s in self.stream_names:
            for name in st.PER_STREAM:
                pname = st.parameter(s, name)
                refused.append(self._declare(pname, st.default(s, name, values),
                                             st.descriptor(s, name)))
                values[pname] = self.get_parameter(pname).value
        self._values = values
        # per stream ('' = the single unnamed stream): the model's classes, for class_filter
        self._categories = {s: self._classes(st.view(s, values)['model'])
                            for s in self.stream_names or ('',)}
        self.categories: list[str] = self._categories[(self.stream_names or ('',))[0]]
        # values from the command line or a parameter file never passed the on-set callback
        self._start_error = next((r for r in refused if r), None) or next(
            (r for n, v in values.items() if (r := self._check(n, v))), None)
        self._engines: list[st.Engine] = []
        if not self._start_error:
            try:
                self._engines = st.engines(self.stream_names, values)
            except ValueError as err:
                self._start_error = str(err)
        self.detector: Detector | None = None        # the single stream's
        self.shared: SharedEngines | None = None     # with streams: every engine's
        self.error: str | None = None
        self._preparation: Preparation | None = None
        self._pending: tuple[dict[str, Any], set[str], Any] | None = None
        self._hardware_id = str(values['device'])
        self._loggers: dict[str, Any] = {}
        # Humble's rclpy has no pre-set callback: there a value of another type is refused
        pre_set = getattr(self, 'add_pre_set_parameters_callback', None)
        if pre_set is not None:
            pre_set(self._loosely)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # Humble's rclpy has no post-set callback: apply at the end of the on-set callback,
        # which is the last check a set passes (descriptors are checked before it)
        post_set = getattr(self, 'add_post_set_parameters_callback', None)
        self._apply_on_set = post_set is None
        if post_set is not None:
            post_set(self._on_post_set_parameters)
        self.streams = {s: StreamIO(
            self, s, Settings() if self._start_error else settings_from(st.view(s, values)),
            self, lambda: self._hardware_id) for s in self.stream_names or ('',)}
        first = next(iter(self.streams.values()))
        # the single stream's (with streams: the first's), as before streams existed
        self.runner: FrameRunner[Message] = first.runner
        self.det_pub, self.label_pub = first.det_pub, first.label_pub
        self.debug_pub, self.frame_stats_pub = first.debug_pub, first.frame_stats_pub
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

    def _declare(self, name: str, default: Any, desc: ParameterDescriptor) -> str | None:
        """Declare ``name``; why its value from the command line or a file was refused, if so.

        A value given as another type is taken where it has one meaning (``params.loosely``). A
        value still refused (its type, its range) leaves the parameter at its default and the
        node up: configure then fails with the reason, as for any other bad start value.
        """
        given = self._parameter_overrides.get(name)
        if given is not None:
            expected = desc.type or Parameter.Type.from_parameter_value(default).value
            self._parameter_overrides[name] = as_type(given, expected, default)
        try:
            self.declare_parameter(name, default, desc)
            return None
        except (InvalidParameterTypeException, InvalidParameterValueException) as err:
            self.declare_parameter(name, default, desc, ignore_override=True)
            # rclpy's text ends with ": <name>"; the reason is what precedes it
            reason = str(err).removesuffix(f': {name}')
            return f'{name} from the command line or a parameter file: {reason}'

    def _loosely(self, params: list[Parameter]) -> list[Parameter]:
        """Pre-set callback: values of another type, as their parameter's (``params.loosely``).

        An empty list is left as it is: ``ros2 param delete`` sends one, and is refused.
        """
        return [as_type(p, self.describe_parameter(p.name).type, None)
                if self.has_parameter(p.name) and p.type_ != Parameter.Type.NOT_SET else p
                for p in params]

    @staticmethod
    def _classes(model: str) -> list[str]:
        return spec(model).categories() if not check('model', model) else []

    def _check(self, name: str, value: Any) -> str | None:
        """Why ``value`` is refused for parameter ``name`` (a stream's or the node's)."""
        stream, base = st.split(name, self.stream_names)
        reason = check(base, value, self._categories.get(stream, ()))
        return f'stream {stream}: {reason}' if reason and stream else reason

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
        if self._start_error or self._configured:
            return  # on_configure reports the error / is configured already
        if self._preparation is None:
            self._preparation = self._new_preparation()
        done: Future[None] = Future(executor=self.executor)
        # a done callback makes the finishing thread wake the executor (it schedules a task)
        done.add_done_callback(lambda _f: None)
        self._preparation.start(on_done=lambda: done.set_result(None))
        await done

    @property
    def _configured(self) -> bool:
        return self.detector is not None or self.shared is not None

    def _new_preparation(self) -> Preparation:
        if not self.stream_names:
            return Preparation(detector_spec(self._values))
        # one disk for every engine: its reads are served earliest deadline first
        return Preparation(*(e.spec for e in self._engines),
                           disk=Disk(IOSettings().queue_depth))

    # -- lifecycle ----------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Adopt the prepared detector (preparing it here when configure was called directly)."""
        try:
            if self._start_error:
                raise ValueError(self._start_error)
            prep = self._preparation or self._new_preparation()
            detectors = prep.results()  # waits here only when configure was called directly
            self._preparation = None
            try:  # parameters may have changed while the store was prepared
                if self.stream_names:
                    self._adopt_shared(detectors)
                else:
                    detectors[0].reconfigure(engine_from(self._values))
            except BaseException:
                for detector in detectors:
                    detector.close()
                raise
        except Exception as err:  # noqa: BLE001 - every failure becomes a reason, not a crash
            self._preparation = None
            self.shared = None
            self.error = f'configure failed: {describe(err)}'
            self.get_logger().error(self.error)
            return TransitionCallbackReturn.FAILURE
        self.error = None
        if self.stream_names:
            return TransitionCallbackReturn.SUCCESS
        detector = detectors[0]
        self.detector = detector
        self._hardware_id = detector.hardware_id
        assert detector.profile is not None
        assert detector.calibrator is not None  # made with the profile
        self.runner.attach(detector, AutoTuner(detector.calibrator))
        self._log_engine(detector)
        return TransitionCallbackReturn.SUCCESS

    def _adopt_shared(self, detectors: list[Detector]) -> None:
        """Engines for the streams, and the joint plan they start with."""
        shared = SharedEngines(self._engines, detectors,
                               {s: io.runner for s, io in self.streams.items()}, self.info,
                               lambda: bool(self._values['engines_take_turns']))
        shared.apply(*shared.plan(self._values))
        self.shared = shared
        self._hardware_id = ', '.join(sorted({d.hardware_id for d in detectors}))
        for e, detector in zip(self._engines, detectors):
            self._log_engine(detector, f'streams {", ".join(e.streams)}: ')

    def _log_engine(self, detector: Detector, what: str = '') -> None:
        assert detector.profile is not None
        s = detector.stats()
        self.get_logger().info(
            f'{what}{detector.name}: {s["total_bytes"] / MiB:.1f} MiB of weights, {s["mode"]} '
            f'within {s["budget_bytes"] / MiB:.1f} MiB (direct I/O '
            f'{"on" if s["direct_io"] else "off"}) from {detector.store.path} on '
            f'{detector.hardware_id}; profile: compute '
            f'{detector.profile.pipeline.compute_total_s * 1e3:.0f} ms')

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Subscribe, start the runners, enable the publishers and latch the class maps."""
        for s, io in self.streams.items():
            io.subscribe(st.view(s, self._values)['input_transport'] == 'compressed')
        result = super().on_activate(state)
        for s, io in self.streams.items():
            io.publish_labels(self._categories[s], st.view(s, self._values)['score_threshold'])
        return result

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Stop inference and give the weight memory back."""
        self._stop_input()
        if self.detector is not None:
            self.detector.release()
        if self.shared is not None:
            self.shared.release()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Close the detector."""
        self.close()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """Same as cleanup."""
        return self.on_cleanup(state)

    def _stop_input(self) -> None:
        for io in self.streams.values():
            io.unsubscribe()

    def close(self) -> None:
        """Stop the runners (a running inference is cancelled) and close the detectors."""
        self._stop_input()
        if self.shared is not None:
            self.shared.close()
            self.shared = None
        self.runner.detach()
        if self.detector is not None:
            self.detector.close()
            self.detector = None

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

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
        changes = {p.name: p.value for p in params if p.name in self._values}
        if not changes:
            return SetParametersResult(successful=True)
        for name, value in changes.items():
            reason = self._check(name, value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        values = {**self._values, **changes}
        plan = None
        try:
            if self.detector is not None and set(changes) & {*ENGINE, 'auto_tune'}:
                self._validate_engine(values)
            if self.shared is not None and self.shared.affects(list(changes), values):
                # checked here, where a budget that cannot hold the streams is refused; the
                # plan is handed over with the new values (with auto_tune: once searched)
                plan = self.shared.accept(values)
        except (EngineError, ValueError) as err:
            return SetParametersResult(successful=False, reason=str(err))
        self._pending = (values, set(changes), plan)
        if self._apply_on_set:
            self._on_post_set_parameters(params)
        return SetParametersResult(successful=True)

    def _validate_engine(self, values: dict[str, Any]) -> None:
        """Check the engine request (EngineError: why not).

        With auto_tune, execution_mode and resident_units are the planner's and
        memory_budget_mb is its cap: a cap that holds the least any mode runs in (the
        sequential minimum) is one the planner can plan within.
        """
        assert self.detector is not None
        if not values['auto_tune']:
            self.detector.validate(engine_from(values))
        elif values['memory_budget_mb'] > 0:
            try:
                self.detector.validate(replace(engine_from(values), mode='sequential',
                                               resident=()))
            except EngineError as err:
                raise EngineError(f'auto_tune cannot plan within memory_budget_mb: {err}, '
                                  'the least any execution mode holds') from err

    def _on_post_set_parameters(self, params: list[Parameter]) -> None:
        """Apply what the on-set callback accepted: new snapshots, and the engine requests."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        values, changed, plan = pending
        self._values = values
        if self.stream_names:
            for s, io in self.streams.items():
                if any(st.split(n, self.stream_names)[0] in ('', s) for n in changed):
                    io.runner.update(settings_from(st.view(s, values)))
            if plan is not None:
                plan()
            return
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
    def _engine_values(self, runner: FrameRunner[Message], det: Detector | None,
                       engine: str | None = None) -> dict[str, Any]:
        """A stream's engine figures as its status shows them."""
        values: dict[str, Any] = {'rss_peak_bytes': resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss * 1024}
        if det is not None:
            values.update(det.stats())
            values['model'] = det.name
            if engine is not None:
                values['engine'] = engine
            predicted = runner.predicted_s
            values['predicted_ms'] = predicted * 1e3 if predicted is not None else None
            # auto_tune aims the p90 at the deadline; the p99 says what a deadline needs for
            # fewer than 1% misses
            for q, v in runner.predicted_quantiles_s((0.9, 0.99)).items():
                values[f'predicted_ms_p{round(q * 100)}'] = v * 1e3
            values['auto_tune'] = bool(self._values['auto_tune'])
            values['auto_tune_quantile'] = float(self._values['auto_tune_quantile'])
        stamp = runner.last_stamp
        if stamp is not None and not stamp.no_clock:   # no offset from a clock at 0
            values['clock_offset_s'] = stamp.offset_ns / 1e9
        values['deadline_reference'] = str(runner.settings.deadline_reference)
        return values

    def _publish_diagnostics(self) -> None:
        """Publish every status; a failure is logged and the node keeps running.

        An exception leaving a timer callback would end ``executor.spin()``, so the node.
        """
        try:
            self._diagnose()
        except Exception:  # noqa: BLE001 - diagnostics must not end the node
            self.get_logger().get_child('diagnostics').error(
                'diagnostics failed; the node keeps running:\n' + traceback.format_exc(),
                throttle_duration_sec=WARN_EVERY_S)

    def _diagnose(self) -> None:
        prep = self._preparation
        preparing = prep.progress if prep is not None and not prep.done else None
        shared = self.shared
        statuses = []
        for s, io in self.streams.items():
            if shared is not None:
                e = shared.engine_of[s]
                engine = self._engine_values(io.runner, shared.detectors[e], e)
            else:
                engine = self._engine_values(io.runner, self.detector)
            statuses.append(diagnostics.status(io.inputs(engine, self.error, preparing)))
        if self.stream_names:
            statuses.append(self._budget_status())
            if shared is not None:
                shared.replan_if_due(self._values)
        self.diag_pub.publish(diagnostics.array(self.get_clock().now().to_msg(), *statuses))

    def _budget_status(self) -> Any:
        """The status of the budget the streams share."""
        shared = self.shared
        budget = self._values['memory_budget_mb']
        inputs = diagnostics.BudgetInputs(
            name=f'{self.get_fully_qualified_name()}: memory budget',
            hardware_id=self._hardware_id,
            budget_bytes=int(budget * MiB) if budget > 0 else None,
            auto_tune=bool(self._values['auto_tune']), error=self.error,
            active=shared is not None and any(io.active_since is not None
                                              for io in self.streams.values()))
        if shared is not None:
            inputs.engines = shared.engine_figures()
            inputs.streams = shared.stream_counters()
            inputs.disk_read_bps = shared.disk_read_bps()
            inputs.unsatisfied = shared.unsatisfied(self._values)
            inputs.waiting = shared.budget.waiting
            inputs.planning = shared.planning
        return diagnostics.budget_status(inputs)


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
