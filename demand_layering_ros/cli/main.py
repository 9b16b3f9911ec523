# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The ``demand-layering`` command: export a store, run a model from one, replay the demo."""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any, Sequence


def _positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'{text!r} is not a positive integer')
    return value


def _non_negative_int(text: str) -> int:
    """An argparse type: an integer of at least 0."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f'{text!r} is negative')
    return value


def _non_negative_float(text: str) -> float:
    """An argparse type: a finite number of at least 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a number') from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f'{text!r} is not a finite number >= 0')
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not an integer') from None


def _units(text: str) -> list[int | str]:
    """An argparse type for --resident: comma-separated unit indices or unit names."""
    refs: list[int | str] = []
    for ref in (r.strip() for r in text.split(',')):
        if ref:
            refs.append(int(ref) if ref.lstrip('-').isdigit() else ref)
    return refs


def cmd_export(args: argparse.Namespace) -> int:
    """Export a registry model's weights into a layer store."""
    from ..engine import LayerStore
    from ..perception.models import build_model, example_input
    hw = tuple(args.input_size) if args.input_size else None
    model = build_model(args.model, args.weights, seed=args.seed)
    store = LayerStore.export(model, args.out, example_input(args.model, hw),
                              overwrite=args.overwrite, progress=None,
                              slice_bytes=int(args.slice_mb * 2**20) or None)  # 0: never
    print(json.dumps({'store': str(store.path), 'model': args.model, 'units': len(store.units),
                      'total_bytes': store.total_bytes,
                      'largest_unit_bytes': store.largest_unit_bytes}))
    return 0


def _open_model(args: argparse.Namespace, store: object = None,
                **config: object) -> tuple[object, tuple]:
    """A DemandLayeredModel for ``args.model`` / ``args.store`` and its example input."""
    import torch

    from ..engine import DemandLayeredModel, LayerStore
    from ..perception.models import build_skeleton, example_input
    if args.threads:   # 0: torch's default (OMP_NUM_THREADS or the core count), as the node
        torch.set_num_threads(args.threads)
    store = store if store is not None else LayerStore.open(args.store)
    dl = DemandLayeredModel(build_skeleton(args.model), store, device=args.device, **config)
    hw = tuple(args.input_size) if args.input_size else None
    x = example_input(args.model, hw, seed=1)
    if args.device != 'cpu':
        x = tuple([t.to(args.device) for t in a] if isinstance(a, list) else a.to(args.device)
                  for a in x)
    return dl, x


