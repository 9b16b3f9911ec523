# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The demo's live-tuning scene: the memory/delay tradeoff, stepped by hand, then auto-tuned.

While the camera bag loops at its own 30 Hz, the scene changes the running node's parameters
over the parameter service (as ``ros2 param set`` does): ``memory_budget_mb`` at three points of
the planner's curve (its minimum, a middle point, the whole model), then ``auto_tune`` with two
deadlines derived from what the first phases measured. Every processed frame comes back on
``~/frame_stats``; the scene prints one line per phase and draws ``tuning.png``: inference
time and weight memory per frame over time, the prediction dashed, the phases marked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import json
from pathlib import Path
import threading
import time
from typing import Any

import numpy as np

MiB = 2 ** 20
PHASE_FRAMES = 18     # frames per phase (about 4-6 s each on 2 cores)
SETTLE = 2            # a phase's first frames read the new configuration in: left out of p50s
SCENE_RATE = 1.0      # the camera's own rate: the node keeps the newest frame
FRAME_TIMEOUT_S = 5.0  # per frame, beyond which a phase gives up


@dataclass
class Phase:
    """One step of the scene: what was set and the frames that ran with it."""

    title: str                 # one line for the table
    label: str                 # short, for the plot
    values: dict[str, Any]     # the parameters set at its start
    start_s: float = 0.0       # scene time of the change
    frames: list[dict[str, Any]] = field(default_factory=list)

    def steady(self) -> list[dict[str, Any]]:
        """Frames after the first SETTLE (those read the new configuration in)."""
        return self.frames[SETTLE:] or self.frames

    def p(self, key: str, q: float = 50) -> float:
        """Percentile ``q`` of ``key`` over the steady frames (nan without any)."""
        values = [f[key] for f in self.steady() if f[key] is not None]
        return float(np.percentile(values, q)) if values else float('nan')


def curve_points(profile_path: Path) -> tuple[Any, list[Any], tuple[str, ...]]:
    """(pipeline, the planner's curve, unit names) from the profile saved next to the store."""
    from ..engine import planner
    from ..engine.profile import Profile
    prof = Profile.from_json(json.loads(profile_path.read_text()))
    return prof.pipeline, planner.pareto_curve(prof.pipeline), prof.unit_names


def middle(curve: list[Any]) -> Any:
    """The curve's point nearest the geometric middle of its memory range."""
    lo, hi = curve[0].budget_bytes, curve[-1].budget_bytes
    mid = (lo * hi) ** 0.5
    return min(curve[1:-1] or curve, key=lambda p: abs(np.log(p.budget_bytes / mid)))


