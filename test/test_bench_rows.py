# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The benchmark's rows: stalls per measured frame, calibration before and after, the summary."""

from __future__ import annotations

import pytest
import torch

from demand_layering_ros.cli.bench import _against_preload, _summarise
from demand_layering_ros.cli.bench_table import table
from demand_layering_ros.cli.main import _calibrate
from demand_layering_ros.engine import DemandLayeredModel, empty_weights, LayerStore
from engine.toy import make_toy, Toy


def lines(latency_ms: float, before: float, after: float | None) -> list[dict]:
    """What ``run --json --profile P --calibrate N`` prints: prediction, frames, stats, after."""
    out: list[dict] = [{'prediction': {'profile_ms': before, 'calibrated_ms': before}}]
    out += [{'frame': i, 'warmup': i < 2, 'latency_ms': latency_ms} for i in range(12)]
    out.append({'stats': {'stall_seconds': 0.06, 'stall_seconds_per_inference': 0.005,
                          'inferences': 20, 'weight_bytes_peak': 2**20, 'rss_peak_bytes': 2**27}})
    if after is not None:
        out.append({'prediction_after': {'calibrated_ms': after}})
    return out


def row(config: str, mode: str, latency_ms: float, before: float, after: float | None) -> dict:
    return {'model': 'm', 'config': config, 'mode': mode, 'predicted_latency_ms': before,
            'resident_bytes': 0, **_summarise(lines(latency_ms, before, after))}


def test_stalls_count_the_measured_frames_only_and_drift_is_after_over_before():
    r = row('sequential_min', 'sequential', 100.0, 103.0, 110.21)
    assert r['stall_ms_per_frame'] == 5.0     # not 60 ms over the 20 inferences of the process
    assert r['latency_ms_p50'] == 100.0
    _against_preload([r], 2**24, 1e9)
    assert r['calibrated_error_pct'] == pytest.approx(3.0)
    assert r['calibration_drift_pct'] == pytest.approx(7.0)


def test_the_summary_counts_misses_where_the_machine_held_apart():
    rows = [row('preload', 'preload', 100.0, 102.0, 103.0),              # held, within
            row('sequential_min', 'sequential', 200.0, 240.0, 200.0),    # moved, a miss
            row('pipelined_min', 'pipelined', 150.0, 170.0, 168.0),      # held, a miss
            row('near_zero', 'pipelined', 110.0, 109.0, None)]           # not repeated
    _against_preload(rows, 2**24, 1e9)
    text = table(rows + [{'model': 'm', 'config': 'disk', 'direct_read_bandwidth_bps': 1e9,
                          'profile_compute_ms': 100.0, 'analytic_resident_bytes': 0}])
    assert ('within 5% of the measured p50: 2 of 4; where the machine held (the calibration '
            'after the frames within 5% of the one before): 1 of 2.') in text
    assert '| +20.0% | -16.7% |' in text   # the error, then the drift


class Recorder:
    def __init__(self, dl: DemandLayeredModel) -> None:
        self.dl, self.seen = dl, []

    def observe(self, rec) -> None:
        self.seen.append((rec.config.mode, self.dl.config.budget_bytes))


def test_calibration_takes_turns_at_the_minimums_and_restores_the_configuration(tmp_path):
    x = torch.randn(1, 3, 16, 16)
    store = LayerStore.export(make_toy(), tmp_path / 'toy.dls', (x,))
    with empty_weights():
        skeleton = Toy()
    dl = DemandLayeredModel(skeleton, store, mode='pipelined')
    dl.reconfigure(budget_bytes=dl.min_budget('pipelined') + 8192)
    target = dl.config
    cal = Recorder(dl)
    _calibrate(dl, (x,), cal, 4)
    assert [m for m, _b in cal.seen] == ['sequential', 'pipelined'] * 2
    assert [b for _m, b in cal.seen] == [dl.min_budget('sequential'),
                                         dl.min_budget('pipelined')] * 2
    assert dl.config == target
    dl.close()
