# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The demo's live-tuning scene without ROS: curve points, parameters, the table line, the plot."""

from __future__ import annotations

from demand_layering_ros.cli.demo_tuning import middle, Phase, plan_values, plot, report
from demand_layering_ros.engine.planner import Plan

MiB = 2 ** 20


def plan(mode: str, mib: float, resident=(), ms: float = 100.0) -> Plan:
    return Plan(mode, int(mib * MiB), frozenset(resident), None, ms / 1e3, int(mib * MiB))


def frames(t0: float, n: int, inference: float, weight_mib: float, deadline: float = 1000.0,
           missed: int = 0) -> list[dict]:
    return [{'t': t0 + 0.3 * i, 'inference_ms': inference + (i % 3), 'latency_ms':
             inference + 20 + (i % 3), 'predicted_ms': inference * 0.95,
             'deadline_ms': deadline, 'missed': i < missed, 'budget_bytes': int(weight_mib * MiB),
             'weight_bytes': int(weight_mib * MiB), 'mode': 'pipelined', 'resident_units': 0,
             'auto_tune': False} for i in range(n)]


def test_the_middle_point_is_the_nearest_to_the_geometric_middle_of_the_memory_range():
    curve = [plan('sequential', 3), plan('pipelined', 6), plan('pipelined', 14),
             plan('pipelined', 30), plan('preload', 74)]
    assert middle(curve).budget_bytes == 14 * MiB   # sqrt(3 * 74) = 14.9


def test_a_plan_becomes_the_parameters_that_run_it_exactly():
    names = ('backbone.0', 'backbone.1', 'head')
    assert plan_values(plan('pipelined', 14, {2, 0}), names) == {
        'execution_mode': 'pipelined', 'memory_budget_mb': 14.0,
        'resident_units': ['backbone.0', 'head']}
    # preload holds every unit: they are not named, and an empty list is [''] for ROS
    assert plan_values(plan('preload', 74, {0, 1, 2}), names)['resident_units'] == ['']
    assert plan_values(plan('sequential', 3), names)['resident_units'] == ['']


def test_one_line_per_phase_says_budget_memory_delay_and_misses(capsys):
    p = Phase('auto_tune, deadline 290 ms', 'x', {'auto_tune': True, 'deadline_ms': 290.0},
              0.0, frames(0.0, 12, 250.0, 20.0, 290.0, missed=3))
    report(p)
    line = capsys.readouterr().out
    assert line.startswith('[demo] auto_tune, deadline 290 ms')
    assert ' 20.0 MiB ' in line and ' 251 ms ' in line and '3/12 at 290 ms' in line


def test_the_plot_is_written_also_with_a_frame_far_above_the_rest(tmp_path):
    phases = [Phase('minimum', 'minimum\n3.1 MiB', {'auto_tune': False}, 0.0,
                    frames(0.5, 10, 500.0, 3.1)),
              Phase('middle', 'middle\n14.6 MiB', {'auto_tune': False}, 4.0,
                    frames(4.5, 10, 300.0, 14.6)),
              Phase('whole', 'whole\n74.3 MiB', {'auto_tune': False}, 8.0,
                    frames(8.5, 10, 200.0, 74.3)),
              Phase('auto', 'auto_tune\n290 ms', {'auto_tune': True, 'deadline_ms': 290.0},
                    12.0, frames(12.5, 10, 250.0, 40.0, 290.0, missed=2))]
    phases[2].frames[0]['inference_ms'] = 1800.0   # the first frame reads 74 MiB in
    out = tmp_path / 'tuning.png'
    plot(phases, out, 'model', int(74.3 * MiB))
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and out.stat().st_size > 20_000
