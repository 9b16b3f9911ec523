# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Getting detectors ready - export, open, profile - on a worker thread, with progress.

The first start of a model exports its store (a child process, up to minutes) and profiles it
(seconds). Run where the caller waits, that would stop a node's executor from answering
services and publishing diagnostics; here it runs on a thread of its own and says how far it is.
A node serving several streams prepares its detectors one after the other (profiles measured
one at a time, so none is disturbed by another's reads).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
import threading
from typing import Callable, TYPE_CHECKING

from ..engine.executor import check_device
from .detector import Detector, EngineRequest, ensure_store

if TYPE_CHECKING:
    from ..engine import Disk


@dataclass(frozen=True)
class DetectorSpec:
    """Everything fixed at configure: which detector, where its store is, how it runs."""

    model: str
    weights: str
    store_path: Path
    device: str = 'cpu'
    input_hw: tuple[int, int] | None = None
    num_threads: int = 0       # torch intra-op threads; 0 = leave torch's default
    engine: EngineRequest = EngineRequest()
    lanes: int = 1             # inferences side by side (streams sharing the detector)


def open_detector(spec: DetectorSpec, progress: Callable[[str], None] = lambda _s: None,
                  disk: 'Disk | None' = None) -> Detector:
    """Export the store if missing, open it, and measure (or reuse) its profile.

    ``disk``: reader threads shared with the node's other detectors (None: its own).
    ConfigError first, before any export, for a device this machine has not.
    """
    check_device(spec.device)   # before an export of minutes, not after it
    if spec.num_threads > 0:
        import torch
        torch.set_num_threads(spec.num_threads)  # before profiling: profiles are per thread count
    ensure_store(spec.model, spec.weights, spec.store_path, progress=progress)
    progress('opening the store')
    detector = Detector(spec.model, spec.store_path, device=spec.device,
                        input_hw=spec.input_hw, engine=spec.engine, disk=disk,
                        lanes=spec.lanes)
    try:
        progress('profiling the store (reused once saved next to it)')
        detector.measure_profile()
    except BaseException:
        detector.close()
        raise
    progress('ready')
    return detector


class Preparation:
    """``open_detector`` on a worker thread; progress and outcome readable from any thread.

    Several specs are opened in turn (on one ``disk`` when given); if one fails, those opened
    before it are closed and the error is what ``result`` raises.
    """

    def __init__(self, spec: DetectorSpec, *more: DetectorSpec, disk: 'Disk | None' = None
                 ) -> None:
        self.spec = spec
        self.specs = (spec, *more)
        self.disk = disk
        self.progress = 'waiting to start'
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self._done = threading.Event()
        self._detectors: list[Detector] = []
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self, on_done: Callable[[], None] | None = None) -> 'Preparation':
        """Start the worker unless it runs already; ``on_done`` is called when it finishes.

        A callback given after the end is called at once. Returns self.
        """
        with self._lock:
            finished = self._done.is_set()
            if on_done is not None and not finished:
                self._callbacks.append(on_done)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name='dl-prepare',
                                                daemon=True)
                self._thread.start()
        if finished and on_done is not None:
            on_done()
        return self

    @property
    def done(self) -> bool:
        """True once the detector is ready or the preparation failed."""
        return self._done.is_set()

    def result(self) -> Detector:
        """The (first) detector (starts the work and waits for it); re-raises what stopped it."""
        return self.results()[0]

    def results(self) -> list[Detector]:
        """Every spec's detector, in order (starts the work and waits for it)."""
        self.start()
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert len(self._detectors) == len(self.specs)
        return list(self._detectors)

    def _run(self) -> None:
        try:
            n = len(self.specs)
            for i, spec in enumerate(self.specs):
                prefix = f'{spec.model} ({i + 1}/{n}): ' if n > 1 else ''
                self._detectors.append(open_detector(spec, partial(self._report, prefix),
                                                     self.disk))
        except BaseException as err:  # noqa: BLE001 - handed to whoever takes the result
            for detector in self._detectors:
                detector.close()
            self._detectors = []
            self._error = err
            self.progress = 'failed'
        with self._lock:
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def _report(self, prefix: str, text: str) -> None:
        self.progress = prefix + text
