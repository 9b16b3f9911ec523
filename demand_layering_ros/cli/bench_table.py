# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The benchmark's results as Markdown tables (per configuration, and against the targets)."""

from __future__ import annotations

import json
from pathlib import Path
import statistics
import sys
from typing import Any

from .bench import NOT_CONFIGURATIONS

MiB = 2 ** 20
WITHIN_PCT = 5.0   # the band for a prediction: |predicted / measured - 1| <= 5%


def _rows(rows: list[dict[str, Any]], model: str) -> dict[str, dict[str, Any]]:
    return {r['config']: r for r in rows if r['model'] == model}


def _beside(c: dict[str, dict[str, Any]]) -> str:
    b = c.get('preload_beside_reader')
    if not b:
        return '-'
    return (f'{b["alone_ms_p50"]:.0f} -> {b["latency_ms_p50"]:.0f} ({b["slowdown"]:.2f}x, '
            f'{b["reader_bps"] / 1e6:.0f})')


def _within(rows: list[dict[str, Any]], band: float = WITHIN_PCT) -> list[str]:
    """How many calibrated predictions fell within ``band``, overall and where the machine held.

    The machine held over a row when the calibration repeated after its frames predicted within
    ``band`` of the one before them; elsewhere a miss may be the machine's, not the model's.
    """
    cal = [r for r in rows if r.get('calibrated_error_pct') is not None]
    if not cal:
        return []
    held = [r for r in cal if abs(r.get('calibration_drift_pct', float('inf'))) <= band]

    def met(rs: list[dict[str, Any]]) -> str:
        return f'{sum(abs(r["calibrated_error_pct"]) <= band for r in rs)} of {len(rs)}'
    return ['', f'Calibrated predictions within {band:g}% of the measured p50: {met(cal)}; '
            f'where the machine held (the calibration after the frames within {band:g}% of the '
            f'one before): {met(held)}.']


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one line per (model, configuration), then the summary against the targets."""
    models = list(dict.fromkeys(r['model'] for r in rows))
    out = ['| model | config | weight MiB (peak) | reduction | p50 ms | p90 ms | overhead | '
           'predicted ms (profile) | error | predicted ms (calibrated) | error | '
           'calibrated after | floor ms | efficiency | RSS peak MiB |',
           '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for m in models:
        for name, r in _rows(rows, m).items():
            if name in NOT_CONFIGURATIONS:
                continue
            pred = r.get('predicted_latency_ms')
            cal = r.get('calibrated_latency_ms')
            cells = [m, name, f'{(r["weight_bytes_peak"] or 0) / MiB:.1f}',
                     f'{r.get("reduction_pct", 0):.1f}%', f'{r["latency_ms_p50"]:.0f}',
                     f'{r["latency_ms_p90"]:.0f}', f'{r.get("overhead_pct", 0):+.1f}%',
                     f'{pred:.0f}' if pred else '-',
                     f'{r["prediction_error_pct"]:+.1f}%' if pred else '-',
                     f'{cal:.0f}' if cal else '-',
                     f'{r["calibrated_error_pct"]:+.1f}%' if cal else '-',
                     f'{r["calibration_drift_pct"]:+.1f}%' if 'calibration_drift_pct' in r
                     else '-',
                     f'{r.get("floor_ms", 0):.0f}', f'{r.get("efficiency", 0):.2f}',
                     f'{r["rss_peak_bytes"] / MiB:.0f}']
            out.append('| ' + ' | '.join(cells) + ' |')
    out += ['', '| model | disk MB/s (O_DIRECT, best in the run) | compute ms (profile) | '
            'near-zero resident MiB | analytic minimum MiB | preload ms alone -> beside dd '
            '(slowdown, dd MB/s) |', '|---|---:|---:|---:|---:|---:|']
    for m in models:
        c = _rows(rows, m)
        d = c['disk']
        nz = c.get('near_zero', {})
        out.append(f'| {m} | {d["direct_read_bandwidth_bps"] / 1e6:.0f} | '
                   f'{d["profile_compute_ms"]:.0f} | '
                   f'{nz.get("resident_bytes", 0) / MiB:.1f} | '
                   f'{d["analytic_resident_bytes"] / MiB:.1f} | {_beside(c)} |')
    out += _within(rows)
    red = [_rows(rows, m)['pipelined_min']['reduction_pct'] for m in models
           if 'pipelined_min' in _rows(rows, m)]
    if red:
        out += ['', f'Average weight-memory reduction at `pipelined_min` over {len(red)} models: '
                f'{statistics.mean(red):.1f}%.']
    return '\n'.join(out) + '\n'


def main(argv: list[str] | None = None) -> int:
    """``python -m demand_layering_ros.cli.bench_table RESULTS.json``: print the tables."""
    args = argv if argv is not None else sys.argv[1:]
    print(table(json.loads(Path(args[0]).read_text())), end='')
    return 0


if __name__ == '__main__':
    sys.exit(main())
