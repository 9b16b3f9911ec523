# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The planner: turns a memory budget or a delay target into a configuration, from a profile.

For a budget it keeps resident the units whose reads do not hide behind the compute before them
(greedily, by the stall the simulator attributes to each unit, one unit at a time while the
prediction improves); for a delay target it searches the least budget whose plan meets it. The
curve is the Pareto front of (weight bytes, predicted delay) from the minimum to all-resident.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .simulate import Pipeline, simulate

CANDIDATES = 4         # units tried per greedy step (those with the largest stalls)
GAIN_S = 1e-5          # a resident unit must save at least this much predicted delay


@dataclass(frozen=True)
class Plan:
    """A configuration and what the simulator predicts for it."""

    mode: str
    budget_bytes: int
    resident: frozenset[int]
    prefetch_depth: int | None
    predicted_s: float
    peak_bytes: int

    def to_json(self) -> dict[str, Any]:
        """Plain data."""
        return {'mode': self.mode, 'budget_bytes': self.budget_bytes,
                'resident': sorted(self.resident), 'prefetch_depth': self.prefetch_depth,
                'predicted_ms': self.predicted_s * 1e3, 'peak_bytes': self.peak_bytes}


def plan_in_mode(p: Pipeline, mode: str, budget: int,
                 resident: frozenset[int] = frozenset()) -> Plan:
    """A fixed configuration with its prediction (no search)."""
    pred = simulate(p, mode, budget, resident)
    return Plan(mode, budget, resident, None, pred.latency_s, pred.peak_bytes)


def plan_for_budget(p: Pipeline, budget: int) -> Plan:
    """The configuration with the least predicted delay within ``budget`` bytes.

    ValueError when the budget is below the sequential minimum (nothing can run in it).
    """
    total = p.min_budget('preload')
    if budget >= total:
        return plan_in_mode(p, 'preload', total, frozenset(range(len(p.nbytes))))
    if budget < p.min_budget('pipelined'):
        if budget < p.min_budget('sequential'):
            raise ValueError(f'budget {budget} bytes is below the minimum of any mode '
                             f'({p.min_budget("sequential")} bytes, sequential)')
        return plan_in_mode(p, 'sequential', budget)
    resident: frozenset[int] = frozenset()
    pred = simulate(p, 'pipelined', budget, resident)
    while True:
        stall_of: dict[int, float] = {}
        for u, s in zip(p.visits, pred.stall_s):
            if s > 0 and u not in resident:
                stall_of[u] = stall_of.get(u, 0.0) + s
        best = None
        for u in sorted(stall_of, key=stall_of.__getitem__, reverse=True)[:CANDIDATES]:
            trial = resident | {u}
            if p.min_budget('pipelined', trial) > budget:
                continue
            cand = simulate(p, 'pipelined', budget, trial)
            if cand.latency_s < pred.latency_s - GAIN_S and (
                    best is None or cand.latency_s < best[1].latency_s):
                best = (trial, cand)
        if best is None:
            break
        resident, pred = best
    return Plan('pipelined', budget, resident, None, pred.latency_s, pred.peak_bytes)


def plan_for_deadline(p: Pipeline, target_s: float, max_budget: int | None = None,
                      resolution: int | None = None) -> tuple[Plan, bool]:
    """The least budget whose plan's predicted delay is at most ``target_s``.

    The budget is searched to within ``resolution`` bytes (default 1/512 of the range).
    Returns (plan, met). When no budget up to ``max_budget`` meets the target, the plan at
    ``max_budget`` (the fastest allowed) is returned with met False.
    """
    top = p.min_budget('preload')
    hi = min(top, max_budget if max_budget is not None else top)
    best = plan_for_budget(p, hi)
    if best.predicted_s > target_s:
        return best, False
    lo = p.min_budget('sequential')
    low_plan = plan_for_budget(p, lo)
    if low_plan.predicted_s <= target_s:
        return low_plan, True
    step = resolution or max(1, (hi - lo) // 512)
    while hi - lo > step:  # invariant: plan(hi) meets the target, plan(lo) does not
        mid = (lo + hi) // 2
        plan = plan_for_budget(p, mid)
        if plan.predicted_s <= target_s:
            hi, best = mid, plan
        else:
            lo = mid
    return best, True


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
