# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""A demand-layered detector: images in, plain detections out.

It ties the store (exported in a child process if missing), the skeleton, the executor and the
pre- and post-processing together, and is the one surface the node uses: configuration,
prediction, memory figures and release, without reaching into the executor.
"""

from __future__ import annotations

from dataclasses import dataclass
import functools
import hashlib
import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np

from ..engine import DemandLayeredModel, Disk, LayerStore
from ..engine.calibrate import Calibrator
from ..engine.errors import StoreMismatchError
from ..engine.executor import Record
from ..engine.lanes import Lanes
from ..engine.planner import Plan
from ..engine.policy import Config
from ..engine.profile import load_or_measure, Profile
from .detections import Detection, to_detections
from .errors import ModelError
from .models import build_skeleton, example_input, spec
from .preprocess import to_input

# what diagnostics show of the executor's figures
STATS_KEYS = ('mode', 'budget_bytes', 'weight_bytes', 'weight_bytes_peak', 'min_budget_bytes',
              'total_bytes', 'read_bandwidth_bps', 'stall_seconds', 'direct_io',
              'on_demand_loads', 'resident_units')


def default_store_path(model: str, weights: str, root: str | os.PathLike[str] | None = None
                       ) -> Path:
    """Where a model's store lives unless the user says otherwise.

    A weights file is named by its stem and a digest of its content: two files of one name
    (``w1/model.safetensors``, ``w2/model.safetensors``), or a file retrained in place, must not
    share a store, which is reused whenever it exists (``ensure_store``).
    """
    base = Path(root or os.environ.get('DEMAND_LAYERING_STORES',
                                       Path.home() / '.cache' / 'demand_layering_ros'))
    if weights.lower() == 'none':
        tag = 'random'
    elif weights == 'DEFAULT':
        tag = 'default'
    else:
        tag = Path(weights).stem + _digest(Path(weights))
    # s2: large layers sliced at 2 MiB (the export default); stores of other layouts stay apart
    return base / f'{model}-{tag}-s2.dls'


def _digest(path: Path) -> str:
    """``-`` and 12 hex digits of the file's content ('' when unreadable: the export says why)."""
    try:
        st = path.stat()
        return _content_digest(str(path.resolve()), st.st_size, st.st_mtime_ns)
    except OSError:
        return ''


@functools.lru_cache(maxsize=16)
def _content_digest(path: str, size: int, mtime_ns: int) -> str:
    """The digest of one version of a file (size and time key the cache: a rewrite is read)."""
    h = hashlib.blake2b(digest_size=6)
    with open(path, 'rb') as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return '-' + h.hexdigest()


def export_command(model: str, weights: str, path: Path) -> list[str]:
    """The child process that exports a store (the whole model is in memory only there)."""
    return [sys.executable, '-m', 'demand_layering_ros.cli.main', 'export', '--model', model,
            '--weights', weights, '--out', str(path)]


def child_error(stderr: str) -> str:
    """What failed in an export child, first: its one-line error, or the exception raised.

    The CLI prints ``demand-layering export: <message>`` for errors it knows; a message may go
    on for lines (torch's pickle refusal ends with advice), so only its first line is kept. An
    unexpected error leaves a traceback whose exception line says what failed.
    """
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith('demand-layering export: '):
            return ln[len('demand-layering export: '):][:300]
    raised = [ln for ln in lines if re.match(r'^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b', ln)]
    if raised:
        return raised[-1][:300]
    return (lines[0][:300] if lines else 'no error output')