def plan_values(plan: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The parameters that run ``plan`` exactly (mode, budget, resident units by name)."""
    # preload holds every unit anyway: naming them all would only repeat the mode
    resident = [names[i] for i in sorted(plan.resident)] if plan.mode != 'preload' else []
    resident = resident or ['']
    return {'execution_mode': str(plan.mode), 'memory_budget_mb': plan.budget_bytes / MiB,
            'resident_units': resident}


class TuningScene:
    """Drives the node's parameters while a looping bag plays; collects ``~/frame_stats``."""

    def __init__(self, probe: Any, node_name: str) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.parameter_client import AsyncParameterClient
        self.probe = probe
        self.params = AsyncParameterClient(probe, node_name)
        self.frames: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.t0 = time.monotonic()
        probe.create_subscription(DiagnosticArray, f'{node_name}/frame_stats', self._on, 50)

    def _on(self, msg: Any) -> None:
        kv = {k.key: k.value for k in msg.status[0].values}
        with self._lock:
            self.frames.append({
                't': time.monotonic() - self.t0,
                'inference_ms': float(kv['inference_ms']),
                'latency_ms': float(kv['latency_ms']),
                'predicted_ms': float(kv['predicted_ms']) if kv['predicted_ms'] else None,
                'deadline_ms': float(kv['deadline_ms']), 'missed': kv['missed'] == 'True',
                'budget_bytes': int(kv['budget_bytes']), 'weight_bytes': int(kv['weight_bytes']),
                'mode': kv['mode'], 'resident_units': int(kv['resident_units']),
                'auto_tune': kv['auto_tune'] == 'True'})

    def set(self, values: dict[str, Any], timeout: float = 20.0) -> None:
        """Set parameters in one atomic request (as one change); raise with the node's reason."""
        from rclpy.parameter import Parameter
        future = self.params.set_parameters_atomically(
            [Parameter(k, value=v) for k, v in values.items()])
        end = time.monotonic() + timeout
        while not future.done() and time.monotonic() < end:
            time.sleep(0.02)
        if not future.done():
            raise RuntimeError(f'setting {values} timed out')
        result = future.result().result
        if not result.successful:
            raise RuntimeError(f'setting {values} refused: {result.reason}')

    def run(self, phase: Phase, frames: int = PHASE_FRAMES) -> Phase:
        """Apply a phase's parameters, then collect ``frames`` processed frames."""
        with self._lock:
            first = len(self.frames)
        self.set(phase.values)
        phase.start_s = time.monotonic() - self.t0
        end = time.monotonic() + FRAME_TIMEOUT_S * (frames + 2)
        while time.monotonic() < end:
            with self._lock:
                if len(self.frames) >= first + frames:
                    break
            time.sleep(0.05)
        with self._lock:
            phase.frames = self.frames[first:first + frames]
        return phase


def run_scene(probe: Any, node_name: str, camera: Path, profile_path: Path, out: Path,
              model: str) -> list[Phase]:
    """Play the bag in a loop and step through the phases; print the table, write the plot."""
    from ..bag.camera import RAW_TOPIC
    from ..bag.play import Player
    pipe, curve, names = curve_points(profile_path)
    lowest, mid, whole = curve[0], middle(curve), curve[-1]
    scene = TuningScene(probe, node_name)
    player = Player(probe, camera, rate=SCENE_RATE, loop=True, clock=True, topics=[RAW_TOPIC],
                    progress=False)
    playing = threading.Thread(target=player.run, name='demo-player', daemon=True)
    print(f'[demo] live tuning: the camera bag loops at {SCENE_RATE * 30:.0f} frames/s while '
          'the parameters change over the parameter service (the node keeps the newest frame)',
          flush=True)
    playing.start()
    phases: list[Phase] = []
    try:
        print(f'[demo] {"phase":28s} {"budget":>10s} {"weight held":>12s} '
              f'{"inference p50":>14s} {"predicted p50":>14s}  deadline misses', flush=True)
        for plan, what in ((lowest, 'minimum'), (mid, 'curve middle'), (whole, 'whole model')):
            phases.append(scene.run(Phase(
                f'{what} ({plan.mode})',
                f'{what}\n{plan.budget_bytes / MiB:.1f} MiB',
                {'auto_tune': False, **plan_values(plan, names)})))
            report(phases[-1])
        # deadlines from what the frames measured: between the middle point and the whole
        # model (auto_tune has to buy memory), then above the minimum (it can give it back)
        outside = [f['latency_ms'] - f['inference_ms'] for p in phases for f in p.steady()
                   if f['latency_ms'] >= f['inference_ms']]
        extra = float(np.percentile(outside, 90)) if outside else 0.0
        tight = round(extra + 1.1 * (phases[1].p('inference_ms') + phases[2].p('inference_ms'))
                      / 2, -1)
        loose = round(extra + 1.15 * phases[0].p('inference_ms', 90), -1)
        for deadline in (tight, loose):
            phases.append(scene.run(Phase(
                f'auto_tune, deadline {deadline:.0f} ms',
                f'auto_tune\ndeadline {deadline:.0f} ms',
                {'auto_tune': True, 'deadline_ms': float(deadline), 'memory_budget_mb': 0.0,
                 'execution_mode': 'pipelined', 'resident_units': ['']}), 2 * PHASE_FRAMES))
            report(phases[-1])
    finally:
        player.stop.set()
        playing.join(timeout=5)
    plot(phases, out / 'tuning.png', model, pipe.total_bytes)
    print(f'[demo] live tuning plot: {out / "tuning.png"}', flush=True)
    (out / 'tuning.json').write_text(json.dumps(
        [{'title': p.title, 'start_s': p.start_s, 'values': p.values, 'frames': p.frames}
         for p in phases], indent=1))
    return phases


def report(p: Phase) -> None:
    """One line per phase: budget, weight memory held, inference and predicted p50, misses."""
    last = p.frames[-1] if p.frames else None
    if last is None:
        print(f'[demo] {p.title}: no frames processed', flush=True)
        return
    held = np.median([f['weight_bytes'] for f in p.steady()]) / MiB
    misses = sum(f['missed'] for f in p.frames)
    print(f'[demo] {p.title:28s} {last["budget_bytes"] / MiB:6.1f} MiB {held:8.1f} MiB '
          f'{p.p("inference_ms"):11.0f} ms {p.p("predicted_ms"):11.0f} ms  '
          f'{misses}/{len(p.frames)} at {last["deadline_ms"]:.0f} ms', flush=True)


def plot(phases: list[Phase], out: Path, model: str, total_bytes: int) -> None:
    """Inference time and weight memory per frame over time, phases marked and labelled."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    frames = [f for p in phases for f in p.frames]
    if not frames:
        return
    t = np.array([f['t'] for f in frames])
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(12, 7.6),
                                      gridspec_kw={'height_ratios': [3, 2]})
    inference = np.array([f['inference_ms'] for f in frames])
    # end to end (stamp to published) is what a deadline is about; a looping bag sets the
    # clock back once per pass, which leaves one frame per pass without a latency
    lat = [(f['t'], f['latency_ms']) for f in frames if f['latency_ms'] >= f['inference_ms']]
    deadlines = [p.values['deadline_ms'] for p in phases if p.values.get('auto_tune')]
    # a configuration's first frame reads its resident units in and can take seconds: the
    # scale follows the bulk of the frames, what lies above is marked at the top
    ymax = max(1.3 * float(np.percentile([y for _, y in lat] or inference, 95)),
               1.15 * max(deadlines, default=0.0))
    top.plot(t, np.minimum(inference, ymax), '.-', color='C0', lw=0.8, ms=4,
             label='inference time, measured per frame')
    top.plot([x for x, _ in lat], [min(y, ymax) for _, y in lat], '.', color='0.55', ms=3.5,
             label='end-to-end latency (camera stamp to published)')
    predicted = [f['predicted_ms'] if f['predicted_ms'] is not None else np.nan for f in frames]
    top.plot(t, predicted, '--', color='C1', lw=1.8,
             label='predicted (calibrated model; with auto_tune its median)')
    for f in frames:
        if f['inference_ms'] > ymax:
            top.annotate(f'{f["inference_ms"] / 1e3:.1f} s', (f['t'], ymax), xytext=(3, -10),
                         textcoords='offset points', fontsize=7.5, color='C0')
    first_auto = True
    for p in phases:
        if p.values.get('auto_tune') and p.frames:
            top.hlines(p.values['deadline_ms'], p.start_s, p.frames[-1]['t'], colors='C3',
                       linestyles=':', lw=2.2,
                       label='deadline_ms (end to end)' if first_auto else None)
            missed = [f for f in p.frames if f['missed']]
            top.plot([f['t'] for f in missed], [min(f['latency_ms'], ymax) for f in missed],
                     'x', color='C3', ms=8, mew=2,
                     label='frame that missed its deadline' if first_auto else None)
            first_auto = False
    bottom.step(t, [f['weight_bytes'] / MiB for f in frames], where='post', color='C2', lw=2.2,
                label='weight memory held (MiB)')
    bottom.axhline(total_bytes / MiB, color='0.5', ls=':', lw=1,
                   label=f'whole model: {total_bytes / MiB:.0f} MiB (what preloading holds)')
    top.set_ylim(0, ymax * 1.12)   # the band above ymax holds the phase labels
    bottom.set_ylim(0, total_bytes / MiB * 1.25)
    for i, p in enumerate(phases):
        for ax in (top, bottom):
            ax.axvline(p.start_s, color='0.25', lw=1.2 if i == 3 else 0.9,
                       ls='-' if i == 3 else '--', alpha=0.7)
        end = p.frames[-1]['t'] if p.frames else p.start_s
        mid = (p.start_s + end) / 2
        top.text(mid, ymax * 1.1, p.label, ha='center', va='top', fontsize=8.5,
                 bbox=dict(boxstyle='round', fc='white', ec='0.7'))
        if p.frames:
            bottom.text(mid, total_bytes / MiB * 1.22,
                        f'{np.median([f["weight_bytes"] for f in p.steady()]) / MiB:.1f} MiB\n'
                        f'p50 {p.p("inference_ms"):.0f} ms', ha='center', va='top', fontsize=8.5)
    top.set_ylabel('time per frame (ms)')
    bottom.set_ylabel('weight memory (MiB)')
    bottom.set_xlabel('time since the tuning scene started (s)')
    fig.suptitle(f'{model} on a 30 Hz camera bag: less weight memory costs inference time\n'
                 'memory_budget_mb set by hand (minimum, curve middle, whole model), then '
                 'auto_tune picks the least memory for each deadline', fontsize=10.5)
    top.legend(loc='lower center', bbox_to_anchor=(0.5, 1.0), ncol=3, fontsize=8,
               frameon=False)
    bottom.legend(loc='center left', bbox_to_anchor=(0.0, 0.45), fontsize=8, framealpha=0.9)
    for ax in (top, bottom):
        ax.grid(alpha=0.25)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
