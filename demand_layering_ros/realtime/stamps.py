# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Header stamps against the node clock: unset stamps and stamps from another clock.

A camera that stamps with its own clock, a driver that leaves the stamp at zero, or a bag played
without ``--clock`` gives stamps far from the node clock; counted from such a stamp every frame
is already late. The check names the offset so the user can fix the clock or count deadlines
from arrival instead.
"""

from __future__ import annotations

from dataclasses import dataclass

# Transport from camera to node takes milliseconds; a stamp a second or more away from the
# arrival time comes from a different clock.
FAR_NS = 1_000_000_000


@dataclass(frozen=True)
class StampCheck:
    """How one frame's header stamp relates to its arrival on the node clock."""

    offset_ns: int      # arrival - stamp: positive when the stamp is in the past
    unset: bool         # stamp 0: the driver never set it
    far: bool           # |offset| >= FAR_NS: the stamp is on another clock

    @property
    def problem(self) -> bool:
        """True when the stamp cannot serve as the deadline reference."""
        return self.unset or self.far

    def describe(self) -> str:
        """One sentence naming the problem and the offset."""
        if self.unset:
            return ('header stamps are unset (0); set them in the camera driver, or use '
                    'deadline_reference: arrival')
        direction = 'behind' if self.offset_ns > 0 else 'ahead of'
        return (f'header stamps are {abs(self.offset_ns) / 1e9:.1f} s {direction} the node clock '
                '(a camera with its own clock, or a bag played without --clock / use_sim_time); '
                'deadlines count from the stamp, so frames look late: fix the clock, or set '
                'deadline_reference: arrival')


def check_stamp(stamp_ns: int, arrival_ns: int) -> StampCheck:
    """Compare a header stamp with the arrival time (both on the node clock, in ns)."""
    offset = arrival_ns - stamp_ns
    # before use_sim_time has received /clock the node clock reads 0: nothing to compare with
    far = arrival_ns > 0 and abs(offset) >= FAR_NS
    return StampCheck(offset, stamp_ns == 0, far and stamp_ns != 0)
