# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The peer in the benchmark: Hugging Face Accelerate disk offload of the same model.

``--prepare`` (run in its own process by the first call) writes the offload folder from the same
seeded random weights. The timed process builds the skeleton on the meta device (never
materialised), attaches ``accelerate.disk_offload`` and evicts the offload files from the page
cache before every frame, so each frame reads from the disk as demand layering does. With
``--device cuda`` it runs on the GPU (``execution_device``): its weight figure is then the device
memory its hooks materialise at once.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import resource
import subprocess
import sys
import time


def prepare(args: argparse.Namespace) -> None:
    """Write the offload folder (index.json + one .dat memmap per tensor)."""
    from accelerate.utils import offload_state_dict

    from ..perception.models import build_model
    model = build_model(args.model, 'none', seed=0)
    tmp = Path(str(args.offload_dir) + '.partial')
    offload_state_dict(str(tmp), model.state_dict())
    tmp.rename(args.offload_dir)


def held_bytes(model: object) -> int:
    """Bytes of parameters and buffers that are materialised (not on the meta device) now."""
    return sum(t.numel() * t.element_size()
               for t in list(model.parameters()) + list(model.buffers())  # type: ignore
               if t.device.type != 'meta')


def main(argv: list[str] | None = None) -> int:
    """Time the model under disk offload; JSON lines like ``demand-layering run --json``."""
    p = argparse.ArgumentParser()
    p.add_argument('--model', required=True)
    p.add_argument('--offload-dir', type=Path, required=True)
    p.add_argument('--input-size', type=int, nargs=2)
    p.add_argument('--frames', type=int, default=10)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--device', default='cpu', help='execution device (cpu, cuda, cuda:N)')
    p.add_argument('--prepare', action='store_true')
    args = p.parse_args(argv)
    if args.prepare:
        prepare(args)
        return 0
    if not (args.offload_dir / 'index.json').exists():
        subprocess.run([sys.executable, '-m', 'demand_layering_ros.cli.accelerate_peer',
                        *(argv if argv is not None else sys.argv[1:]), '--prepare'], check=True)
    import torch
    from accelerate import disk_offload

    from ..engine.page_cache import evict
    from ..perception.models import build_skeleton, example_input
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = build_skeleton(args.model)
    disk_offload(model, str(args.offload_dir), execution_device=device, offload_buffers=True)
    files = sorted(args.offload_dir.glob('*.dat'))
    x = example_input(args.model, tuple(args.input_size) if args.input_size else None, seed=1)
    x = tuple([t.to(device) for t in a] if isinstance(a, list) else a.to(device) for a in x)

    def sync() -> None:
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
    peak = 0
    from accelerate.hooks import AlignDevicesHook
    original = AlignDevicesHook.pre_forward

    def watch(hook: object, module: object, *a: object, **k: object) -> object:
        nonlocal peak
        out = original(hook, module, *a, **k)
        peak = max(peak, held_bytes(model))
        return out

    with torch.no_grad():  # one untimed frame measures the weights held at once
        AlignDevicesHook.pre_forward = watch
        for f in files:
            evict(f)
        model(*x)
        AlignDevicesHook.pre_forward = original
        for i in range(args.warmup + args.frames):
            for f in files:
                evict(f)
            sync()
            t0 = time.perf_counter()
            model(*x)
            sync()
            ms = (time.perf_counter() - t0) * 1e3
            print(json.dumps({'frame': i, 'warmup': i < args.warmup, 'latency_ms': ms}),
                  flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({'stats': {'weight_bytes_peak': peak, 'rss_peak_bytes': rss,
                                'direct_io': False, 'device': str(device), 'inferences': 1}}),
          flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
