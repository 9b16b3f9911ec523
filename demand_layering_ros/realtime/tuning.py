# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Auto-tune orchestration: plans made off the inference thread, applied between two frames.

Planning a deadline takes from milliseconds to a few seconds on large models (a bisection of
budgets, each a greedy search over resident sets). Done on the inference thread it would stall
frames for that long - exactly when a new deadline asks for speed. Here a thread of its own
plans while the engine keeps the configuration in force; the finished plan is handed to the
engine, which applies it before its next inference (never during one). Where the search runs
depends on whether frames wait for it. While they run over the target (a re-plan for speed, a
tighter deadline, no frames yet) the thread searches itself, at once: beside inference it takes
the GIL and the cores, and on 2 cores the frame beside a cold plan of the demo model ran
189-267 ms slower, but that frame is late anyway. While they meet it (memory to give back, a
looser deadline) the planning process searches (``engine.plan_worker``, at a lower priority):
the plan takes longer and the frames beside it run nearly as fast as the others.

The tuner (``auto_tune.AutoTuner``) judges only frames that ran with its plan's configuration,
so a frame of the old plan is never held against the new one. Frames of any other configuration
(before auto_tune was turned on, or of the plan on its way out) still teach it how far the
model is off, each configuration's first frame left out: it also reads the resident units in.

