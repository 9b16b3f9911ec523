# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The detectors of a node with streams: engines under one budget, planned from parameters.

This is the glue between the node's accepted parameter values and ``realtime.SharedBudget``:
what a set of values asks the joint plan for (the node's budget, budgets fixed per stream,
with auto_tune each engine's target from its streams' deadlines), which streams the plan in
force cannot serve in time, the figures diagnostics show, and auto_tune's re-plans when the
targets or the calibrated figures drift. A parameter change is checked where it is validated
(a budget that cannot hold the engines is refused). Without auto_tune its plan, a split of the
budget, is made there too; with it, as for a re-plan, the plan is searched on a planning thread
while the plan in force serves the frames - in the planning process (``engine.plan_worker``)
while every engine meets its target - and handed over between two frames.

As the single stream's tuner does, plans aim a quantile (``auto_tune_quantile``, 0.9 unless
set) of each engine's measured / predicted inference time at the target: the calibrated model
predicts the mean, and on a busy machine one frame in ten runs well above it.
"""

from __future__ import annotations

from collections import deque
from functools import partial
import threading
import time
from typing import Any, Callable, Mapping, Sequence, TypeVar

import numpy as np

from . import streams as st
from .params import settings_from
from ..engine.plan_worker import PlanWorker
from ..engine.planner import JointPlan, mode_margin, Request
from ..engine.executor import Record
from ..engine.policy import Config
from ..engine.turns import Turns
from ..perception.detector import Detector
from ..realtime.auto_tune import HISTORY, QUANTILE
from ..realtime.runner import FrameRunner
from ..realtime.shared_budget import engine_targets, SharedBudget, StreamEngine
from ..realtime.tuning import behind, searched

MiB = 2 ** 20
# parameters whose change makes a new joint plan (the others only with auto_tune)
BUDGET_PARAMS = ('memory_budget_mb', 'auto_tune')
TARGET_PARAMS = ('deadline_ms', 'engines_take_turns', 'auto_tune_quantile')
RATIOS = HISTORY   # recent inferences per engine whose measured / predicted give the margin
MIN_RATIOS = 5   # fewer: no margin yet
_T = TypeVar('_T')


class SharedEngines:
    """Engines (one detector each) serving the node's streams within one budget."""

    def __init__(self, engines: Sequence[st.Engine], detectors: Sequence[Detector],
                 runners: Mapping[str, FrameRunner[Any]], info: Callable[[str], None],
                 in_turns: Callable[[], bool] = lambda: False) -> None:
        self.engines = {e.name: e for e in engines}
        self.detectors = {e.name: d for e, d in zip(engines, detectors)}
        self.engine_of = {s: e.name for e in engines for s in e.streams}
        self.runners = dict(runners)
        self.stream_names = tuple(self.engine_of)
        self.budget = SharedBudget(self.detectors)
        self._info = info
        self._lock = threading.Lock()
        self._replanning: threading.Thread | None = None   # the planning thread, while it runs
        self._waiting: tuple[Request, int, int] | None = None   # request, its number, since
        self._asked = 0   # joint plans asked of the planning thread so far
        self._worker = PlanWorker()   # its process starts with the first plan it makes
        self._peaks: dict[str, int] = {}
        self._read = (time.monotonic(), self._bytes_read())
        self._ran: dict[str, deque[tuple[Config, float]]] = {}
        for e, det in self.detectors.items():
            self._ran[e] = deque(maxlen=RATIOS)
            det.observe(partial(self._keep, self._ran[e]))
        turns = Turns()   # one for all engines (engines_take_turns)
        for s, runner in self.runners.items():
            e = self.engine_of[s]
            runner.attach(StreamEngine(self.detectors[e], self.budget, e, turns, in_turns), None)

    @staticmethod
    def _keep(ran: deque[tuple[Config, float]], record: Record) -> None:
        ran.append((record.config, record.latency_s))

    def margins(self, engine: str, q: float = QUANTILE) -> dict[str, float]:
        """Measured / predicted inference time at quantile q of the engine's recent inferences.

        Per mode (as the single stream's tuner keeps them: lanes with the whole model resident
        contend for the one interpreter, streaming lanes wait for reads), and for all of them
        under '' (for a mode not measured yet). Empty before MIN_RATIOS inferences.
        """
        cal = self.detectors[engine].calibrator
        ran = list(self._ran[engine])
        if cal is None or len(ran) < MIN_RATIOS:
            return {}
        predicted: dict[Config, float] = {}
        ratios: dict[str, list[float]] = {'': []}
        for config, latency in ran:
            if config not in predicted:
                try:
                    predicted[config] = cal.predict(config).latency_s
                except ValueError:
                    predicted[config] = 0.0
            if predicted[config] > 0:
                r = latency / predicted[config]
                ratios[''].append(r)
                ratios.setdefault(str(config.mode), []).append(r)
        return {m: float(np.quantile(rs, q)) for m, rs in ratios.items()
                if len(rs) >= MIN_RATIOS}

    def margin(self, engine: str, q: float = QUANTILE, mode: str = '') -> float:
        """The margin of ``engine``'s plans in ``mode`` ('': all modes; 1.0: none measured)."""
        return mode_margin(self.margins(engine, q), mode)

    # -- planning -----------------------------------------------------------------------------
    def affects(self, changed: Sequence[str], values: Mapping[str, Any]) -> bool:
        """Whether a change of ``changed`` needs a new joint plan."""
        for name in changed:
            base = st.split(name, self.stream_names)[1]
            if base in BUDGET_PARAMS or (values['auto_tune'] and base in TARGET_PARAMS):
                return True
        return False

    def stream_targets(self, values: Mapping[str, Any]) -> dict[str, float]:
        """Each stream's inference target (wall-clock s): its deadline less the time outside."""
        return {s: self.runners[s].tuning.target_s(settings_from(st.view(s, values)))
                for s in self.stream_names}

    def request(self, values: Mapping[str, Any]) -> Request:
        """What the joint plan is made for, from parameter values."""
        budget = values['memory_budget_mb']
        fixed: dict[str, int] = {}
        for s, e in self.engine_of.items():
            own = values[st.parameter(s, 'memory_budget_mb')]
            if own > 0:   # streams sharing an engine: the largest fixed budget applies
                fixed[e] = max(fixed.get(e, 0), int(own * MiB))
        targets = None
        margins: dict[str, dict[str, float]] = {}
        if values['auto_tune']:
            targets = engine_targets({e.name: e.streams for e in self.engines.values()},
                                     self.stream_targets(values),
                                     bool(values['engines_take_turns']),
                                     {e.name: e.spec.lanes for e in self.engines.values()})
            # the planner predicts the mean: plans are scaled by their mode's margin
            margins = {e: self.margins(e, values['auto_tune_quantile']) for e in targets}
        return Request(int(budget * MiB) if budget > 0 else None, fixed, targets, margins)

    def plan(self, values: Mapping[str, Any]) -> tuple[JointPlan, Request]:
        """The joint plan for ``values`` (nothing applied); ValueError saying why not."""
        req = self.request(values)
        return self._explained(self.budget.plan, req), req

    def accept(self, values: Mapping[str, Any]) -> Callable[[], None]:
        """Check a change's request; what hands its plan over once the values are in force.

        ValueError (the change is refused) when the budget cannot hold the engines. Without
        auto_tune the plan, a split of the budget, is made here and handed over at once. With
        it the search takes longer (seconds on large models): only the budget is checked here,
        and the plan is searched on the planning thread, as a re-plan is, while the plan in
        force serves the frames - so the executor thread that took the change (it also
        delivers the images) is not held up.
        """
        req = self.request(values)
        if req.targets is None:
            return partial(self.apply, self._explained(self.budget.plan, req), req)
        self._explained(self.budget.check, req)
        return partial(self._replan, req)

    def _explained(self, fn: Callable[[Request], _T], req: Request) -> _T:
        """``fn(req)``; its ValueError says how engines with a lane per stream could fit."""
        try:
            return fn(req)
        except ValueError as err:
            laned = [e.name for e in self.engines.values() if e.spec.lanes > 1]
            if not laned:
                raise
            raise ValueError(f'{err}; engine(s) {", ".join(laned)} run a lane per stream, each '
                             'holding the weights it streams (engines_take_turns: true runs '
                             'one)') from err

    def apply(self, joint: JointPlan, req: Request, since: int | None = None,
              how: str = '') -> bool:
        """Hand a joint plan to the engines (see SharedBudget.apply) and say what it is.

        ``how``: how it was made, for the log line.
        """
        if not self.budget.apply(joint, req, since):
            return False
        parts = [f'{e}: {p.mode} within {joint.held_bytes(e) / MiB:.1f} MiB'
                 + (f' on {joint.lanes[e]} lanes' if e in joint.lanes else '')
                 + (f' (target {req.targets[e] * 1e3:.0f} ms, predicted '
                    f'{p.predicted_s * 1e3:.0f} ms x a margin of {req.margin(e, p.mode):.2f})'
                    if req.targets else '')
                 for e, p in joint.plans.items()]
        self._info(f'joint plan, {joint.total_bytes / MiB:.1f} MiB in all: ' + '; '.join(parts)
                   + (f'; targets missed: {", ".join(joint.missed)}' if joint.missed else '')
                   + (f' ({how})' if how else ''))
        return True

    def replan_if_due(self, values: Mapping[str, Any]) -> None:
        """With auto_tune: re-plan on the planning thread when targets or figures drifted."""
        if not values['auto_tune'] or self.planning:
            return
        req = self.request(values)
        if req.targets is not None and self.budget.due(req):
            self._replan(req)

    @property
    def planning(self) -> bool:
        """Whether a joint plan is being searched (or waits to be)."""
        return self._replanning is not None

    def _replan(self, req: Request) -> None:
        """Search the joint plan for ``req`` on the planning thread, then hand it over.

        A request that finds the thread busy waits for it, replacing one that waited. A plan
        is dropped when a newer request came meanwhile, or another plan was handed over.
        """
        with self._lock:
            self._asked += 1
            self._waiting = (req, self._asked, self.budget.generation)
            if self._replanning is None:
                self._replanning = threading.Thread(target=self._planning,
                                                    name='dl-joint-plan', daemon=True)
                self._replanning.start()

    def _planning(self) -> None:
        while True:
            with self._lock:
                if self._waiting is None:
                    self._replanning = None
                    return
                (req, asked, since), self._waiting = self._waiting, None
            try:
                start = time.monotonic()
                joint, where = self._search(req)
                took = f'searched {where} in {(time.monotonic() - start) * 1e3:.0f} ms'
                if asked == self._asked:   # else a newer request waits for this thread
                    self.apply(joint, req, since, took)
            except Exception as err:  # noqa: BLE001 - the plan in force is kept
                self._info(f'joint plan failed ({type(err).__name__}: {err}); the plan in '
                           'force is kept')

    def join_planning(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the joint plans asked for; whether none is left."""
        thread = self._replanning
        if thread is not None:
            thread.join(timeout)
        return not self.planning

    def _search(self, req: Request) -> tuple[JointPlan, str]:
        """A joint plan with targets, searched at once here or in the planning process; where.

        The single stream's rule (``tuning.searched``), with every engine's own frames: in the
        planning process only while each meets its target.
        """
        assert req.targets is not None
        # each deque copied in one step (list): inference threads append to them meanwhile
        recent = {e: [t for _, t in list(self._ran[e])] for e in req.targets}
        joint, there = searched(partial(self.budget.plan, req), self._worker.joint_plan,
                                any(behind(recent[e], target)
                                    for e, target in req.targets.items()),
                                lambda m: self._info(f'joint plan: {m}'))
        return joint, 'by the planning process' if there else 'at once'

    # -- what diagnostics show ----------------------------------------------------------------
    def unsatisfied(self, values: Mapping[str, Any]) -> dict[str, str]:
        """Streams whose deadline the configuration in force is predicted to miss, and why."""
        targets = self.stream_targets(values)
        margins = {e: self.margins(e, values['auto_tune_quantile']) for e in self.detectors}
        out = {}
        for s, e in self.engine_of.items():
            predicted = self.detectors[e].predicted_s
            if predicted is not None:   # each engine's margins once, not once per stream
                predicted *= mode_margin(margins[e], self.detectors[e].figures().mode)
            # a frame may wait for one inference of each stream it takes turns with
            engine = self.engines[e]
            n = (len(self.stream_names) if values['engines_take_turns']
                 else -(-len(engine.streams) // engine.spec.lanes))
            if predicted is not None and predicted * n > targets[s]:
                turns = f' x {n} streams taking turns' if n > 1 else ''
                out[s] = (f'engine {e} predicts {predicted * 1e3:.0f} ms{turns}, '
                          f'{targets[s] * 1e3:.0f} ms available')
        return out

    def engine_figures(self) -> dict[str, dict[str, Any]]:
        """Per engine: model, streams, configuration, weight memory, prediction, target."""
        req = self.budget.request
        out = {}
        for e, det in self.detectors.items():
            s = det.stats()
            self._peaks[e] = max(self._peaks.get(e, 0), int(s['weight_bytes_peak']))
            predicted = det.predicted_s
            fig: dict[str, Any] = {
                'model': det.name, 'streams': ','.join(self.engines[e].streams),
                'lanes': det.lanes, 'mode': s['mode'], 'budget_bytes': s['budget_bytes'],
                'weight_bytes': s['weight_bytes'], 'weight_bytes_peak': self._peaks[e],
                'total_bytes': s['total_bytes'],
                'predicted_ms': predicted * 1e3 if predicted is not None else ''}
            if req is not None and req.targets is not None:
                fig['target_ms'] = req.targets[e] * 1e3
                fig['margin'] = req.margin(e, s['mode'])
            out[e] = fig
        return out

    def stream_counters(self) -> dict[str, dict[str, float]]:
        """Per stream: frames processed, deadline misses and stale drops so far."""
        out = {}
        for s, runner in self.runners.items():
            counts = runner.stats.counts
            out[s] = {k: float(counts[k]) for k in ('processed', 'deadline_missed',
                                                    'dropped_stale')}
        return out

    def disk_read_bps(self) -> float:
        """Bytes per second all engines read since the last call."""
        now, total = time.monotonic(), self._bytes_read()
        t0, b0 = self._read
        self._read = (now, total)
        return (total - b0) / (now - t0) if now > t0 else 0.0

    def _bytes_read(self) -> int:
        return sum(d.bytes_read for d in self.detectors.values())

    # -- lifecycle ----------------------------------------------------------------------------
    def release(self) -> None:
        """Give every engine's weight memory back (lifecycle deactivate)."""
        for det in self.detectors.values():
            det.release()

    def close(self) -> None:
        """Close every engine (after a re-plan under way)."""
        self.join_planning(30)
        self._worker.close()
        for runner in self.runners.values():
            runner.detach()
        for det in self.detectors.values():
            det.close()
