# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Per-frame deadlines on an injected clock (integer nanoseconds), and what to do about them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

POLICIES = ('skip_stale', 'abort', 'complete')


@dataclass(frozen=True)
class Deadline:
    """A frame's deadline: its stamp plus the allowed delay, on the node clock."""

    stamp_ns: int
    deadline_ns: int

    @classmethod
    def after(cls, stamp_ns: int, deadline_ms: float) -> 'Deadline':
        """The deadline deadline_ms after stamp_ns."""
        return cls(stamp_ns, stamp_ns + int(deadline_ms * 1e6))

    def passed(self, now_ns: int) -> bool:
        """True when now_ns is past the deadline."""
        return now_ns > self.deadline_ns

    def should_skip(self, policy: str, now_ns: int) -> bool:
        """Drop before inference? (every policy but complete drops frames already too old)."""
        return policy != 'complete' and self.passed(now_ns)

    def abort_check(self, policy: str, clock_ns: Callable[[], int],
                    remaining_ns: Callable[[], int]) -> Callable[[], bool] | None:
        """Return the executor's abort callable for policy ``abort`` (None otherwise).

        It cancels once the deadline can no longer be met: now + predicted remaining time past it.
        """
        if policy != 'abort':
            return None
        return lambda: clock_ns() + remaining_ns() > self.deadline_ns
