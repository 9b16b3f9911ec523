# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Several engines under one weight budget: the joint plan, and handing it over without overshoot.

A node serving several streams runs one engine (executor) per distinct detector. Without
auto_tune the node's budget is split among them (``planner.split_budget``: budgets fixed per
stream honoured, the rest in proportion to what each engine needs); with it,
``planner.plan_jointly`` finds the least total memory that meets every engine's target
(``planner.joint_plan`` makes either from a ``Request``).

Executors apply a new configuration before their next inference, each on its own streams'
frames, so a plan cannot take effect everywhere at once. Engines that shrink get their plan at
once; one that grows waits, before its next inference, until the memory the others still hold
leaves it room. The weight memory of all engines together therefore never exceeds the larger of
the old and the new budget, and is within the new one once every engine has run an inference.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Mapping, Protocol, Sequence, TYPE_CHECKING

from ..engine.planner import check_request, joint_plan, JointPlan, Request
from ..engine.turns import Turns
from .auto_tune import FASTER, LOW, TOLERANCE
from .tuning import key

if TYPE_CHECKING:
    import numpy as np

    from ..engine.calibrate import Calibrator
    from ..engine.planner import Plan
    from ..engine.simulate import Pipeline
    from ..perception.detections import Detection
    from ..perception.detector import EngineFigures

DRIFT = 0.1   # auto_tune re-plans when an engine's target moved by more than this share


class EnginePort(Protocol):
    """What the budget needs of an engine (perception.Detector provides it)."""

    @property
    def calibrator(self) -> 'Calibrator | None': ...

    @property
    def predicted_s(self) -> float | None: ...

    def apply_plan(self, plan: 'Plan') -> Any: ...

    def weight_bytes(self) -> int: ...

    @property
    def lanes(self) -> int: ...


