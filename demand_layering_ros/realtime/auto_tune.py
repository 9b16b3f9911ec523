# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Auto-tuning: the least weight memory whose predicted delay meets the deadline, kept true.

The planner predicts from the calibrated model (``engine.calibrate``); what the model still
misses is kept, per execution mode, as measured / predicted over recent frames, whoever chose
their configuration (a node busy with a camera stream runs sequential and pipelined
configurations slower than its idle profile says, preloaded ones hardly at all). A plan aims a
quantile of its mode's ratio at the target (``quantile``: the share of frames that should meet
it; 0.9 unless asked, so nine frames in ten meet it even when the model is a little off), or
the median of the last eight frames' ratio, when a machine that just slowed down makes that
higher. The tuner re-plans when the plan in force leaves its band, judged on its last eight
frames (from its fifth on): for speed when their median is above the target (most frames would
miss: more memory; a few slow frames, the machine stalling, do not count, a slower machine
does), or when more of its frames than twice the share allowed (1 - quantile) were over the
target, once it has run enough frames to tell (at least 2 / (1 - quantile): stalls more
frequent than the quantile allows are a slower machine for it), or to give memory back when
even their 90th percentile is far below the target, and the planner's correction agrees (not
within HOLDOFF frames of a re-plan for speed: a configuration just left for being slow looks
fast again from the safer one, and going back to it would oscillate). The band's room between
its edges, the window, the hold-off and leaving out the frame that brings a new plan's resident
units in keep it from oscillating.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..engine.calibrate import Calibrator
from ..engine.planner import Plan, plan_for_deadline
from ..engine.policy import Mode
from ..engine.simulate import Pipeline, simulate

WINDOW = 8          # the frames a plan is judged on: its last this many ...
FIRST = 5           # ... once it has run this many (a change of the machine's speed is acted
#                     on within about this many frames)
SLOW = 0.5          # too slow: the window's median above the band (three slow frames in eight
#                     do not count)
SPARE = 0.9         # memory to spare: the window's 90th percentile below the band
QUANTILE = 0.9      # plans aim this quantile of measured / predicted at the target (default)
TOLERANCE = 0.02    # re-plan for speed when the window's median delay is above target * (1 + this)
LOW = 0.8           # re-plan to give memory back when it is below target * this
HISTORY = 200       # ratios kept per mode (the model's error across plans; enough for a p99)
NEW_TARGET = 0.05   # a target this much away from the last is a new deadline (the time outside
#                     inference moves targets for the same deadline by a few percent)
HOLDOFF = 60        # frames after a re-plan for speed before memory may be given back (a
#                     machine that just proved slower is not trusted with less at once)
FASTER = 0.1        # memory is given back once the plan's expected delay fell this share below
#                     what it was planned with: less, and the planner would make the same plan


def frames_for(q: float) -> int:
    """Frames a quantile ``q`` is judged over: where its share 1 - q of slow frames shows twice.

    Fewer, and one slow frame is the quantile (20 frames at 0.9, 200 at 0.99, 2000 at 0.999).
    """
    return round(2 / (1 - q))


@dataclass
class TunerState:
    """What the tuner decided last (for diagnostics)."""

    plan: Plan | None = None
    met: bool = True
    ratio: float = 1.0     # the correction the plan was made with (see AutoTuner._correction)
    replans: int = 0
    target_s: float = 0.0


