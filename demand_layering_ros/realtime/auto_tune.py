# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Auto-tuning: the least weight memory whose predicted delay meets the deadline, kept true.

The planner predicts from the calibrated model (``engine.calibrate``); what the model still
misses is kept as measured / predicted over recent frames. A plan aims the 90th percentile of
that ratio at the target, so nine frames in ten meet it even when the model is a little off.
The tuner re-plans when the calibrated 90th-percentile delay of the plan in force leaves its band:
above the target (frames would miss: more memory), or far below it while memory could be given
back. A band with room between its edges, a window of frames before any judgement and the
frame that brings a new plan's resident units in left out keep it from oscillating.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from ..engine.calibrate import Calibrator
from ..engine.planner import Plan, plan_for_deadline
from ..engine.simulate import Pipeline, simulate

WINDOW = 8          # frames measured under a plan before it is judged
QUANTILE = 0.9      # plans aim this quantile of measured / predicted at the target
TOLERANCE = 0.02    # re-plan for speed when the quantile's delay is above target * (1 + this)
LOW = 0.8           # re-plan to give memory back when it is below target * this
HISTORY = 50        # ratios kept (they describe the model's error, across plans)


@dataclass
class TunerState:
    """What the tuner decided last (for diagnostics)."""

    plan: Plan | None = None
    met: bool = True
    ratio: float = 1.0     # measured / predicted at QUANTILE when the plan was made
    replans: int = 0
    target_s: float = 0.0


class AutoTuner:
    """Plans for a deadline within a memory cap and re-plans when the plan leaves its band."""

    def __init__(self, model: Pipeline | Calibrator) -> None:
        self.calibrator = model if isinstance(model, Calibrator) else Calibrator(model)
        self.state = TunerState()
        self._ratios: deque[float] = deque(maxlen=HISTORY)
        self._judged = 0     # frames measured under the plan in force
        self._skip = 0       # frames not to judge (the one that applies the plan)

    def plan(self, target_s: float, max_budget: int | None) -> Plan:
        """Plan for an inference time of ``target_s`` at the QUANTILE of recent frames."""
        st = self.state
        ratio = self._quantile(QUANTILE)
        plan, met = plan_for_deadline(self.calibrator.pipeline, target_s / ratio, max_budget)
        st.plan, st.met, st.target_s, st.ratio = plan, met, target_s, ratio
        st.replans += 1
        self._judged = 0
        self._skip = 1   # the next frame applies the plan: it reads the resident units in
        return plan

    def predicted_s(self, q: float = 0.5) -> float | None:
        """The plan in force's delay at quantile ``q`` of recent frames (calibrated model)."""
        plan = self.state.plan
        return None if plan is None else self._model_s(plan) * self._quantile(q)

    def observe(self, measured_s: float) -> bool:
        """Record one measured inference; True when a re-plan is due (left the band)."""
        st = self.state
        plan = st.plan
        if plan is None:
            return False
        if self._skip:
            self._skip -= 1
            return False
        model = self._model_s(plan)
        if model <= 0:
            return False
        self._ratios.append(measured_s / model)
        self._judged += 1
        if self._judged < WINDOW:
            return False
        expected = model * self._quantile(QUANTILE, recent=WINDOW)
        slow = expected > st.target_s * (1 + TOLERANCE) and st.met
        spare = expected < st.target_s * LOW and plan.budget_bytes > self._least_budget()
        return slow or spare

    def _model_s(self, plan: Plan) -> float:
        try:
            return simulate(self.calibrator.pipeline, plan.mode, plan.budget_bytes,
                            plan.resident, plan.prefetch_depth).latency_s
        except ValueError:
            return 0.0

    def _quantile(self, q: float, recent: int | None = None) -> float:
        ratios = list(self._ratios)[-recent:] if recent else list(self._ratios)
        return float(np.quantile(ratios, q)) if ratios else 1.0

    def _least_budget(self) -> int:
        p = self.calibrator.pipeline
        return min(p.min_budget('sequential'), p.min_budget('pipelined'))
