# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The frame loop without ROS: slot, deadline, abort predicate, auto-tune, accounting.

The node hands frames in (``offer``) and gets detections out (``publish``); everything between
- which frame runs, whether it is still worth running, when to cancel it, re-planning the
engine for the deadline, and where the time went - happens here, on the runner's own threads,
with one settings snapshot per frame. The debug image is drawn on a thread of its own so that
drawing never delays the next inference; auto-tune plans on one of its own (``tuning``) and
the plan is applied between two frames. Each processed frame can be reported as a
:class:`FrameReport` (the node publishes them as ``~/frame_stats``).
"""

from __future__ import annotations

from dataclasses import dataclass
import math
import threading
import time
from typing import Any, Callable, Generic, Protocol, Sequence, TYPE_CHECKING, TypeVar

import numpy as np

from .arrivals import StampGaps
from .deadline import Deadline, DeadlinePolicy, DeadlineReference
from .frame_slot import FrameSlot
from .health import Health
from .settings import Settings
from .stamps import check_stamp, StampCheck
from .stats import FrameStats
from .tuning import TuningLoop
from ..engine.errors import InferenceAborted
from ..perception.detections import Detection
from ..perception.errors import ImageError

if TYPE_CHECKING:
    from ..engine.planner import Plan
    from ..perception.detector import EngineFigures
    from .auto_tune import AutoTuner

M = TypeVar('M')


class DetectorPort(Protocol):
    """What the runner needs of a detector (perception.Detector provides it)."""

    @property
    def predicted_s(self) -> float | None: ...

    def detect(self, rgb: np.ndarray, *, score_threshold: float, max_detections: int,
               class_filter: Sequence[str], abort: Callable[[], bool] | None,
               deadline: float | None) -> list[Detection]: ...

    def remaining_s(self) -> float: ...

    def apply_plan(self, plan: 'Plan') -> Any: ...

    def figures(self) -> 'EngineFigures': ...


class Reporter(Protocol):
    """Where the runner says things; the adapter throttles warnings per ``kind``."""

    def warn(self, kind: str, text: str) -> None: ...

    def info(self, text: str) -> None: ...


@dataclass(frozen=True)
class Frame(Generic[M]):
    """A received message and when it arrived."""

    message: M
    stamp_ns: int      # header stamp on the node clock; 0 = unset
    arrival_ns: int    # node clock at receipt (the deadline reference for 'arrival')
    arrival_s: float   # the runner's steady clock (perf_counter) at receipt: waiting time


@dataclass(frozen=True)
class FrameReport:
    """One processed frame: what per-frame telemetry carries."""

    stamp_ns: int            # the frame's header stamp (node clock)
    inference_ms: float      # the detector's time (wall clock)
    latency_ms: float        # deadline reference to published (node clock; NaN: unknown)
    deadline_ms: float
    missed: bool             # published after its deadline
    predicted_ms: float | None  # the calibrated prediction in force (auto_tune: its p50)
    mode: str
    budget_bytes: int
    weight_bytes: int        # weight memory held after the frame
    resident_units: int
    auto_tune: bool


def describe(err: BaseException) -> str:
    """What failed, first: the exception type and the first line of its message.

    Long messages (torch's, a child's traceback) end in advice or in the innermost frame; the
    first line is the one that says what went wrong.
    """
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return f'{type(err).__name__}: {lines[0][:300]}' if lines else type(err).__name__


class FrameRunner(Generic[M]):
    """Runs the newest frame through the detector on its own thread."""

    def __init__(self, *, convert: Callable[[M, Settings], np.ndarray],
                 publish: Callable[[M, list[Detection]], None], clock_ns: Callable[[], int],
                 reporter: Reporter, settings: Settings = Settings(),
                 debug: Callable[[M, np.ndarray, list[Detection]], None] | None = None,
                 want_debug: Callable[[], bool] | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 on_frame: Callable[[FrameReport], None] | None = None,
                 want_frames: Callable[[], bool] | None = None,
                 perf: Callable[[], float] = time.perf_counter) -> None:
        self._convert = convert
        self._publish = publish
        self._clock_ns = clock_ns
        self._reporter = reporter
        self._debug = debug
        self._want_debug = want_debug
        self._on_frame = on_frame
        self._perf = perf  # the steady clock stages are timed with (seconds)
        self._want_frames = want_frames
        self._settings = settings
        self.stats = FrameStats()
        self.health = Health(clock=monotonic)
        self._gaps = StampGaps()
        self.slot: FrameSlot[Frame[M]] = FrameSlot()
        self._debug_slot: FrameSlot[tuple[M, np.ndarray, list[Detection]]] = FrameSlot()
        self.detector: DetectorPort | None = None
        self.tuning = TuningLoop(reporter.info, self._apply_plan)
        self.last_stamp: StampCheck | None = None
        # the node's reconfiguration and a plan's application never interleave (a plan made
        # just before auto_tune went off must not replace the parameters' configuration)
        self._engine_lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- configuration ------------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        """The snapshot the next frame uses."""
        return self._settings

    def update(self, settings: Settings, reconfigure: Callable[[], Any] | None = None) -> Any:
        """Replace the snapshot (one reference assignment: a frame sees all of it or none).

        ``reconfigure`` (the engine request of the same change) runs with the swap, never
        interleaved with a plan's application; its result is returned.
        """
        with self._engine_lock:
            old, self._settings = self._settings, settings
            result = reconfigure() if reconfigure is not None else None
        if not settings.auto_tune:
            self.tuning.forget()
        elif (not old.auto_tune or settings.deadline_ms != old.deadline_ms
              or settings.budget_cap_bytes != old.budget_cap_bytes
              or settings.auto_tune_quantile != old.auto_tune_quantile):
            self.tuning.request()
        return result

    def attach(self, detector: DetectorPort, tuner: 'AutoTuner | None') -> None:
        """Serve frames with ``detector`` (at configure); auto-tune with ``tuner``."""
        self.detector = detector
        self.tuning.attach(tuner)
        if self._settings.auto_tune:
            self.tuning.request()

    def detach(self) -> None:
        """Forget the detector (at cleanup)."""
        self.detector = None
        self.tuning.attach(None)

    @property
    def tuner(self) -> 'AutoTuner | None':
        """The tuning loop's AutoTuner (None before configure)."""
        return self.tuning.tuner

    @property
    def predicted_s(self) -> float | None:
        """The calibrated prediction for the engine configuration in force.

        With auto_tune and the tuner's plan in force: the tuner's median, which also carries
        what the model still misses (measured / predicted over recent frames).
        """
        tuner = self.tuning.tuner
        in_force = self.tuning.in_force
        if (self._settings.auto_tune and tuner is not None and in_force is not None
                and in_force is tuner.state.plan):
            return tuner.predicted_s()
        return self.detector.predicted_s if self.detector is not None else None

    def predicted_quantiles_s(self, qs: Sequence[float]) -> dict[float, float]:
        """With auto_tune and its plan in force: the plan's delay at quantiles of recent frames.

        Empty otherwise (without the tuner's recent frames there is no spread to speak of).
        """
        tuner, in_force = self.tuning.tuner, self.tuning.in_force
        if not (self._settings.auto_tune and tuner is not None and in_force is not None
                and in_force is tuner.state.plan):
            return {}
        return {q: v for q in qs if (v := tuner.predicted_s(q)) is not None}

    # -- threads ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the inference and debug-image threads."""
        self._stopping.clear()
        self._stopped(self.slot.reopen())
        self._debug_slot.reopen()
        self._gaps.restart()   # the camera's frames while stopped were not lost, only unheard
        self._threads = [threading.Thread(target=self._loop, name='dl-infer', daemon=True)]
        if self._debug is not None:
            self._threads.append(threading.Thread(target=self._debug_loop, name='dl-debug',
                                                  daemon=True))
        for t in self._threads:
            t.start()
        self.tuning.start(lambda: self._settings)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the threads; an inference in progress is cancelled between two units.

        The frame in flight and the one waiting are counted ``stopped`` (neither is run).
        """
        self._stopping.set()
        self._stopped(self.slot.close())
        self._debug_slot.close()
        self.tuning.stop(timeout)
        for t in self._threads:
            t.join(timeout=timeout)
        self._threads = []

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return bool(self._threads) and not self._stopping.is_set()

    def offer(self, message: M, stamp_ns: int, arrival_ns: int) -> None:
        """A frame arrived (receiving thread): it replaces a frame still waiting."""
        self.stats.received(arrival_ns)
        self.health.note('received')
        lost = self._gaps.lost(stamp_ns)
        if lost:
            self.stats.count('lost', lost)
            self.health.note('lost', f'the camera at {1e9 / self._gaps.period_ns:.3g} Hz by '
                             'its stamps', lost)
        if self.slot.put(Frame(message, stamp_ns, arrival_ns, self._perf())):
            self.stats.count('superseded')

    def _loop(self) -> None:
        while not self._stopping.is_set():
            frame = self.slot.take(timeout=0.5)
            if frame is not None:
                self.process(frame)   # (counted 'stopped' if the runner stopped meanwhile)

    def _debug_loop(self) -> None:
        assert self._debug is not None
        while not self._stopping.is_set():
            item = self._debug_slot.take(timeout=0.5)
            if item is None or self._stopping.is_set():
                continue
            try:
                self._debug(*item)
            except Exception as err:  # noqa: BLE001 - a debug image must never stop detection
                self._reporter.warn('debug', f'debug image failed: {describe(err)}')

    # -- one frame ----------------------------------------------------------------------------
    def process(self, frame: Frame[M]) -> str:
        """Run one frame; returns its outcome ('processed', 'dropped_stale', ...)."""
        s = self._settings  # the one snapshot this frame uses
        try:
            return self._process(frame, s)
        except Exception as err:  # noqa: BLE001 - the node keeps running, and says why
            if self._stopping.is_set():
                return self._outcome('stopped')  # the frame is abandoned, not failed
            what = describe(err)
            self.stats.count('failed')
            self.health.note('failed', what)
            self._reporter.warn('failed', f'frame failed: {what}')
            return 'failed'

    def _process(self, frame: Frame[M], s: Settings) -> str:
        det = self.detector
        if det is None or self._stopping.is_set():
            return self._outcome('stopped')
        self.tuning.before_frame(s)
        stamp = self._check_stamp(frame, s)
        by_arrival = s.deadline_reference == DeadlineReference.ARRIVAL
        reference = frame.arrival_ns if by_arrival else frame.stamp_ns
        deadline = Deadline.after(reference, s.deadline_ms)
        # a frame that arrived while the node clock read 0 has no time to judge a deadline on:
        # it runs to the end, and is never dropped, aborted or counted late
        judged = not stamp.no_clock
        policy = s.deadline_policy if judged else DeadlinePolicy.COMPLETE
        taken = self._perf()
        taken_ns = self._clock_ns()
        if deadline.should_skip(policy, taken_ns):
            return self._outcome('dropped_stale')
        try:
            rgb = self._convert(frame.message, s)
        except ImageError as err:
            self._reporter.warn('rejected', f'rejected image: {err}')
            return self._outcome('rejected', str(err))
        converted = self._perf()
        deadline_abort = deadline.abort_check(policy, self._clock_ns, self._remaining_ns)

        def abort() -> bool:
            return self._stopping.is_set() or (deadline_abort is not None and deadline_abort())
        # the executor and the disk order waiting work by time.monotonic(): streams sharing
        # them are on this node's clock, so the nearer deadline stays nearer after converting
        # (also when a replayed clock runs at another rate)
        due = time.monotonic() + (deadline.deadline_ns - self._clock_ns()) / 1e9
        try:
            detections = det.detect(rgb, score_threshold=s.score_threshold,
                                    max_detections=s.max_detections,
                                    class_filter=s.class_filter, abort=abort, deadline=due)
        except InferenceAborted:
            return self._outcome('stopped' if self._stopping.is_set() else 'aborted')
        inferred = self._perf()
        self._publish(frame.message, detections)
        published = self._perf()
        now = self._clock_ns()
        missed = judged and deadline.passed(now)
        if missed:
            self._outcome('deadline_missed')
        stages = {'queue': (taken - frame.arrival_s) * 1e3,
                  'convert': (converted - taken) * 1e3,
                  'inference': (inferred - converted) * 1e3,
                  'publish': (published - inferred) * 1e3,
                  'convert_publish': (converted - taken + published - inferred) * 1e3}
        # (and not across a clock set back meanwhile: a bag that loops with /clock)
        if stamp.measurable(by_arrival) and now >= reference:
            stages['latency'] = (now - reference) / 1e6
        # NaN: no latency (the tuner leaves it out; ~/frame_stats shows it as unknown)
        latency_ms = stages.get('latency', math.nan)
        if not stamp.problem:
            stages['transport'] = stamp.offset_ns / 1e6
        self.stats.processed(now, stages)
        self.health.note('processed')
        fig = det.figures()
        self.tuning.after_frame(s, (fig.mode, fig.budget_bytes, fig.resident),
                                inferred - converted, latency_ms,
                                (now - taken_ns) / 1e9, published - taken)
        if self._on_frame is not None and (self._want_frames is None or self._want_frames()):
            self._report(frame, s, fig, stages, latency_ms, missed)
        if s.debug_image and self._want_debug is not None and self._want_debug():
            self._debug_slot.put((frame.message, rgb, detections))
        return 'processed'

    def _outcome(self, outcome: str, detail: str | None = None) -> str:
        self.stats.count(outcome)
        self.health.note(outcome, detail)
        return outcome

    def _stopped(self, frame: Frame[M] | None) -> None:
        """Count a frame the slot gave back because the runner stopped (None: there was none)."""
        if frame is not None:
            self._outcome('stopped')

    def _check_stamp(self, frame: Frame[M], s: Settings) -> StampCheck:
        stamp = check_stamp(frame.stamp_ns, frame.arrival_ns)
        self.last_stamp = stamp
        # counted from the arrival a far stamp harms no deadline; an unset one still leaves
        # consumers unable to match results to images; without a clock nothing can be timed
        if stamp.no_clock:
            kind = 'clock'
        elif stamp.unset:
            kind = 'unset_stamp'
        elif stamp.far and s.deadline_reference == DeadlineReference.STAMP:
            kind = 'clock'
        else:
            return stamp
        self.health.note('clock', stamp.describe())
        self._reporter.warn(kind, stamp.describe())
        return stamp

    def _remaining_ns(self) -> int:
        """Predicted compute still to come in the running inference (for the abort policy)."""
        if self.detector is None:
            return 0
        ratio = self.tuner.state.ratio if self.tuner is not None else 1.0
        return int(self.detector.remaining_s() * ratio * 1e9)

    def _apply_plan(self, plan: 'Plan') -> bool:
        """Hand a plan to the engine (from its next inference) unless auto_tune went off."""
        with self._engine_lock:
            det = self.detector
            if det is None or not self._settings.auto_tune:
                return False
            det.apply_plan(plan)
            return True

    def _report(self, frame: Frame[M], s: Settings, fig: 'EngineFigures',
                stages: dict[str, float], latency_ms: float, missed: bool) -> None:
        assert self._on_frame is not None
        predicted = self.predicted_s
        self._on_frame(FrameReport(
            stamp_ns=frame.stamp_ns, inference_ms=stages['inference'],
            latency_ms=latency_ms, deadline_ms=s.deadline_ms, missed=missed,
            predicted_ms=predicted * 1e3 if predicted is not None else None, mode=fig.mode,
            budget_bytes=fig.budget_bytes, weight_bytes=fig.weight_bytes,
            resident_units=fig.resident_units, auto_tune=s.auto_tune))
