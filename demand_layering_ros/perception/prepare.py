# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Getting a detector ready - export, open, profile - on a worker thread, with progress.

The first start of a model exports its store (a child process, up to minutes) and profiles it
(seconds). Run where the caller waits, that would stop a node's executor from answering
services and publishing diagnostics; here it runs on a thread of its own and says how far it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import threading
from typing import Callable

from .detector import Detector, EngineRequest, ensure_store


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


def open_detector(spec: DetectorSpec, progress: Callable[[str], None] = lambda _s: None
                  ) -> Detector:
    """Export the store if missing, open it, and measure (or reuse) its profile."""
    if spec.num_threads > 0:
        import torch
        torch.set_num_threads(spec.num_threads)  # before profiling: profiles are per thread count
    ensure_store(spec.model, spec.weights, spec.store_path, progress=progress)
    progress('opening the store')
    detector = Detector(spec.model, spec.store_path, device=spec.device,
                        input_hw=spec.input_hw, engine=spec.engine)
    try:
        progress('profiling the store (reused once saved next to it)')
        detector.measure_profile()
    except BaseException:
        detector.close()
        raise
    progress('ready')
    return detector


class Preparation:
    """``open_detector`` on a worker thread; progress and outcome readable from any thread."""

    def __init__(self, spec: DetectorSpec) -> None:
        self.spec = spec
        self.progress = 'waiting to start'
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self._done = threading.Event()
        self._detector: Detector | None = None
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
        """The detector (starts the work and waits for it); re-raises what stopped it."""
        self.start()
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._detector is not None
        return self._detector

    def _run(self) -> None:
        try:
            self._detector = open_detector(self.spec, self._report)
        except BaseException as err:  # noqa: BLE001 - handed to whoever takes the result
            self._error = err
            self.progress = 'failed'
        with self._lock:
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def _report(self, text: str) -> None:
        self.progress = text
