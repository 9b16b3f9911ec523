# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The auto-tuner: least memory for the deadline, and re-planning when measurements drift."""

from demand_layering_ros.engine.simulate import Pipeline
from demand_layering_ros.realtime.auto_tune import AutoTuner, WINDOW

# four 10-byte units, reads 2 s, compute 1 s each: all-resident takes 4 s, the minimum 9 s
IO_BOUND = Pipeline((10,) * 4, (2.0,) * 4, (0, 1, 2, 3), ((),) * 4, (1.0,) * 4)


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_plans_least_memory_for_the_target_within_the_cap():
    tuner = AutoTuner(IO_BOUND, FakeClock())
    assert tuner.plan(100.0, None).budget_bytes == 10          # anything meets it
    assert tuner.plan(4.0, None).mode == 'preload'              # only all-resident meets 4 s
    capped = tuner.plan(4.0, 30)
    assert capped.budget_bytes <= 30 and not tuner.state.met    # the fastest within the cap


def test_sustained_drift_triggers_one_replan_with_a_corrected_target():
    clock = FakeClock()
    tuner = AutoTuner(IO_BOUND, clock)
    plan = tuner.plan(7.5, None)
    assert plan.predicted_s <= 7.5
    for _ in range(WINDOW):
        assert not tuner.observe(plan.predicted_s * 1.05)        # within tolerance
    clock.t = 10.0
    results = [tuner.observe(plan.predicted_s * 1.5) for _ in range(WINDOW)]
    assert results.index(True) == WINDOW // 2  # once most of the window is slow (median)
    assert tuner.state.ratio == 1.5
    faster = tuner.plan(7.5, None)  # aims at 7.5 / 1.5 = 5 s predicted
    assert faster.predicted_s <= 5.0 < plan.predicted_s
    assert faster.budget_bytes > plan.budget_bytes
    assert tuner.predicted_s() == faster.predicted_s * 1.5


def test_no_replan_storm():
    clock = FakeClock()
    tuner = AutoTuner(IO_BOUND, clock)
    plan = tuner.plan(7.5, None)
    assert not any(tuner.observe(plan.predicted_s * 2) for _ in range(3 * WINDOW))  # clock still
    clock.t = 6.0
    assert tuner.observe(plan.predicted_s * 2)
