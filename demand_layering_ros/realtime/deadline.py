# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Per-frame deadlines on an injected clock (integer nanoseconds), and what to do about them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Callable


class DeadlinePolicy(str, Enum):
    """What happens to a frame that is, or will be, late."""

    SKIP_STALE = 'skip_stale'   # drop frames already late before inference
    ABORT = 'abort'             # also cancel an inference that can no longer finish in time
    COMPLETE = 'complete'       # run every frame to the end; lateness is only counted

    def __str__(self) -> str:
        return self.value


class DeadlineReference(str, Enum):
    """The instant a frame's deadline counts from."""

    STAMP = 'stamp'       # the header stamp: end-to-end from the camera (one clock for all)
    ARRIVAL = 'arrival'   # when the node received the frame: cameras with a clock of their own

    def __str__(self) -> str:
        return self.value


POLICIES = tuple(p.value for p in DeadlinePolicy)
REFERENCES = tuple(r.value for r in DeadlineReference)


@dataclass(frozen=True)
class Deadline:
    """A frame's deadline: its reference time plus the allowed delay, on the node clock."""

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
        return policy != DeadlinePolicy.COMPLETE and self.passed(now_ns)

    def abort_check(self, policy: str, clock_ns: Callable[[], int],
                    remaining_ns: Callable[[], int]) -> Callable[[], bool] | None:
        """Return the executor's abort callable for policy ``abort`` (None otherwise).

        It cancels once the deadline can no longer be met: now + predicted remaining time past it.
        """
        if policy != DeadlinePolicy.ABORT:
            return None
        return lambda: clock_ns() + remaining_ns() > self.deadline_ns
