# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The live settings a frame is processed with: one immutable snapshot, replaced as a whole.

The frame loop reads the snapshot once per frame, so a frame never sees half of a change that
touches several values (deadline and policy, threshold and filter).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .deadline import DeadlinePolicy, DeadlineReference

DEFAULT_MAX_INPUT_PIXELS = 25_000_000  # a 20 MP industrial camera fits; a decoded frame < 80 MB


@dataclass(frozen=True)
class Settings:
    """Per-frame settings (everything the frame loop reads that a user may change live)."""

    deadline_ms: float = 500.0
    deadline_policy: DeadlinePolicy = DeadlinePolicy.SKIP_STALE
    deadline_reference: DeadlineReference = DeadlineReference.STAMP
    score_threshold: float = 0.5
    max_detections: int = 100
    class_filter: tuple[str, ...] = ()
    max_input_pixels: int = DEFAULT_MAX_INPUT_PIXELS
    debug_image: bool = True
    auto_tune: bool = False
    auto_tune_quantile: float = 0.9   # the share of frames auto_tune plans to meet the deadline
    budget_cap_bytes: int | None = None  # auto_tune plans within this (None: no cap)

    def with_(self, **changes: Any) -> 'Settings':
        """A copy with ``changes`` applied (the original is never modified)."""
        return replace(self, **changes)