class AutoTuner:
    """Plans for a deadline within a memory cap and re-plans when the plan leaves its band."""

    def __init__(self, model: Pipeline | Calibrator) -> None:
        self.calibrator = model if isinstance(model, Calibrator) else Calibrator(model)
        self.state = TunerState()
        self._ratios: dict[str, deque[float]] = {}
        self._judged = 0     # frames measured under the plan in force
        self._over = 0       # ... of which over the target
        self._skip = 0       # frames not to judge (the one that applies the plan)
        self._since_slow = HOLDOFF   # frames judged since the last re-plan for speed
        self.quantile = QUANTILE

    def plan(self, target_s: float, max_budget: int | None, quantile: float = QUANTILE,
             search: Callable[..., tuple[Plan, bool]] = plan_for_deadline) -> Plan:
        """Plan for an inference time of ``target_s`` at ``quantile`` of recent frames.

        ``search``: ``plan_for_deadline`` here, or a planning process's (``PlanWorker``).
        """
        st = self.state
        if abs(target_s - st.target_s) > NEW_TARGET * st.target_s or quantile != self.quantile:
            self._since_slow = HOLDOFF   # a new deadline (or share of frames): nothing to hold
        self.quantile = quantile
        # the corrections as plain data: the search may run in another process
        correction = {str(m): self._correction(str(m)) for m in Mode}
        plan, met = search(self.calibrator.pipeline, target_s, max_budget,
                           correction=correction.__getitem__)
        st.plan, st.met, st.target_s = plan, met, target_s
        st.ratio = correction[str(plan.mode)]
        st.replans += 1
        self._judged = self._over = 0   # judged on its own frames (one re-plan per FIRST)
        self._skip = 1   # the next frame applies the plan: it reads the resident units in
        return plan

    def ratio(self, mode: str, q: float, recent: int | None = None) -> float:
        """Measured / predicted at quantile ``q`` for ``mode`` (all modes' until it has some).

        Before any frame at all: 1.0 (the calibrated model as it is).
        """
        # copies made in one step each (list): the inference thread adds ratios meanwhile,
        # and iterating a deque or dict it changes raises
        ratios = list(self._ratios.get(str(mode), ()))
        if not ratios:
            ratios = [r for d in list(self._ratios.values()) for r in list(d)]
        if recent:
            ratios = ratios[-recent:]
        return float(np.quantile(ratios, q)) if ratios else 1.0

    def _correction(self, mode: str) -> float:
        """What a plan's prediction is scaled by: its mode's measured / predicted at quantile.

        Or the median of the last WINDOW frames when that is higher (a machine that just slowed
        down: most of the history is from before).
        """
        return max(self.ratio(mode, self.quantile), self.ratio(mode, SLOW, recent=WINDOW))

    def predicted_s(self, q: float = 0.5) -> float | None:
        """The plan in force's delay at quantile ``q`` of recent frames (calibrated model)."""
        plan = self.state.plan
        return None if plan is None else self._model_s(plan) * self.ratio(plan.mode, q)

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
        self._remember(plan.mode, measured_s / model)
        self._judged += 1
        self._over += measured_s > st.target_s * (1 + TOLERANCE)
        self._since_slow += 1
        if self._judged < FIRST:
            return False
        recent = min(self._judged, WINDOW)
        allowed = 1 - self.quantile
        slow = st.met and (model * self.ratio(plan.mode, SLOW, recent=recent)
                           > st.target_s * (1 + TOLERANCE)
                           or (self._judged >= max(2 * WINDOW, frames_for(self.quantile))
                               and self._over > 2 * allowed * self._judged))
        # memory to spare: nearly every recent frame is fast, and the planner's correction
        # (which a stalling machine keeps high) agrees, or the plan would be the same one; and
        # the plan is expected faster now than when it was made, or the planner, judging the
        # same figures, would make it again
        correction = self._correction(plan.mode)
        spare = (model * max(self.ratio(plan.mode, SPARE, recent=recent), correction)
                 < st.target_s * LOW
                 and model * correction < plan.predicted_s * st.ratio * (1 - FASTER)
                 and plan.budget_bytes > self._least_budget()
                 and self._since_slow >= HOLDOFF)
        if slow:
            self._since_slow = 0
        return slow or spare

    def learn(self, mode: str, budget_bytes: int, resident: frozenset[int],
              measured_s: float) -> None:
        """Record one inference of a configuration that is not the tuner's plan.

        What the model misses is the machine's, whoever chose the configuration: frames run
        before auto_tune was turned on (or with the plan on its way out) teach the first plan
        how far its mode's predictions are off. Only the ratios learn; nothing is judged.
        """
        model = self._model_of(mode, budget_bytes, resident)
        if model > 0:
            self._remember(mode, measured_s / model)

    def _remember(self, mode: str, ratio: float) -> None:
        self._ratios.setdefault(str(mode), deque(maxlen=HISTORY)).append(ratio)

    def _model_s(self, plan: Plan) -> float:
        return self._model_of(plan.mode, plan.budget_bytes, plan.resident, plan.prefetch_depth)

    def _model_of(self, mode: str, budget_bytes: int, resident: frozenset[int],
                  prefetch_depth: int | None = None) -> float:
        try:
            return simulate(self.calibrator.pipeline, mode, budget_bytes, resident,
                            prefetch_depth).latency_s
        except ValueError:
            return 0.0

    def _least_budget(self) -> int:
        p = self.calibrator.pipeline
        return min(p.min_budget('sequential'), p.min_budget('pipelined'))