def cmd_run(args: argparse.Namespace) -> int:
    """Run N inferences from a store in this process; one JSON line per frame, then stats."""
    import torch

    from ..engine import LayerStore
    store = LayerStore.open(args.store)
    budget = int(args.budget_mb * 2**20) if args.budget_mb else args.budget_bytes
    if args.budget_x_largest:
        budget = int(args.budget_x_largest * store.largest_unit_bytes)
    resident = args.resident or ()
    dl, x = _open_model(args, store, mode=args.mode, budget_bytes=budget, resident=resident)
    pipe = _calibrated_prediction(args, dl, x) if args.profile else None
    page = os.sysconf('SC_PAGE_SIZE')
    for i in range(args.warmup + args.frames):
        t0 = time.perf_counter()
        dl(*x)
        if args.device.startswith('cuda'):
            torch.cuda.synchronize()
        ms = (time.perf_counter() - t0) * 1e3
        warm = i < args.warmup
        with open('/proc/self/statm') as f:   # resident set now (ru_maxrss is only the peak)
            rss = int(f.read().split()[1]) * page
        if args.json:
            print(json.dumps({'frame': i, 'warmup': warm, 'latency_ms': round(ms, 3),
                              'rss_bytes': rss, 'maps': dl.stats()['maps']}), flush=True)
        else:
            print(f'frame {i}{" (warm-up)" if warm else ""}: {ms:.1f} ms, RSS '
                  f'{rss / 2**20:.0f} MiB', flush=True)
    stats = dl.stats()
    stats['rss_peak_bytes'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if pipe is not None and args.calibrate:
        _calibrated_after(pipe, dl, x, args.calibrate)
    dl.close()
    print(json.dumps({'stats': stats}) if args.json else stats)
    return 0


def _calibrated_prediction(args: argparse.Namespace, dl: Any, x: tuple) -> Any:
    """Read with the profile's I/O settings; with ``--calibrate N``, predict like a node would.

    N inferences feed the calibrator, taking turns at the sequential and the pipelined minimum
    (not the configuration being measured): a sequential frame times each visit's compute and
    each read alone, a pipelined one the disk's streaming speed and how much reads slow
    compute; each follows a reconfiguration. Its prediction for the requested configuration is
    printed before any frame of that configuration runs, next to the profile's own. Returns
    the profile's pipeline.
    """
    from ..engine.calibrate import Calibrator
    from ..engine.profile import Profile
    prof = Profile.from_json(json.loads(Path(args.profile).read_text()))
    dl.set_io(prof.pipeline.io)
    cal = Calibrator(prof.pipeline)
    before = cal.predict(dl.config).latency_s
    _calibrate(dl, x, cal, args.calibrate)
    print(json.dumps({'prediction': {'profile_ms': before * 1e3,
                                     'calibrated_ms': cal.predict(dl.config).latency_s * 1e3,
                                     'calibration_frames': cal.frames}}), flush=True)
    return prof.pipeline


def _calibrated_after(pipe: Any, dl: Any, x: tuple, frames: int) -> None:
    """The same calibration once more, after the measured frames, into a calibrator of its own.

    The prediction it gives is not the one the measured frames are judged by (that came before
    them); it tells whether the machine held its speed meanwhile: predictions before and after
    that differ by more than the error looked for mean the machine moved, not the model missed.
    """
    from ..engine.calibrate import Calibrator
    cal = Calibrator(pipe)
    _calibrate(dl, x, cal, frames)
    print(json.dumps({'prediction_after': {
        'calibrated_ms': cal.predict(dl.config).latency_s * 1e3,
        'calibration_frames': cal.frames}}), flush=True)


def _calibrate(dl: Any, x: tuple, cal: Any, frames: int) -> None:
    """``frames`` inferences into ``cal``, taking turns at the two minimums; target restored."""
    if not frames:
        return
    target = dl.config
    dl.observe(cal.observe)
    every, dl.record_every = dl.record_every, 1   # CUDA records every tenth frame
    for i in range(frames):
        mode = ('sequential', 'pipelined')[i % 2]
        dl.reconfigure(mode=mode, budget_bytes=dl.min_budget(mode), resident=())
        dl(*x)
    dl.record_every = every
    dl.reconfigure(mode=target.mode, budget_bytes=target.budget_bytes,
                   resident=target.resident, prefetch_depth=target.prefetch_depth)


def cmd_profile(args: argparse.Namespace) -> int:
    """Measure (or reuse) the store's profile on this machine; print a summary as JSON."""
    from ..engine import profile
    dl, x = _open_model(args, mode='sequential')
    prof = profile.load(dl, x) if not args.force else None
    reused = prof is not None
    if prof is None:
        prof = profile.measure(dl, x, runs=args.runs)
    saved: Path | None = prof.key.filename(dl.store.path)
    if not reused:
        try:
            prof.save(dl.store.path)
        except OSError as err:   # a read-only store location: the measurement is still shown
            print(f'demand-layering profile: the profile could not be saved next to the store '
                  f'({err}); printing it only', file=sys.stderr)
            saved = None
    dl.close()
    p = prof.pipeline
    print(json.dumps({'profile': str(saved) if saved else None, 'reused': reused,
                      'units': len(p.nbytes), 'visits': len(p.visits),
                      'compute_ms': p.compute_total_s * 1e3, 'read_ms': sum(p.read_s) * 1e3,
                      'read_bandwidth_bps': prof.read_bandwidth_bps,
                      **({} if saved else {'measured': prof.to_json()})}))
    return 0


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument('--model', required=True)
    p.add_argument('--store', required=True)
    p.add_argument('--input-size', type=_positive_int, nargs=2, metavar=('H', 'W'))
    p.add_argument('--device', default='cpu')
    p.add_argument('--threads', type=_non_negative_int, default=2,
                   help="torch intra-op threads (0: torch's default)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (subcommands)."""
    p = argparse.ArgumentParser(prog='demand-layering', description=__doc__)
    sub = p.add_subparsers(dest='command', required=True)

    e = sub.add_parser('export', help='export a model into a layer store')
    e.add_argument('--model', required=True)
    e.add_argument('--weights', default='none', help='none (seeded random) | DEFAULT | PATH')
    e.add_argument('--out', required=True)
    e.add_argument('--seed', type=int, default=0)
    e.add_argument('--input-size', type=_positive_int, nargs=2, metavar=('H', 'W'))
    e.add_argument('--overwrite', action='store_true')
    e.add_argument('--slice-mb', type=_non_negative_float, default=2.0,
                   help='split Linear/Conv2d weights larger than this into output slices '
                   '(0: never)')
    e.set_defaults(func=cmd_export)

    r = sub.add_parser('run', help='run N inferences from a store and print latency and stats')
    _model_args(r)
    r.add_argument('--mode', default='pipelined', choices=['preload', 'sequential', 'pipelined'])
    r.add_argument('--budget-mb', type=float)
    r.add_argument('--budget-bytes', type=int)
    r.add_argument('--budget-x-largest', type=float, help='budget as a multiple of the largest '
                   'unit')
    r.add_argument('--resident', type=_units, help='comma-separated unit indices or names to '
                   'keep resident')
    r.add_argument('--frames', type=_non_negative_int, default=10)
    r.add_argument('--warmup', type=_non_negative_int, default=0)
    r.add_argument('--json', action='store_true')
    r.add_argument('--profile', help="the store's profile: read with its I/O settings and print "
                   'its prediction for the configuration')
    r.add_argument('--calibrate', type=_non_negative_int, default=0,
                   help='with --profile: first run N frames, taking turns at the sequential '
                   'and the pipelined minimum, and predict from the calibrated model')
    r.set_defaults(func=cmd_run)

    pr = sub.add_parser('profile', help='measure read and compute times of a store (JSON next '
                        'to it)')
    _model_args(pr)
    pr.add_argument('--runs', type=_positive_int, default=3)
    pr.add_argument('--force', action='store_true', help='measure even if a valid one exists')
    pr.set_defaults(func=cmd_profile)

    from .bench import add_parser as add_bench
    add_bench(sub)
    from .bag import add_parser as add_bag
    add_bag(sub)

    from .demo import add_parser as add_demo
    add_demo(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``demand-layering``."""
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args))
        if args.command in ('run', 'profile'):
            # Skip interpreter teardown: unloading torch's CUDA libraries pages in ~190 MB of
            # library code at exit, which would otherwise dominate the process's peak RSS.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # noqa: BLE001 - one readable line for people, not a traceback
        from ..engine import EngineError
        from ..perception import PerceptionError
        if isinstance(err, (EngineError, PerceptionError, OSError, ValueError)):
            print(f'demand-layering {args.command}: {err}', file=sys.stderr)
            return 2
        if os.environ.get('DEMAND_LAYERING_DEBUG'):
            raise
        print(f'demand-layering {args.command}: unexpected {type(err).__name__}: '
              f'{_first_line(err)} (set DEMAND_LAYERING_DEBUG=1 for the traceback)',
              file=sys.stderr)
        return 1


def _first_line(err: BaseException) -> str:
    """The first non-empty line of an exception's message (torch's run to many lines)."""
    return next((line.strip() for line in str(err).splitlines() if line.strip()), '')


if __name__ == '__main__':
    sys.exit(main())
