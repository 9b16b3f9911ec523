# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""A demand-layered detector: images in, plain detections out.

It ties the store (exported in a child process if missing), the skeleton, the executor and the
pre- and post-processing together.
"""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys
from typing import Any, Callable

import numpy as np

from ..engine import DemandLayeredModel, LayerStore
from ..engine.profile import load_or_measure, Profile
from .detections import Detection, to_detections
from .errors import ModelError
from .models import build_skeleton, example_input, spec
from .preprocess import to_input


def default_store_path(model: str, weights: str, root: str | os.PathLike[str] | None = None
                       ) -> Path:
    """Where a model's store lives unless the user says otherwise."""
    base = Path(root or os.environ.get('DEMAND_LAYERING_STORES',
                                       Path.home() / '.cache' / 'demand_layering_ros'))
    tag = 'random' if weights.lower() == 'none' else ('default' if weights == 'DEFAULT'
                                                      else Path(weights).stem)
    # s2: large layers sliced at 2 MiB (the export default); stores of other layouts stay apart
    return base / f'{model}-{tag}-s2.dls'


def ensure_store(model: str, weights: str, path: Path, timeout: float = 900) -> Path:
    """Export the store in a child process when it is missing.

    Exporting needs the whole model in memory once; doing it in a child keeps the serving process
    below its budget even while starting up.
    """
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, '-m', 'demand_layering_ros.cli.main', 'export', '--model', model,
           '--weights', weights, '--out', str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise ModelError(f'export of {model} failed: {proc.stderr.strip()[-400:]}')
    return path


class Detector:
    """Runs one detector through the demand-layered executor."""

    def __init__(self, model: str, store: Path, *, device: str = 'cpu',
                 input_hw: tuple[int, int] | None = None, **executor: Any) -> None:
        s = spec(model)
        if not s.detector:
            raise ModelError(f'{model} is a classifier; the node serves detectors')
        self.name = model
        self.categories = s.categories()
        self.input_hw = input_hw
        self.device = device
        self.store = LayerStore.open(store)
        self.executor = DemandLayeredModel(build_skeleton(model), self.store, device=device,
                                           **executor)

    def detect(self, rgb: np.ndarray, *, score_threshold: float = 0.0, max_detections: int = 100,
               class_filter: tuple[str, ...] = (), abort: Callable[[], bool] | None = None
               ) -> list[Detection]:
        """Detect objects in an HxWx3 uint8 RGB image; boxes in that image's pixels."""
        tensor, scale = to_input(rgb, self.input_hw)
        out = self.executor.infer([tensor.to(self.device)], abort=abort)[0]
        return to_detections(out, self.categories, score_threshold=score_threshold,
                             max_detections=max_detections, class_filter=class_filter,
                             scale=scale)

    def profile(self, runs: int = 2) -> Profile:
        """This store's profile on this machine (measured at the minimum budget once, reused)."""
        x = example_input(self.name, self.input_hw or spec(self.name).input_hw, seed=1)
        x = tuple([t.to(self.device) for t in a] if isinstance(a, list) else a for a in x)
        return load_or_measure(self.executor, x, runs=runs)

    def close(self) -> None:
        """Release weights and threads."""
        self.executor.close()