def ensure_store(model: str, weights: str, path: Path, timeout: float = 900,
                 progress: Callable[[str], None] | None = None) -> Path:
    """Export the store in a child process when it is missing.

    Exporting needs the whole model in memory once; doing it in a child keeps the serving process
    below its budget even while starting up. ``progress`` hears 'exporting the store 40%' (from
    the size of the file being written against the model's parameter count) every half second.
    """
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    what = f'exporting {model} (weights {weights}) to {path}'
    proc = subprocess.Popen(export_command(model, weights, path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    expected = _expected_bytes(model)
    partial = path.with_name(path.name + '.partial')
    deadline = time.monotonic() + timeout
    while True:
        try:
            _out, err = proc.communicate(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            if time.monotonic() > deadline:
                proc.kill()
                proc.communicate()
                raise ModelError(f'{what} did not finish within {timeout:.0f} s') from None
            if progress is not None:
                progress('exporting the store' + _percent(partial, expected))
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        hint = ' (out of memory?)' if name == 'SIGKILL' else ''
        raise ModelError(f'{what} failed: the export process was killed by {name}{hint}')
    if proc.returncode != 0:
        raise ModelError(f'{what} failed: {child_error(err)}')
    return path


def _expected_bytes(model: str) -> int:
    """About the size of a model's store: its published parameter count in float32."""
    weights = spec(model).weights_enum
    return 4 * int(weights.DEFAULT.meta.get('num_params', 0)) if weights is not None else 0


def _percent(partial: Path, expected: int) -> str:
    try:
        written = partial.stat().st_size
    except OSError:
        return ''  # still building the model and tracing its order
    return f' {min(99, 100 * written // expected)}%' if expected else ''


def device_name(device: str) -> str:
    """'cuda:0 (NVIDIA H200)', 'cpu (AMD EPYC 7B13)': the device and what it is."""
    if device.startswith('cuda'):
        import torch
        if torch.cuda.is_available():
            return f'{device} ({torch.cuda.get_device_name(torch.device(device))})'
        return device
    try:
        with open('/proc/cpuinfo') as f:
            model = next((ln.split(':', 1)[1].strip() for ln in f
                          if ln.startswith('model name')), '')
    except OSError:
        model = ''
    return f'{device} ({model})' if model else device


@dataclass(frozen=True)
class EngineFigures:
    """The configuration a frame ran with and the weight memory it held (per-frame telemetry)."""

    mode: str
    budget_bytes: int
    weight_bytes: int
    resident_units: int           # units resident (all of them in preload)
    resident: frozenset[int] = frozenset()   # the units the configuration names resident


@dataclass(frozen=True)
class EngineRequest:
    """An executor configuration as the parameters ask for it (budget None = the minimum)."""

    mode: str = 'pipelined'
    budget_bytes: int | None = None
    resident: tuple[str, ...] = ()


class Detector:
    """Runs one detector through the demand-layered executor."""

    def __init__(self, model: str, store: Path, *, device: str = 'cpu',
                 input_hw: tuple[int, int] | None = None,
                 engine: EngineRequest = EngineRequest(), disk: Disk | None = None,
                 lanes: int = 1) -> None:
        s = spec(model)
        if not s.detector:
            raise ModelError(f'{model} is a classifier; the node serves detectors')
        self.name = model
        self.categories = s.categories()
        self.input_hw = input_hw
        self.device = device
        self.store = LayerStore.open(store)
        # detectors of one node share ``disk``: its reads are served earliest deadline first
        try:
            executor = DemandLayeredModel(build_skeleton(model), self.store, device=device,
                                          disk=disk)
        except StoreMismatchError as err:   # the store names a class, the user a model
            raise StoreMismatchError(f'model {model}: {err}') from err
        # ``lanes`` inferences side by side (streams sharing this detector), resident units once
        self.lanes = lanes
        self._executor: DemandLayeredModel | Lanes = (
            Lanes(executor, [build_skeleton(model) for _ in range(lanes - 1)]) if lanes > 1
            else executor)
        self.profile: Profile | None = None
        # the profile's figures kept true while frames run (set with the profile): what every
        # prediction - diagnostics, telemetry, auto_tune - comes from
        self.calibrator: Calibrator | None = None
        self._executor.observe(self._observe)
        self._ran: Config | None = None      # the configuration of the last inference
        self._records = 0
        self._prediction: tuple[Config, int, float | None] | None = None
        self.reconfigure(engine)

    # -- inference ----------------------------------------------------------------------------
    def detect(self, rgb: np.ndarray, *, score_threshold: float = 0.0, max_detections: int = 100,
               class_filter: Sequence[str] = (), abort: Callable[[], bool] | None = None,
               deadline: float | None = None) -> list[Detection]:
        """Detect objects in an HxWx3 uint8 RGB image; boxes in that image's pixels.

        ``deadline`` (``time.monotonic()`` seconds): when several streams share this detector,
        or detectors share a disk, the inference due first runs and reads first.
        """
        tensor, scale = to_input(rgb, self.input_hw)
        # the pending configuration is applied as infer() starts: this is the one the frame
        # uses, unless a reconfiguration lands in between - the record says it exactly
        config, records = self._executor.config, self._records
        out = self._executor.infer([tensor.to(self.device)], abort=abort, deadline=deadline)[0]
        if self._records == records:  # not recorded (CUDA records one frame in 10)
            self._ran = config
        return to_detections(out, self.categories, score_threshold=score_threshold,
                             max_detections=max_detections, class_filter=class_filter,
                             scale=scale)

    def remaining_s(self) -> float:
        """Predicted compute still to come in the running inference (0 without a profile)."""
        if self.profile is None:
            return 0.0
        return self.profile.remaining_s(self._executor.progress)

    # -- configuration ------------------------------------------------------------------------
    def resolve(self, request: EngineRequest) -> dict[str, Any]:
        """The executor arguments of a request; ConfigError names an unknown resident unit."""
        resident = [self._executor.unit_index(r) for r in request.resident]
        budget = request.budget_bytes
        if budget is None:
            budget = self._executor.min_budget(request.mode, resident)
        return {'mode': request.mode, 'budget_bytes': budget, 'resident': resident}

    def validate(self, request: EngineRequest) -> Any:
        """Check a request without applying it; BudgetError/ConfigError say why not."""
        return self._executor.validate(**self.resolve(request))

    def reconfigure(self, request: EngineRequest) -> Any:
        """Apply a request from the next inference (any thread)."""
        return self._executor.reconfigure(**self.resolve(request))

    def apply_plan(self, plan: Plan) -> Any:
        """Apply a planner's plan from the next inference."""
        return self._executor.reconfigure(mode=plan.mode, budget_bytes=plan.budget_bytes,
                                          resident=plan.resident)

    @property
    def config(self) -> Any:
        """The configuration the next inference uses."""
        return self._executor.config

    # -- profile and prediction ---------------------------------------------------------------
    def measure_profile(self, runs: int = 2) -> Profile:
        """This store's profile on this machine (measured at the minimum budget once, reused)."""
        x = example_input(self.name, self.input_hw or spec(self.name).input_hw, seed=1)
        x = tuple([t.to(self.device) for t in a] if isinstance(a, list) else a for a in x)
        if isinstance(self._executor, Lanes):   # measured on the owner lane alone
            with self._executor.exclusive() as owner:
                self.profile = load_or_measure(owner, x, runs=runs)
                self._executor.follow_owner()
        else:
            self.profile = load_or_measure(self._executor, x, runs=runs)
        self.calibrator = Calibrator(self.profile.pipeline)
        self._prediction = None
        return self.profile

    def observe(self, fn: Callable[[Record], None]) -> None:
        """Call ``fn`` with the record of every measured inference (after calibration)."""
        self._executor.observe(fn)

    def _observe(self, record: Record) -> None:
        """Every measured inference (executor's thread) is folded into the calibrated model."""
        self._ran = record.config
        self._records += 1
        calibrator = self.calibrator
        if calibrator is not None:  # None while the profile itself is being measured
            calibrator.observe(record)

    @property
    def predicted_s(self) -> float | None:
        """The calibrated model's delay for the configuration in force (None without a profile).

        Recomputed only when the configuration or the calibration changed (one simulation).
        """
        cal = self.calibrator
        if cal is None:
            return None
        config, frames = self._executor.config, cal.frames
        cached = self._prediction
        if cached is not None and cached[0] == config and cached[1] == frames:
            return cached[2]
        try:
            predicted: float | None = cal.predict(config).latency_s
        except ValueError:
            predicted = None
        self._prediction = (config, frames, predicted)
        return predicted

    def figures(self) -> EngineFigures:
        """The configuration the last inference ran with and the weight bytes held now."""
        cfg = self._ran or self._executor.config
        return EngineFigures(str(cfg.mode), self._executor.held_budget(cfg),
                             self._executor.weight_bytes(),
                             len(self._executor.effective_resident(cfg)), cfg.resident)

    @property
    def hardware_id(self) -> str:
        """The device inference runs on, by name (diagnostics' hardware_id)."""
        return device_name(self.device)

    # -- memory -------------------------------------------------------------------------------
    def weight_bytes(self) -> int:
        """Bytes that hold weights now."""
        return self._executor.weight_bytes()

    @property
    def bytes_read(self) -> int:
        """Bytes read from the store since it was opened."""
        return int(self._executor.stats()['bytes_read'])

    def stats(self) -> dict[str, Any]:
        """The executor's memory and I/O figures that diagnostics show."""
        s = self._executor.stats()
        return {k: s[k] for k in STATS_KEYS if k in s}

    def release(self) -> None:
        """Give every weight buffer back; the next inference loads what it needs."""
        self._executor.release()

    def close(self) -> None:
        """Release weights and threads."""
        self._executor.close()
