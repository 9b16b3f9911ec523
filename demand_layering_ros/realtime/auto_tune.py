# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Auto-tuning: the least weight memory whose predicted delay meets the deadline, kept honest.

The planner predicts from a profile; the tuner compares each measured inference with the
prediction and, when they drift apart (the machine got busier, the input changed), corrects the
target by the measured ratio and asks for a new plan.
"""

from __future__ import annotations

from dataclasses import dataclass
import time
from typing import Callable

from ..engine.planner import Plan, plan_for_deadline
from ..engine.simulate import Pipeline

DRIFT = 0.15           # re-plan when measured / predicted leaves 1 +- this
WINDOW = 5             # frames of evidence before a drift counts
MIN_REPLAN_S = 5.0     # at most one drift re-plan per this many seconds


@dataclass
class TunerState:
    """What the tuner decided last (for diagnostics)."""

    plan: Plan | None = None
    met: bool = True
    ratio: float = 1.0     # measured / predicted inference time, smoothed
    replans: int = 0
    target_s: float = 0.0


class AutoTuner:
    """Plans for a deadline within a memory cap and re-plans on drift."""

    def __init__(self, pipeline: Pipeline, clock: Callable[[], float] = time.monotonic) -> None:
        self.pipeline = pipeline
        self.state = TunerState()
        self._clock = clock
        self._recent: list[float] = []
        self._last_plan_t = -1e9

    def plan(self, target_s: float, max_budget: int | None) -> Plan:
        """Plan for an inference time of ``target_s`` (corrected by the measured drift)."""
        st = self.state
        plan, met = plan_for_deadline(self.pipeline, target_s / st.ratio, max_budget)
        st.plan, st.met, st.target_s = plan, met, target_s
        st.replans += 1
        self._recent.clear()
        self._last_plan_t = self._clock()
        return plan

    def predicted_s(self) -> float | None:
        """The current plan's predicted inference time, corrected by the measured drift."""
        plan = self.state.plan
        return plan.predicted_s * self.state.ratio if plan else None

    def observe(self, measured_s: float) -> bool:
        """Record one measured inference; True when a re-plan is due (sustained drift)."""
        plan = self.state.plan
        if plan is None or plan.predicted_s <= 0:
            return False
        self._recent.append(measured_s / plan.predicted_s)
        if len(self._recent) < WINDOW:
            return False
        self._recent = self._recent[-WINDOW:]
        ratio = sorted(self._recent)[WINDOW // 2]  # median: one slow frame is not a drift
        if abs(ratio / self.state.ratio - 1) <= DRIFT:
            return False
        if self._clock() - self._last_plan_t < MIN_REPLAN_S:
            return False
        self.state.ratio = ratio
        return True