def engine_targets(streams_of: Mapping[str, Sequence[str]],
                   stream_targets: Mapping[str, float], in_turns: bool = False,
                   lanes: Mapping[str, int] | None = None) -> dict[str, float]:
    """Each engine's inference target from its streams' targets (wall-clock seconds).

    Streams sharing an engine's lanes take turns at them: a frame may wait for one inference
    of every other stream its lane serves first, so an engine serving n streams on k lanes
    must run within 1/ceil(n/k) of the nearest target. With every engine in turns
    (``in_turns``), n counts the streams of all engines and k is 1.
    """
    everyone = sum(len(streams) for streams in streams_of.values())
    lanes = lanes or {}
    return {e: min(stream_targets[s] for s in streams) / (
        everyone if in_turns else -(-len(streams) // lanes.get(e, 1)))
        for e, streams in streams_of.items()}


class SharedBudget:
    """Makes joint plans for the engines and hands them over without exceeding the budget."""

    def __init__(self, engines: Mapping[str, EnginePort]) -> None:
        self.engines = dict(engines)
        self.in_force: JointPlan | None = None
        self.request: Request | None = None
        self.generation = 0           # plans handed over so far
        self._lock = threading.Lock()
        self._given: dict[str, int] = {}          # budget handed to each executor
        self._handed: dict[str, 'Plan'] = {}
        self._deferred: dict[str, 'Plan'] = {}    # growth waiting for room
        self._limit = 0

    def pipelines(self) -> dict[str, 'Pipeline']:
        """Each engine's calibrated figures."""
        out = {}
        for e, engine in self.engines.items():
            cal = engine.calibrator
            if cal is None:
                raise ValueError(f'engine {e} has no profile to plan with')
            out[e] = cal.pipeline
        return out

    def plan(self, req: Request, search: Callable[..., JointPlan] = joint_plan) -> JointPlan:
        """The joint plan for ``req`` (nothing applied); ValueError saying why not.

        ``search``: ``planner.joint_plan`` or what computes it elsewhere (a planning process).
        """
        return search(self.pipelines(), req,
                      {e: engine.lanes for e, engine in self.engines.items()})

    def check(self, req: Request) -> None:
        """Why ``req`` cannot be planned, as a ValueError (``planner.check_request``)."""
        check_request(self.pipelines(), req,
                      {e: engine.lanes for e, engine in self.engines.items()})

    def apply(self, joint: JointPlan, req: Request, since: int | None = None) -> bool:
        """Hand ``joint`` to the engines: shrinking ones at once, growing ones when there is room.

        ``since``: apply only if no other plan was handed over after that generation (a plan
        made on another thread must not replace a newer one); returns whether it applied.
        """
        with self._lock:
            if since is not None and since != self.generation:
                return False
            self.generation += 1
            self.in_force, self.request = joint, req
            self._limit = joint.total_bytes
            self._deferred.clear()
            for e, plan in joint.plans.items():
                if joint.held_bytes(e) <= self._held(e):
                    self._hand(e, plan)
                else:
                    self._deferred[e] = plan
            self._grow()
            return True

    def before_inference(self, engine: str) -> None:
        """Called before ``engine`` infers: its growth is handed over once there is room."""
        if engine in self._deferred:
            with self._lock:
                self._grow()

    @property
    def waiting(self) -> tuple[str, ...]:
        """Engines whose larger plan waits for others to shrink first."""
        return tuple(self._deferred)

    def due(self, now: Request) -> bool:
        """With auto_tune: should the plan in force be made again for ``now``?

        When an engine's target moved by more than DRIFT since the plan was made, or the
        calibrated prediction of its configuration times its mode's margin now leaves the
        tuner's band: slower than the target (and the plan meant to meet it), or far faster
        while memory could be saved, its expected delay down by more than FASTER since the plan
        was made - otherwise the planner would choose the same plan again (the single stream's
        rule, ``auto_tune.FASTER``). A margin that moves within the
        band (a slow inference entering or leaving the recent ones) re-plans nothing.
        """
        joint, req = self.in_force, self.request
        if joint is None or req is None or req.targets is None or now.targets is None:
            return False
        for e, target in now.targets.items():
            before = req.targets.get(e)
            if before is None or abs(target - before) > DRIFT * before:
                return True
            predicted = self.engines[e].predicted_s
            plan = joint.plans[e]
            if predicted is None or e in req.fixed:
                continue
            expected = predicted * now.margin(e, plan.mode)
            if expected > target * (1 + TOLERANCE) and e not in joint.missed:
                return True
            least = self.pipelines()[e].min_budget('pipelined')
            easier = expected < plan.predicted_s * req.margin(e, plan.mode) * (1 - FASTER)
            if expected < target * LOW and plan.budget_bytes > least and easier:
                return True
        return False

    def _held(self, e: str) -> int:
        """What ``e`` may hold until its next inference: its memory now or what it was given."""
        return max(self.engines[e].weight_bytes(), self._given.get(e, 0))

    def _hand(self, e: str, plan: 'Plan') -> None:
        # the same configuration again is not handed over: the executor would read its
        # resident units in again for nothing
        if e not in self._handed or key(self._handed[e]) != key(plan):
            self.engines[e].apply_plan(plan)
        self._handed[e] = plan
        assert self.in_force is not None
        self._given[e] = self.in_force.held_bytes(e)

    def _grow(self) -> None:
        """Hand over each deferred growth the others' memory leaves room for (lock held)."""
        for e, plan in list(self._deferred.items()):
            others = sum(self._held(f) for f in self.engines if f != e)
            assert self.in_force is not None
            if others + self.in_force.held_bytes(e) <= self._limit:
                self._hand(e, plan)
                del self._deferred[e]


class StreamEngine:
    """One stream's view of a shared engine (the runner's detector): the budget goes first.

    With ``turns`` (one for all engines, while ``in_turns()`` says so) an inference waits for
    its turn across every engine, the nearest deadline first, instead of running beside
    another engine's.
    """

    def __init__(self, detector: Any, budget: SharedBudget, engine: str,
                 turns: Turns | None = None,
                 in_turns: Callable[[], bool] = lambda: False) -> None:
        self.detector = detector
        self.budget = budget
        self.engine = engine
        self._turns = turns
        self._in_turns = in_turns

    @property
    def predicted_s(self) -> float | None:
        """The engine's calibrated prediction for the configuration in force."""
        return self.detector.predicted_s

    def detect(self, rgb: 'np.ndarray', **kwargs: Any) -> list['Detection']:
        """Detect after handing the engine a plan that was waiting for room."""
        self.budget.before_inference(self.engine)
        if self._turns is None or not self._in_turns():
            return self.detector.detect(rgb, **kwargs)
        with self._turns.turn(kwargs.get('deadline')):
            return self.detector.detect(rgb, **kwargs)

    def remaining_s(self) -> float:
        """Predicted compute still to come in the engine's running inference."""
        return float(self.detector.remaining_s())

    def apply_plan(self, plan: 'Plan') -> Any:
        """Plans come from the shared budget, never from one stream's tuner."""
        raise RuntimeError('streams sharing a budget are planned jointly')

    def figures(self) -> 'EngineFigures':
        """The configuration the engine's last inference ran with and its memory now."""
        return self.detector.figures()
