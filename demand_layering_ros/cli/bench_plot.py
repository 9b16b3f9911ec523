# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The memory-delay plot of a benchmark: the planner's curve and the measured points."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .bench import NOT_CONFIGURATIONS

MARKERS = {'preload': 's', 'sequential_min': 'v', 'pipelined_min': 'o', 'near_zero': '*',
           'accelerate_disk': 'x'}


def plot(rows: list[dict[str, Any]], out: Path) -> None:
    """One panel per model: predicted Pareto curve (line) and measured configurations (marks)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter
    models = [r['model'] for r in rows if r['config'] == 'disk']
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.6), squeeze=False)
    for ax, model in zip(axes[0], models):
        disk = next(r for r in rows if r['model'] == model and r['config'] == 'disk')
        curve = disk['curve']
        ax.plot([c['budget_bytes'] / 2**20 for c in curve], [c['predicted_ms'] for c in curve],
                '-', color='0.5', label='planner (predicted)')
        for r in rows:
            if (r['model'] != model or r['config'] in NOT_CONFIGURATIONS
                    or not r.get('weight_bytes_peak')):
                continue
            ax.plot(r['weight_bytes_peak'] / 2**20, r['latency_ms_p50'],
                    MARKERS.get(r['config'], '.'), label=r['config'], markersize=8)
        ax.set_xscale('log')
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(model, fontsize=9)
        ax.set_xlabel('weight memory (MiB, log)')
        ax.set_ylabel('latency p50 (ms)')
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