The deadline is on the node clock, inference is timed on the wall clock: when the node clock
runs at another rate (a bag replayed slower with use_sim_time) the target is converted with the
rate measured over recent frames. Time outside inference (transport, waiting in the slot,
conversion, publishing) comes off the deadline at the quantile the tuner aims inference at
(``Settings.auto_tune_quantile``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import partial
import threading
import time
from typing import Any, Callable, Sequence, TYPE_CHECKING, TypeVar

import numpy as np

from ..engine.plan_worker import PlanWorker, PlanWorkerError
from .auto_tune import frames_for, TOLERANCE
from .settings import Settings

if TYPE_CHECKING:
    from ..engine.planner import Plan
    from .auto_tune import AutoTuner

_T = TypeVar('_T')

MiB = 2 ** 20
WINDOW = 30          # frames whose outside time and clock rate the target is computed from
#                      (the outside time over more where the quantile needs them)
OUTSIDE_KEPT = frames_for(0.999)  # outside times kept: for the highest auto_tune_quantile
NO_FRAMES_SHARE = 0.1  # before any frame: this share of the deadline is kept for the rest
BEHIND = 3           # frames whose median inference time says whether frames miss the target


ConfigKey = tuple[str, int, frozenset[int]]   # mode, budget bytes, resident units


@dataclass(frozen=True)
class PlanEvent:
    """One plan made (for the log and for tests)."""

    plan: 'Plan'
    target_s: float        # inference time (wall clock) the plan aims at
    predicted_s: float     # the tuner's p50 for it
    met: bool
    planning_s: float      # how long planning took (off the inference thread)


class TuningLoop:
    """Re-plans on request on its own thread and hands each plan to the engine.

    ``apply(plan)`` gives a plan to the engine (applied before its next inference) unless
    auto_tune went off meanwhile, and says whether it did.
    """

    def __init__(self, info: Callable[[str], None], apply: Callable[['Plan'], bool]) -> None:
        self._info = info
        self._apply = apply
        self.tuner: AutoTuner | None = None
        self.in_force: Plan | None = None        # the tuner's plan the engine runs (next)
        self.events: deque[PlanEvent] = deque(maxlen=100)
        self._wanted = threading.Event()           # a re-plan is due
        self._tuner_lock = threading.Lock()        # the tuner's state: planning vs judging
        self._plan_lock = threading.Lock()         # tuner and in_force change together
        self._outside_ms: deque[float] = deque(maxlen=OUTSIDE_KEPT)
        self._clock: deque[tuple[float, float]] = deque(maxlen=WINDOW)  # (node s, wall s)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._last_ran: ConfigKey | None = None    # the configuration of the last frame
        self._worker: PlanWorker | None = None     # the planning process (threaded)
        self._recent_s: deque[float] = deque(maxlen=BEHIND)   # the last frames' inference

    # -- lifecycle ----------------------------------------------------------------------------
    def attach(self, tuner: 'AutoTuner | None') -> None:
        """Tune with ``tuner`` (None: no auto-tune)."""
        with self._plan_lock:
            self.tuner, self.in_force = tuner, None
        self._last_ran = None

    def start(self, settings: Callable[[], Settings]) -> None:
        """Plan on a thread of its own from now on (``settings``: the snapshot in force).

        Searches that no frame waits for go to a planning process (``engine.plan_worker``).
        """
        self._stopping.clear()
        self._worker = PlanWorker()
        self._thread = threading.Thread(target=self._loop, args=(settings,), name='dl-plan',
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the planning thread (a plan under way finishes first)."""
        self._stopping.set()
        self._wanted.set()  # wake it
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        self._thread = None
        self._wanted.clear()
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    @property
    def threaded(self) -> bool:
        """True while plans are made on the planning thread."""
        return self._thread is not None

    # -- requests -----------------------------------------------------------------------------
    def request(self) -> None:
        """Ask for a re-plan (a new deadline or cap, auto_tune turned on, drift)."""
        self._wanted.set()

    def forget(self) -> None:
        """auto_tune went off: no plan of the tuner's is in force any more."""
        with self._plan_lock:
            self.in_force = None
        self._wanted.clear()

    @property
    def wanted(self) -> bool:
        """A re-plan is due (requested, not yet started)."""
        return self._wanted.is_set()

    # -- the inference thread -----------------------------------------------------------------
    def before_frame(self, s: Settings) -> None:
        """Without the planning thread (a runner driven frame by frame), plan here if due."""
        if self._thread is None and s.auto_tune and self._wanted.is_set():
            self.plan_now(s)

    def after_frame(self, s: Settings, ran: ConfigKey | None, inference_s: float,
                    latency_ms: float, node_s: float, wall_s: float) -> None:
        """A processed frame: its times, and the tuner's judgement if it ran the tuner's plan.

        ``ran``: the configuration the frame ran with. ``node_s`` and ``wall_s``: how long the
        frame took on the node clock and on the wall clock (their ratio over recent frames is
        the node clock's rate).
        """
        # a bag that loops sets the clock back: the frame in flight then has neither a rate
        # nor a latency (below its own inference time)
        if wall_s > 0 and node_s > 0:
            self._clock.append((node_s, wall_s))
        self._recent_s.append(inference_s)
        outside = latency_ms - inference_s * 1e3 * self.clock_rate()
        if outside >= 0:
            self._outside_ms.append(outside)
        # the frame that first runs a configuration also reads its resident units in
        first, self._last_ran = ran != self._last_ran, ran
        tuner = self.tuner
        if tuner is None or ran is None:
            return
        # while a plan is being made the plan in force is on its way out: not judged
        if not self._tuner_lock.acquire(blocking=False):
            return
        try:
            plan = tuner.state.plan
            if s.auto_tune and plan is not None and key(plan) == ran:
                if tuner.observe(inference_s):   # (it leaves the first frame out itself)
                    self._wanted.set()
            elif not first:
                # any other configuration's frames teach the tuner the model's error
                tuner.learn(*ran, inference_s)
        finally:
            self._tuner_lock.release()

    # -- planning -----------------------------------------------------------------------------
    def clock_rate(self) -> float:
        """Node-clock seconds per wall second over recent frames (1 without frames)."""
        if not self._clock:
            return 1.0
        node, wall = np.sum(np.array(self._clock), axis=0)
        return float(np.clip(node / wall, 0.01, 100.0))

    def target_s(self, s: Settings) -> float:
        """The inference time (wall clock) the tuner aims at for ``s.deadline_ms``.

        The deadline less the time outside inference, on the wall clock, less the tuner's
        tolerance: the tuner re-plans only once a plan is slower than its target by more than
        that, so the edge of its band is the deadline itself, not 2% past it.
        """
        deadline_ms = s.deadline_ms
        q = s.auto_tune_quantile
        # over the last WINDOW frames, or as many as the quantile needs: over 30 frames a 99th
        # percentile is the slowest one, so one frame that waited long moved the target for 30
        # frames (in a bench --streams run at 0.99 the target fell from 421 to 314 ms for
        # about 30 frames, and that plan was called infeasible)
        recent = list(self._outside_ms)[-max(WINDOW, frames_for(q)):]
        outside = (float(np.quantile(recent, q)) if recent
                   else NO_FRAMES_SHARE * deadline_ms)
        wall_s = (deadline_ms - outside) / 1e3 / self.clock_rate()
        return max(1e-3, wall_s / (1 + TOLERANCE))

    def plan_now(self, s: Settings) -> PlanEvent | None:
        """Make a plan for ``s`` (planning thread, or the caller's) and leave it pending."""
        self._wanted.clear()
        tuner = self.tuner
        if tuner is None or not s.auto_tune:
            return None
        target = self.target_s(s)
        with self._tuner_lock:
            t0 = time.perf_counter()
            plan = self._search(tuner, target, s)
            took = time.perf_counter() - t0
            met = tuner.state.met
        with self._plan_lock:
            if self.tuner is not tuner:
                return None  # detached meanwhile
            current = self.in_force
            # the same configuration again is not applied: that would read its resident units
            # in again for nothing
            if (current is not None and key(current) == key(plan)) or self._apply(plan):
                self.in_force = plan
            else:
                return None  # auto_tune went off meanwhile
        event = PlanEvent(plan, target, tuner.predicted_s() or plan.predicted_s, met, took)
        self.events.append(event)
        self._info(
            f'auto_tune: {plan.mode} within {plan.budget_bytes / MiB:.1f} MiB, '
            f'{len(plan.resident)} resident units, predicted {event.predicted_s * 1e3:.0f} ms '
            f'for a target of {target * 1e3:.0f} ms (planned in {took * 1e3:.0f} ms)'
            + ('' if met else ' (target not reachable within the budget: fastest allowed)'))
        return event

    def behind(self, target_s: float) -> bool:
        """Whether frames run over ``target_s`` now (see ``behind``)."""
        return behind(self._recent_s, target_s)

    def _search(self, tuner: 'AutoTuner', target: float, s: Settings) -> 'Plan':
        """The tuner's plan, searched at once here or in the planning process (``searched``)."""
        worker = self._worker
        plan, _ = searched(partial(tuner.plan, target, s.budget_cap_bytes, s.auto_tune_quantile),
                           worker.plan_for_deadline if worker is not None else None,
                           self.behind(target), lambda m: self._info(f'auto_tune: {m}'))
        return plan

    def _loop(self, settings: Callable[[], Settings]) -> None:
        while not self._stopping.is_set():
            if not self._wanted.wait(0.5) or self._stopping.is_set():
                continue
            try:
                self.plan_now(settings())
            except Exception as err:  # noqa: BLE001 - a failed plan keeps the one in force
                self._info(f'auto_tune: planning failed ({type(err).__name__}: {err}); the '
                           'configuration in force is kept')


def behind(recent_s: Sequence[float], target_s: float) -> bool:
    """Whether frames run over ``target_s`` now: the median of the last BEHIND of ``recent_s``.

    A plan for frames that are behind is searched at once, where it was asked for; the others
    go to the planning process. With no frame yet: True (no frame runs beside the plan).
    """
    recent = list(recent_s)[-BEHIND:]
    return not recent or float(np.median(recent)) > target_s


def searched(plan: Callable[..., _T], child: Callable[..., Any] | None, behind_now: bool,
             warn: Callable[[str], None]) -> tuple[_T, bool]:
    """``plan()``, or ``plan(search=child)`` in the planning process; and whether it was there.

    There (``engine.plan_worker``) while frames meet their target (``behind_now`` False): it
    takes longer, and spreads its cost over the frames instead of making one of them 2-3x
    slower (``docs/benchmarks.md``). At once, on the calling thread, while they are behind, or
    when the planning process failed (``warn`` says so).
    """
    if child is not None and not behind_now:
        try:
            return plan(search=child), True
        except PlanWorkerError as err:
            warn(f'{err}; this plan is made on the planning thread (the frames beside it run '
                 'slower)')
    return plan(), False


def key(plan: 'Plan') -> ConfigKey:
    """What identifies a plan's configuration in the engine."""
    return (str(plan.mode), int(plan.budget_bytes), frozenset(plan.resident))
