# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""``demand-layering bench``: preload vs demand layering vs Accelerate disk offload, measured.

Every configuration runs in a fresh process (``demand-layering run``) on a store evicted from the
page cache (and read with direct I/O), so no run inherits another's memory or cached file pages.
The planner's configurations come from the store's profile (measured in its own process). The
disk's best direct-I/O bandwidth (8 MiB requests, one or four in flight) is measured in the same
run, before every configuration and after the last; the floor uses the best of them. The profile
is measured anew at the start of each model (a profile from another run would carry that run's
machine speed into this run's predictions). Last, preload runs once more beside a plain ``dd``
reading the store with direct I/O: how much the disk streaming slows compute on this machine
when no code of this package does the reading.

Each configuration's calibrated prediction is made before its frames run, from calibration
frames in the same process. The calibration is repeated after them, as the disk is measured
before and after: where the two predictions differ by more than the error looked for, the
machine's speed moved during the row (on this VM by up to 37% within one row),
and a miss there does not show the model wrong. The summary counts those rows apart.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import shutil
import statistics
import subprocess
import sys
import threading
import time
from typing import Any, Callable, TYPE_CHECKING

from .processes import stop

if TYPE_CHECKING:   # the engine (torch) is imported when a benchmark runs, not with the CLI
    from ..engine import planner
    from ..engine.simulate import Pipeline

CLASSIFIER_HW = (224, 224)
DETECTOR_HW = (480, 640)
# rows of a model that are not a configuration of the executor (the plot and tables skip them)
NOT_CONFIGURATIONS = ('disk', 'preload_beside_reader')
PROFILE_RUNS = 5    # passes per mode the profile takes the median of (the CLI default: 3)
DEFAULT_MODELS = ('resnet152', 'densenet201', 'ssd300_vgg16', 'retinanet_resnet50_fpn',
                  'fasterrcnn_resnet50_fpn')


def add_parser(sub: Any) -> None:
    """Register the ``bench`` subcommand."""
    b = sub.add_parser('bench', help='benchmark preload, demand layering and Accelerate offload')
    b.add_argument('--model', action='append', dest='models', help='a registry model '
                   '(repeatable); default: the five of the benchmark table')
    b.add_argument('--models', nargs='+', dest='models_list')
    b.add_argument('--json', required=True, help='where to write the results')
    b.add_argument('--plot', help='PNG of the memory-delay curve with the measured points')
    b.add_argument('--table', help='Markdown tables of the results')
    b.add_argument('--frames', type=int, default=10)
    b.add_argument('--warmup', type=int, default=2)
    b.add_argument('--slice-mb', type=float, default=2.0)
    b.add_argument('--stores', default=os.path.expanduser('~/.cache/demand_layering_ros/bench'))
    b.add_argument('--configs', nargs='+', default=None, help='subset of configurations')
    b.add_argument('--device', default='cpu')
    b.add_argument('--threads', type=int, default=2)
    b.add_argument('--calibrate', type=int, default=8, help='frames (taking turns at the '
                   'sequential and the pipelined minimum) that calibrate the model before each '
                   'configuration (its prediction is made then, before any frame of the '
                   'configuration runs); repeated after its frames, into a calibrator of its '
                   'own, to tell whether the machine held its speed meanwhile')
    b.add_argument('--curve-points', type=int, default=3,
                   help='extra measured points along the planner curve')
    from . import bench_streams   # --streams: two cameras in one node vs two nodes
    bench_streams.add_arguments(b)
    b.set_defaults(func=bench_streams.dispatch(run_bench))


def _cli(*argv: str, timeout: float = 1800) -> list[dict[str, Any]]:
    """Run ``demand-layering ARGV`` in a fresh process; its JSON lines."""
    cmd = [sys.executable, '-m', 'demand_layering_ros.cli.main', *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f'{" ".join(argv[:3])} failed ({proc.returncode}): '
                           f'{proc.stderr.strip()[-800:]}')
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{')]


def direct_read_bandwidth(path: Path, chunk: int = 8 << 20, depth: int = 1,
                          limit: int = 256 << 20) -> float:
    """Bytes per second reading ``path`` (its first ``limit`` bytes) with O_DIRECT.

    ``depth`` requests of ``chunk`` bytes are in flight. Where the filesystem refuses O_DIRECT,
    the file is read buffered after evicting it.
    """
    from ..engine.page_cache import evict
    from ..engine.profile import probe_disk
    from ..engine.reader import Reader
    evict(path)
    reader = Reader(path)
    try:
        size = min(path.stat().st_size, limit)
        return probe_disk(reader, size, (chunk,), (depth,), size)[0][2]
    finally:
        reader.close()


def disk_best(path: Path) -> float:
    """The disk's best direct-read bandwidth now: 8 MiB requests, one or four in flight."""
    return max(direct_read_bandwidth(path, depth=1), direct_read_bandwidth(path, depth=4))


def beside_reader(path: Path, work: Callable[[], Any]) -> tuple[Any, float]:
    """``work()`` while ``dd`` reads ``path`` with O_DIRECT in a loop; (its result, dd's bytes/s).

    RuntimeError when there is no ``dd`` or it cannot read the file with O_DIRECT. Bandwidth
    counts whole passes over the file (0 if ``work`` ends before the first).
    """
    if shutil.which('dd') is None:
        raise RuntimeError('no dd on this machine')
    loop = ('while :; do dd if="$0" of=/dev/null bs=8M iflag=direct status=none || exit 3; '
            'echo; done')
    proc = subprocess.Popen(['bash', '-c', loop, str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    passes = [0]

    def count() -> None:
        for _ in proc.stdout:
            passes[0] += 1
    counter = threading.Thread(target=count, daemon=True)
    counter.start()
    t0 = time.perf_counter()
    try:
        out = work()
    finally:
        seconds = time.perf_counter() - t0
        stop(proc, grace_s=5)
        counter.join(5)
    if proc.returncode == 3:
        raise RuntimeError(f'dd could not read {path} with O_DIRECT: '
                           f'{proc.stderr.read().decode(errors="replace").strip()[-300:]}')
    return out, passes[0] * path.stat().st_size / seconds


def interference(path: Path, run_preload: Callable[[], list[dict[str, Any]]]) -> dict[str, Any]:
    """How much a plain direct reader slows compute: preload alone, then beside ``dd``.

    The two runs follow each other (the machine's speed drifts over minutes); the row is the
    second run's summary plus ``alone_ms_p50``, ``slowdown`` and ``reader_bps``.
    """
    from ..engine.page_cache import evict
    evict(path)
    alone = _summarise(run_preload())
    evict(path)
    out, reader_bps = beside_reader(path, run_preload)
    row = _summarise(out)
    return {**row, 'alone_ms_p50': alone['latency_ms_p50'], 'reader_bps': reader_bps,
            'slowdown': row['latency_ms_p50'] / alone['latency_ms_p50']}


def _summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    lat = sorted(r['latency_ms'] for r in rows if 'latency_ms' in r and not r.get('warmup'))
    stats = next((r['stats'] for r in rows if 'stats' in r), {})
    pred = next((r['prediction'] for r in rows if 'prediction' in r), {})
    after = next((r['prediction_after'] for r in rows if 'prediction_after' in r), {})
    p90 = lat[min(len(lat) - 1, int(round(0.9 * (len(lat) - 1))))]
    return {'latency_ms_p50': statistics.median(lat), 'latency_ms_p90': p90,
            'latency_ms_all': lat, 'weight_bytes_peak': stats.get('weight_bytes_peak'),
            'rss_peak_bytes': stats.get('rss_peak_bytes'), 'direct_io': stats.get('direct_io'),
            'bytes_read_per_frame': stats.get('bytes_read_per_inference', 0),
            'stall_ms_per_frame': stats.get('stall_seconds_per_inference', 0) * 1e3,
            'device': stats.get('device'), 'calibrated_latency_ms': pred.get('calibrated_ms'),
            'calibrated_after_ms': after.get('calibrated_ms'),
            'checksum_ms_per_frame': stats.get('checksum_seconds_per_inference', 0) * 1e3,
            'verify_cycle_frames': stats.get('verify_cycle_frames')}


def bench_model(model: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every configuration of one model: one row each, preload beside ``dd``, the disk row."""
    from ..engine import page_cache, planner
    from ..engine.profile import Profile
    from ..perception.models import DETECTORS
    hw = DETECTOR_HW if model in DETECTORS else CLASSIFIER_HW
    store = _exported(model, hw, args)
    common = ['--model', model, '--store', str(store), '--input-size', *map(str, hw),
              '--device', args.device, '--threads', str(args.threads)]
    # measured in this run, like the rest; per visit the median of PROFILE_RUNS passes, so a
    # slow moment of the machine over one or two of them does not become the model's figure
    profile = _cli('profile', *common, '--force', '--runs', str(PROFILE_RUNS))[-1]['profile']
    prof = Profile.from_json(json.loads(Path(profile).read_text()))
    pipe = prof.pipeline
    plans, curve = configurations(pipe, args.curve_points)
    wanted = [c for c in (args.configs or [*plans, 'accelerate_disk'])
              if c in plans or c == 'accelerate_disk']   # a curve may have fewer inner points
    # the disk's best: once first, before each configuration, and after the last
    disk = [disk_best(store)]
    rows: list[dict[str, Any]] = []
    for name in (c for c in wanted if c in plans):
        disk.append(disk_best(store))
        page_cache.evict(store)
        rows.append({**_measure_plan(model, name, plans[name], pipe, hw, [
            *common, '--profile', profile], args), 'disk_bps_before': disk[-1]})
    if 'accelerate_disk' in wanted:
        rows.append(_accelerate_row(model, hw, args))
    disk.append(disk_best(store))
    beside = _beside_row(model, hw, store, common, args) if 'preload' in wanted else {}
    for r, after in zip(rows, disk[2:]):   # the next configuration's "before", or the last
        r['disk_bps_after'] = after
    bandwidth = max(disk)   # the disk's best in this run
    _against_preload(rows, pipe.total_bytes, bandwidth)
    if beside:   # only measured with preload
        rows.append({**beside, 'model_bytes': pipe.total_bytes})
    rows.append({'model': model, 'config': 'disk', 'direct_read_bandwidth_bps': bandwidth,
                 'compute_slowdown_beside_reader': beside.get('slowdown'),
                 'reader_bps_beside_compute': beside.get('reader_bps'),
                 'disk_measurements_bps': disk, 'disk_probe': [list(d) for d in prof.disk],
                 'io': {'queue_depth': pipe.io.queue_depth,
                        'request_bytes': pipe.io.request_bytes},
                 'profile_read_bandwidth_bps': prof.read_bandwidth_bps,
                 'profile_compute_ms': pipe.compute_total_s * 1e3,
                 'analytic_resident_bytes': planner.analytic_resident_bytes(pipe, bandwidth),
                 'curve': [q.to_json() for q in curve]})
    return rows


def _exported(model: str, hw: tuple[int, int], args: argparse.Namespace) -> Path:
    """The model's store under ``args.stores`` (exported on first use)."""
    stores = Path(args.stores)
    stores.mkdir(parents=True, exist_ok=True)
    store = stores / f'{model}-{hw[0]}x{hw[1]}-s{args.slice_mb:g}.dls'
    if not store.exists():
        print(f'[bench] {model}: exporting {store.name}', file=sys.stderr, flush=True)
        _cli('export', '--model', model, '--out', str(store), '--input-size', *map(str, hw),
             '--slice-mb', str(args.slice_mb))
    return store


def configurations(pipe: Pipeline, curve_points: int) -> tuple[dict[str, planner.Plan],
                                                               list[planner.Plan]]:
    """The planner's configurations to measure, by name (``--configs`` picks), and its curve."""
    from ..engine import planner
    seq_min, pipe_min = pipe.min_budget('sequential'), pipe.min_budget('pipelined')
    plans: dict[str, planner.Plan] = {
        'preload': planner.plan_for_budget(pipe, pipe.min_budget('preload')),
        'sequential_min': planner.plan_in_mode(pipe, 'sequential', seq_min),
        'pipelined_min': planner.plan_in_mode(pipe, 'pipelined', pipe_min),
    }
    # the least memory within 1% of preload's prediction
    plans['near_zero'], _met = planner.plan_for_deadline(pipe, pipe.compute_total_s * 1.01)
    curve = planner.pareto_curve(pipe)
    inner = [q for q in curve if q.mode == 'pipelined'
             and plans['pipelined_min'].budget_bytes < q.budget_bytes
             < plans['near_zero'].budget_bytes]
    for i in range(min(curve_points, len(inner))):
        plans[f'curve_{i + 1}'] = inner[(i + 1) * len(inner) // (curve_points + 1)]
    return plans, curve


def _measure_plan(model: str, name: str, plan: planner.Plan, pipe: Pipeline,
                  hw: tuple[int, int], common: list[str],
                  args: argparse.Namespace) -> dict[str, Any]:
    """One configuration, in a fresh process (``run --calibrate``: the calibrated prediction).

    The caller evicts the store from the page cache first.
    """
    print(f'[bench] {model}: {name} ({plan.mode}, {plan.budget_bytes / 2**20:.1f} MiB, '
          f'{len(plan.resident)} resident)', file=sys.stderr, flush=True)
    out = _cli('run', *common, '--calibrate', str(args.calibrate), '--mode', plan.mode,
               '--budget-bytes', str(plan.budget_bytes),
               '--resident', ','.join(map(str, sorted(plan.resident))), '--frames',
               str(args.frames), '--warmup', str(args.warmup), '--json')
    return {'model': model, 'config': name, 'mode': plan.mode,
            'budget_bytes': plan.budget_bytes, 'resident_units': len(plan.resident),
            'resident_bytes': sum(pipe.nbytes[i] for i in plan.resident),
            'predicted_latency_ms': plan.predicted_s * 1e3, 'input_hw': list(hw),
            **_summarise(out)}


def _accelerate_row(model: str, hw: tuple[int, int], args: argparse.Namespace) -> dict[str, Any]:
    """The peer: Accelerate's disk offload of the same model on the same device."""
    print(f'[bench] {model}: accelerate_disk', file=sys.stderr, flush=True)
    cmd = [sys.executable, '-m', 'demand_layering_ros.cli.accelerate_peer', '--model', model,
           '--offload-dir', str(Path(args.stores) / f'{model}-accelerate'), '--input-size',
           *map(str, hw), '--frames', str(args.frames), '--warmup', str(args.warmup),
           '--threads', str(args.threads), '--device', args.device]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f'accelerate peer failed: {proc.stderr.strip()[-800:]}')
    out = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith('{')]
    return {'model': model, 'config': 'accelerate_disk', 'mode': 'accelerate_disk',
            'predicted_latency_ms': None, 'input_hw': list(hw), **_summarise(out)}


def _beside_row(model: str, hw: tuple[int, int], store: Path, common: list[str],
                args: argparse.Namespace) -> dict[str, Any]:
    """Preload alone, then beside a plain direct reader (empty when no reader could run)."""
    print(f'[bench] {model}: preload alone, then beside a direct reader (dd)',
          file=sys.stderr, flush=True)
    try:
        return {'model': model, 'config': 'preload_beside_reader', 'mode': 'preload',
                'predicted_latency_ms': None, 'input_hw': list(hw),
                **interference(store, lambda: _cli(
                    'run', *common, '--mode', 'preload', '--frames', str(args.frames),
                    '--warmup', str(args.warmup), '--json'))}
    except RuntimeError as e:
        print(f'[bench] {model}: no reader beside preload: {e}', file=sys.stderr)
        return {}


def _against_preload(rows: list[dict[str, Any]], total: int, bandwidth: float) -> None:
    """Each row's reduction, overhead, floor and efficiency against preload; its errors."""
    base = next((r for r in rows if r['config'] == 'preload'), None)
    for r in rows:
        r['model_bytes'] = total
        if base:
            r['reduction_pct'] = 100 * (1 - (r['weight_bytes_peak'] or 0) / total)
            r['overhead_pct'] = 100 * (r['latency_ms_p50'] / base['latency_ms_p50'] - 1)
            streamed = r.get('bytes_read_per_frame') or 0
            disk_bps = max(r.get('disk_bps_before', 0), r.get('disk_bps_after', 0)) or bandwidth
            floor = max(base['latency_ms_p50'], streamed / disk_bps * 1e3)
            r['floor_ms'] = floor
            r['efficiency'] = floor / r['latency_ms_p50']
        if r.get('predicted_latency_ms'):
            r['prediction_error_pct'] = 100 * (r['predicted_latency_ms'] / r['latency_ms_p50'] - 1)
        if r.get('calibrated_latency_ms'):
            r['calibrated_error_pct'] = 100 * (r['calibrated_latency_ms'] / r['latency_ms_p50']
                                               - 1)
            if r.get('calibrated_after_ms'):   # how far the machine moved over the row
                r['calibration_drift_pct'] = 100 * (r['calibrated_after_ms']
                                                    / r['calibrated_latency_ms'] - 1)


def run_bench(args: argparse.Namespace) -> int:
    """Run every model; write the JSON (and the plot) after each model, so partial runs count."""
    models = (args.models or []) + (args.models_list or []) or list(DEFAULT_MODELS)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for model in models:
        rows += bench_model(model, args)
        out.write_text(json.dumps(rows, indent=1))
        if args.plot:
            from .bench_plot import plot
            plot(rows, Path(args.plot))
        if args.table:
            from .bench_table import table
            Path(args.table).write_text(table(rows))
    for r in rows:
        if r['config'] != 'disk':
            print(json.dumps({k: r.get(k) for k in (
                'model', 'config', 'weight_bytes_peak', 'rss_peak_bytes', 'latency_ms_p50',
                'latency_ms_p90', 'predicted_latency_ms', 'reduction_pct', 'overhead_pct',
                'efficiency')}))
    return 0
