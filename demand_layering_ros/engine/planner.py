# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The planner: turns a memory budget or a delay target into a configuration, from a profile.

For a budget it tries resident sets of a few shapes and improves the best greedily, every
candidate judged by the simulator (which replays the executor's own plan); for a delay target it
searches the least budget whose plan meets it. The curve is the Pareto front of (weight bytes,
predicted delay) from the minimum to all-resident. Several engines under one budget get a plan
each (``joint_plan`` for a ``Request``): the budget split among them, or with targets the least
total memory that meets every one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Mapping

from .policy import weight_bytes_of
from .simulate import Pipeline, Prediction, simulate
from .sizes import mib

CANDIDATES = 4         # units tried per greedy step (those with the largest stalls)
GAIN_S = 1e-5          # a resident unit must save at least this much predicted delay
GREEDY_STEPS = 8       # greedy improvements of the best shaped resident set
QUICK_STEPS = 2        # ... while bisecting for a deadline (the answer gets the full search)
FRACTIONS = (0.25, 0.5, 0.75, 1.0)   # of the memory beyond the pipelined minimum


@dataclass(frozen=True)
class Plan:
    """A configuration and what the simulator predicts for it."""

    mode: str
    budget_bytes: int
    resident: frozenset[int]
    prefetch_depth: int | None
    predicted_s: float
    peak_bytes: int
    resident_bytes: int = 0

    def held_bytes(self, lanes: int = 1) -> int:
        """Weight memory of ``lanes`` lanes running this plan (its resident units once)."""
        return weight_bytes_of(self.budget_bytes, self.resident_bytes, lanes)

    def to_json(self) -> dict[str, Any]:
        """Plain data."""
        return {'mode': self.mode, 'budget_bytes': self.budget_bytes,
                'resident': sorted(self.resident), 'prefetch_depth': self.prefetch_depth,
                'predicted_ms': self.predicted_s * 1e3, 'peak_bytes': self.peak_bytes}


def plan_in_mode(p: Pipeline, mode: str, budget: int,
                 resident: frozenset[int] = frozenset()) -> Plan:
    """A fixed configuration with its prediction (no search)."""
    pred = simulate(p, mode, budget, resident)
    return Plan(mode, budget, resident, None, pred.latency_s, pred.peak_bytes,
                sum(p.nbytes[u] for u in resident))


def plan_for_budget(p: Pipeline, budget: int, refine: int = GREEDY_STEPS) -> Plan:
    """The configuration with the least predicted delay within ``budget`` bytes.

    Pipelined budgets try resident sets of a few shapes - none, the first units (compute runs
    on them while the disk reads ahead), the last units, the units with the most bytes per
    second of compute, the units whose visits stall - each filling a quarter to all of the
    memory beyond the pipelined minimum; the best is then improved greedily (``refine`` steps,
    a unit with a large stall made resident at a time, while the prediction improves).
    ValueError when the budget is below the sequential minimum (nothing can run in it).
    """
    total = p.min_budget('preload')
    if budget >= total:
        return plan_in_mode(p, 'preload', total, frozenset(range(len(p.nbytes))))
    floor = p.min_budget('pipelined')
    if budget < floor:
        least = p.min_budget('sequential')
        if budget < least:
            asked, shown = mib(budget, least, exact={least})
            raise ValueError(f'budget {asked} is below the minimum of any mode '
                             f'({shown}, sequential)')
        return plan_in_mode(p, 'sequential', budget)
    base = simulate(p, 'pipelined', budget)
    best: tuple[frozenset[int], Prediction] = (frozenset(), base)
    for resident in _shapes(p, budget - floor, base):
        if resident and p.min_budget('pipelined', resident) <= budget:
            pred = simulate(p, 'pipelined', budget, resident)
            if pred.latency_s < best[1].latency_s - GAIN_S:
                best = (resident, pred)
    resident, pred = best
    for _ in range(refine):
        stall_of: dict[int, float] = {}
        for u, st in zip(p.visits, pred.stall_s):
            if st > 0 and u not in resident:
                stall_of[u] = stall_of.get(u, 0.0) + st
        step = None
        for u in sorted(stall_of, key=stall_of.__getitem__, reverse=True)[:CANDIDATES]:
            trial = resident | {u}
            if p.min_budget('pipelined', trial) > budget:
                continue
            cand = simulate(p, 'pipelined', budget, trial)
            if cand.latency_s < pred.latency_s - GAIN_S and (
                    step is None or cand.latency_s < step[1].latency_s):
                step = (trial, cand)
        if step is None:
            break
        resident, pred = step
    return Plan('pipelined', budget, resident, None, pred.latency_s, pred.peak_bytes,
                sum(p.nbytes[u] for u in resident))


def least_held(p: Pipeline, lanes: int = 1) -> Plan:
    """The pipelined plan whose ``lanes`` lanes hold the least together.

    One lane: the pipelined minimum. More: the largest units made resident, one at a time,
    while that lowers what they hold (each lane's ring need not hold a resident unit, and the
    unit is held once).
    """
    if lanes == 1:
        return plan_for_budget(p, p.min_budget('pipelined'))
    resident: frozenset[int] = frozenset()
    best = plan_in_mode(p, 'pipelined', p.min_budget('pipelined'))
    for u in sorted(range(len(p.nbytes)), key=lambda i: -p.nbytes[i]):
        trial = resident | {u}
        held = weight_bytes_of(p.min_budget('pipelined', trial),
                               sum(p.nbytes[i] for i in trial), lanes)
        if held >= best.held_bytes(lanes):
            break
        resident = trial
        best = plan_in_mode(p, 'pipelined', p.min_budget('pipelined', trial), trial)
    return best


def plan_within(p: Pipeline, total: int, lanes: int = 1) -> Plan:
    """The best plan whose ``lanes`` lanes hold at most ``total`` bytes together.

    Lanes share the resident units, so each may run with more than ``total / lanes``: from
    the least they can hold (``least_held``), the largest lane budget whose plan fits is
    bisected (to 1/128 of the range), each step a quick plan, the answer refined. ValueError
    when ``total`` is below that least.
    """
    if lanes == 1 or total >= p.min_budget('preload'):
        return plan_for_budget(p, total)
    floor = least_held(p, lanes)
    if floor.held_bytes(lanes) > total:
        asked, least = mib(total, floor.held_bytes(lanes), exact={floor.held_bytes(lanes)})
        raise ValueError(f'{asked} cannot hold {lanes} lanes (at least {least})')
    fits = [floor]
    lo, hi = floor.budget_bytes, min(total, p.min_budget('preload') - 1)
    even = total // lanes
    if even >= p.min_budget('pipelined'):   # an even share fits whatever it makes resident
        fits.append(plan_for_budget(p, even))
        lo = max(lo, even)
    step = max(1, (hi - lo) // 128)
    while hi - lo > step:   # invariant: a plan for lo fits (one of ``fits``)
        mid = (lo + hi) // 2
        quick = plan_for_budget(p, mid, refine=QUICK_STEPS)
        if quick.held_bytes(lanes) <= total:
            lo = mid
            fits.append(quick)
        else:
            hi = mid
    fits += [q for q in [plan_for_budget(p, lo)] if q.held_bytes(lanes) <= total]
    # the fastest; of equals, the one holding the most (more read-ahead room)
    return min(fits, key=lambda q: (q.predicted_s, -q.held_bytes(lanes)))


def _shapes(p: Pipeline, spare: int, base: Prediction) -> list[frozenset[int]]:
    """Resident sets of a few shapes, each filling fractions of ``spare`` bytes."""
    first: dict[int, int] = {}
    compute: dict[int, float] = {}
    stall: dict[int, float] = {}
    for k, u in enumerate(p.visits):
        first.setdefault(u, k)
        compute[u] = compute.get(u, 0.0) + p.compute_s[k]
        stall[u] = stall.get(u, 0.0) + base.stall_s[k]
    units = sorted(first, key=first.__getitem__)
    orders = [units, units[::-1],
              sorted(units, key=lambda u: -p.read_s[u] / max(compute[u], 1e-6)),
              sorted((u for u in units if stall[u] > 0), key=lambda u: -stall[u])]
    out: list[frozenset[int]] = []
    for order in orders:
        for fraction in FRACTIONS:
            quota, chosen = spare * fraction, []
            for u in order:
                if p.nbytes[u] <= quota:
                    chosen.append(u)
                    quota -= p.nbytes[u]
            out.append(frozenset(chosen))
    return list(dict.fromkeys(out))


def plan_for_deadline(p: Pipeline, target_s: float, max_budget: int | None = None,
                      resolution: int | None = None,
                      correction: Callable[[str], float] | None = None) -> tuple[Plan, bool]:
    """The least budget whose plan's predicted delay is at most ``target_s``.

    ``correction(mode)`` scales a plan's prediction before it is compared (what a running
    node measured against the model, per mode). The budget is bisected (each step a quick
    plan, the answer refined) to within ``resolution`` bytes (default 1/128 of the range).
    Returns (plan, met). When no budget up to ``max_budget`` meets the target, the plan at
    ``max_budget`` (the fastest allowed) is returned with met False.
    """
    def meets(plan: Plan) -> bool:
        return plan.predicted_s * (correction(plan.mode) if correction else 1.0) <= target_s

    top = p.min_budget('preload')
    hi = min(top, max_budget if max_budget is not None else top)
    best = plan_for_budget(p, hi)
    if not meets(best):
        return best, False
    lo = p.min_budget('sequential')
    low_plan = plan_for_budget(p, lo)
    if meets(low_plan):
        return low_plan, True
    step = resolution or max(1, (hi - lo) // 128)
    while hi - lo > step:  # invariant: plan(hi) meets the target, plan(lo) does not
        mid = (lo + hi) // 2
        plan = plan_for_budget(p, mid, refine=QUICK_STEPS)
        if meets(plan):
            hi, best = mid, plan
        else:
            lo = mid
    final = plan_for_budget(p, hi)
    return (final if meets(final) and final.predicted_s <= best.predicted_s else best), True


def pareto_curve(p: Pipeline, points: int = 24) -> list[Plan]:
    """Plans from the sequential minimum to all-resident; only those no other plan beats."""
    lo, total = p.min_budget('pipelined'), p.min_budget('preload')
    budgets = {p.min_budget('sequential'), lo, total}
    if total > lo:
        ratio = (total / lo) ** (1 / max(1, points - 1))
        budgets |= {min(total, int(lo * ratio ** i)) for i in range(points)}
    plans = sorted((plan_for_budget(p, b) for b in budgets), key=lambda q: q.budget_bytes)
    front: list[Plan] = []
    for plan in plans:
        if not front or plan.predicted_s < front[-1].predicted_s:
            front.append(plan)
    return front


def analytic_resident_bytes(p: Pipeline, bandwidth_bps: float) -> int:
    """Bytes that must stay resident for reads to hide entirely behind compute.

    Total bytes minus what the disk can stream during the whole compute time (0 when compute-
    bound); the near-zero configuration of an I/O-bound model cannot hold less.
    """
    return max(0, int(p.total_bytes - p.compute_total_s * bandwidth_bps))


@dataclass(frozen=True)
class Demand:
    """One engine (a model serving one or more streams) as the joint planner sees it."""

    name: str
    pipeline: Pipeline
    target_s: float | None = None     # the delay it must meet (auto-tune), None: no target
    budget_bytes: int | None = None   # a budget fixed by the user (``<stream>.memory_budget_mb``)
    lanes: int = 1                    # inferences side by side (engine.lanes)
    # what a running node measured against the model, per mode (as plan_for_deadline takes it)
    correction: Callable[[str], float] | None = field(default=None, compare=False)

    def predicted_s(self, plan: Plan) -> float:
        """A plan's predicted delay, corrected for its mode."""
        return plan.predicted_s * (self.correction(plan.mode) if self.correction else 1.0)

    def least_mode(self) -> str:
        """The mode it holds the least in.

        Sequential where auto_tune may choose any mode (a target, one lane; a single stream's
        tuner plans within its cap the same way), else pipelined.
        """
        return 'sequential' if self.target_s is not None and self.lanes == 1 else 'pipelined'

    def floor(self, mode: str | None = None) -> Plan:
        """Its plan holding the least in ``mode`` (default ``least_mode``).

        Pipelined: ``least_held`` (with lanes, the largest units resident while that helps).
        """
        if (mode or self.least_mode()) == 'sequential':
            return plan_in_mode(self.pipeline, 'sequential',
                                self.pipeline.min_budget('sequential'))
        return least_held(self.pipeline, self.lanes)

    def floor_bytes(self) -> int:
        """What its lanes hold at the least."""
        if self.lanes == 1:   # the mode's minimum, without planning for it
            return self.pipeline.min_budget(self.least_mode())
        return self.floor().held_bytes(self.lanes)


@dataclass(frozen=True)
class JointPlan:
    """A plan per engine within one budget, and the engines whose target is not met."""

    plans: dict[str, Plan]
    missed: tuple[str, ...]
    lanes: Mapping[str, int] = field(default_factory=dict)   # engine -> lanes (default 1)

    def held_bytes(self, engine: str) -> int:
        """Weight memory of one engine's lanes under its plan."""
        return self.plans[engine].held_bytes(self.lanes.get(engine, 1))

    @property
    def total_bytes(self) -> int:
        """Weight memory of all engines together."""
        return sum(self.held_bytes(e) for e in self.plans)


def reserved(p: Pipeline, fixed_bytes: int) -> int:
    """What an engine's fixed budget takes from the joint budget: no more than its model."""
    return min(fixed_bytes, p.min_budget('preload'))


def counted(d: Demand) -> int:
    """What an engine takes of a joint budget at the least (``reserved`` or its floor)."""
    return (reserved(d.pipeline, d.budget_bytes) if d.budget_bytes is not None
            else d.floor_bytes())


def cannot_hold(budget: int, demands: list[Demand]) -> str:
    """Why ``budget`` cannot hold ``demands``: what each engine counts for, and in all.

    A fixed budget is given as asked and, where its engine's whole model is less, as what it is
    counted as (a plan holds no more); every other engine counts its least memory (its
    ``floor_bytes``: the sequential minimum where auto_tune may choose it).
    Every engine is named (``check_request`` and ``split_budget`` refuse in these words).
    """
    counts = [counted(d) for d in demands]
    fixed = [d.budget_bytes for d in demands if d.budget_bytes is not None]
    total, need, *shown = mib(budget, sum(counts), *counts, *fixed)
    asked = iter(shown[len(demands):])
    parts = []
    for d, n, count in zip(demands, counts, shown):
        if d.budget_bytes is None:
            least = (f'{d.least_mode()} minimum' if d.lanes == 1
                     else f'least for its {d.lanes} lanes')
            parts.append(f'{d.name}: {least} {count}')
        elif n < d.budget_bytes:
            parts.append(f'{d.name}: fixed budget {next(asked)}, counted as its whole model, '
                         f'{count} (no plan holds more)')
        else:
            parts.append(f'{d.name}: fixed budget {next(asked)}')
    return (f'budget {total} cannot hold the {need} the engines need at the least - '
            + '; '.join(parts))


def split_budget(demands: list[Demand], budget: int) -> JointPlan:
    """Split ``budget`` among engines without targets.

    Fixed budgets first; every other engine gets its pipelined minimum (per lane) and what is
    left in proportion to what it needs beyond that (its whole model minus its minimum); each
    engine then gets the best plan for its share.

    ValueError when the budget cannot hold the fixed budgets and the other minimums.
    """
    fixed = {d.name: reserved(d.pipeline, d.budget_bytes) for d in demands
             if d.budget_bytes is not None}
    free = [d for d in demands if d.budget_bytes is None]
    floors = {d.name: d.floor_bytes() for d in free}
    wants = {d.name: max(0, d.pipeline.min_budget('preload') - floors[d.name]) for d in free}
    spare = budget - sum(fixed.values()) - sum(floors.values())
    if spare < 0:
        raise ValueError(cannot_hold(budget, demands))
    total_want = sum(wants.values())
    shares = dict(fixed)
    for d in free:
        extra = spare * wants[d.name] // total_want if total_want else 0
        shares[d.name] = floors[d.name] + min(extra, wants[d.name])
    plans = {d.name: plan_within(d.pipeline, shares[d.name], d.lanes) for d in demands}
    return JointPlan(plans, (), _lanes(demands))


def plan_jointly(demands: list[Demand], max_total: int | None = None) -> JointPlan:
    """The least total memory that meets every engine's target within ``max_total``.

    Each engine's least plan for its target is independent of the others' (they share no
    weights); when the sum does not fit, the engines cheapest to satisfy keep their plans and
    the others fall back to their minimums, so the fewest miss (and are named).
    """
    least = {d.name: (plan_for_deadline(d.pipeline, d.target_s, correction=d.correction)[0]
                      if d.target_s is not None else d.floor()) for d in demands}
    held = {d.name: least[d.name].held_bytes(d.lanes) for d in demands}
    met = {d.name: d.target_s is None or d.predicted_s(least[d.name]) <= d.target_s
           for d in demands}
    if max_total is None or sum(held.values()) <= max_total:
        return JointPlan(least, tuple(n for n, ok in met.items() if not ok), _lanes(demands))
    # from the pipelined minimums where they fit (faster), else the least each may hold
    floor = {d.name: d.floor('pipelined') for d in demands}
    if sum(f.held_bytes(d.lanes) for d, f in zip(demands, floor.values())) > max_total:
        floor = {d.name: d.floor() for d in demands}
    floor_held = {d.name: floor[d.name].held_bytes(d.lanes) for d in demands}
    plans = dict(floor)
    room = max_total - sum(floor_held.values())
    if room < 0:
        total, need = mib(max_total, sum(floor_held.values()))
        raise ValueError(f'{total} cannot hold the engines\' minimums ({need})')

    def extra(d: Demand) -> int:
        return held[d.name] - floor_held[d.name]

    for d in sorted(demands, key=extra):   # the cheapest to satisfy first
        if met[d.name] and extra(d) <= room:
            plans[d.name] = least[d.name]
            room -= extra(d)
    missed = [d for d in demands if d.target_s is not None
              and d.predicted_s(plans[d.name]) > d.target_s]
    for d in sorted(missed, key=extra):   # what is left goes to those that still miss
        if room <= 0:
            break
        plans[d.name] = plan_within(d.pipeline, floor_held[d.name] + room, d.lanes)
        room -= plans[d.name].held_bytes(d.lanes) - floor_held[d.name]
    return JointPlan(plans, tuple(d.name for d in missed
                                  if d.predicted_s(plans[d.name]) > (d.target_s or 0.0)),
                     _lanes(demands))


def _lanes(demands: list[Demand]) -> dict[str, int]:
    return {d.name: d.lanes for d in demands if d.lanes != 1}


@dataclass(frozen=True)
class Request:
    """What the joint plan is made for."""

    budget_bytes: int | None      # all engines together; None: their minimums (auto_tune: no cap)
    fixed: Mapping[str, int] = field(default_factory=dict)   # engine -> its fixed budget
    targets: Mapping[str, float] | None = None   # engine -> inference time (s); auto_tune only
    # engine -> mode -> what a plan's prediction is scaled by: measured / predicted at the
    # tuner's quantile ('': every mode's, for a mode not measured yet)
    margins: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def margin(self, engine: str, mode: str) -> float:
        """The margin of ``engine``'s plans in ``mode`` (1.0: nothing measured)."""
        return mode_margin(self.margins.get(engine, {}), mode)


def mode_margin(margins: Mapping[str, float], mode: str) -> float:
    """A mode's margin of one engine's: its own, all modes' ('') until it ran, else 1.0."""
    return margins.get(str(mode), margins.get('', 1.0))


def check_request(pipelines: Mapping[str, Pipeline], req: Request,
                  lanes: Mapping[str, int] | None = None) -> None:
    """Why ``joint_plan`` cannot plan ``req`` (a ValueError), found without a search.

    A fixed budget below its engine's least, or a budget that cannot hold the fixed budgets
    (each counted up to its whole model: a plan holds no more) and every other engine's least
    memory (``Demand.floor_bytes``: with targets, in any mode).
    """
    lanes = lanes or {}
    for e, b in req.fixed.items():
        n = lanes.get(e, 1)
        least = (pipelines[e].min_budget('sequential') if n == 1
                 else least_held(pipelines[e], n).held_bytes(n))
        if b < least:
            asked, at_least = mib(b, least, exact={least})
            raise ValueError(f'engine {e}: fixed budget {asked} is below its minimum of '
                             f'{at_least}')
    if req.budget_bytes is None:
        return
    targets = req.targets or {}
    demands = [Demand(e, p, targets.get(e), req.fixed.get(e), lanes.get(e, 1))
               for e, p in pipelines.items()]
    if sum(counted(d) for d in demands) > req.budget_bytes:
        raise ValueError(cannot_hold(req.budget_bytes, demands))


def joint_plan(pipelines: Mapping[str, Pipeline], req: Request,
               lanes: Mapping[str, int] | None = None) -> JointPlan:
    """The plan per engine for ``req``; ValueError saying why when the budget cannot hold it.

    ``lanes``: engines running several inferences side by side (engine.lanes), whose budget
    counts each lane's streamed memory and the resident units once.
    """
    check_request(pipelines, req, lanes)
    lanes = lanes or {}
    if req.targets is None:
        demands = [Demand(e, p, budget_bytes=req.fixed.get(e), lanes=lanes.get(e, 1))
                   for e, p in pipelines.items()]
        budget = req.budget_bytes
        if budget is None:   # 0: every engine at its pipelined minimum (or its fixed budget)
            budget = sum(req.fixed.get(e, d.floor_bytes()) for e, d in zip(pipelines, demands))
        return split_budget(demands, budget)
    # engines with a fixed budget keep it; the others share what is left, planned jointly
    plans = {e: plan_within(pipelines[e], b, lanes.get(e, 1)) for e, b in req.fixed.items()}
    missed = [e for e, p in plans.items() if p.predicted_s * req.margin(e, p.mode)
              > req.targets[e]]
    free = [Demand(e, p, req.targets[e], lanes=lanes.get(e, 1),
                   correction=partial(req.margin, e))
            for e, p in pipelines.items() if e not in req.fixed]
    if free:
        room = (None if req.budget_bytes is None
                else req.budget_bytes - sum(reserved(pipelines[e], b)
                                            for e, b in req.fixed.items()))
        rest = plan_jointly(free, room)
        plans.update(rest.plans)
        missed += rest.missed
    return JointPlan({e: plans[e] for e in pipelines}, tuple(missed),
                     {e: n for e, n in lanes.items() if n != 1})
