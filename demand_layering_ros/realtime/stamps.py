# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Header stamps against the node clock: unset stamps, stamps from another clock, no clock.

A camera that stamps with its own clock, a driver that leaves the stamp at zero, or a bag played
without ``--clock`` gives stamps far from the node clock; counted from such a stamp every frame
is already late (a stamp in the past) or never late (a stamp in the future). The check names the
offset so the user can fix the clock or count deadlines from arrival instead.

With ``use_sim_time`` and no ``/clock`` received yet the node clock reads 0: there is then no
time to count a deadline, a latency or a transport time on, whatever the reference. The check
says so; the runner still processes and publishes such frames but judges no deadline and
records no latency for them.
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
    no_clock: bool      # arrival 0: use_sim_time and no /clock received yet

    @property
    def problem(self) -> bool:
        """True when the stamp cannot serve as the deadline reference (nor time the transport)."""
        return self.unset or self.far or self.no_clock

    def measurable(self, by_arrival: bool) -> bool:
        """True when latency from the deadline reference is a time on the node clock.

        Not without a clock, and not from a stamp that is unset or on another clock: such a
        latency (hours, or negative for a stamp in the future) says nothing about the node and
        would swamp the percentiles. Deadlines are still judged from such a stamp (it is the
        reference asked for, and the warning names the offset); only a clock that reads 0
        leaves nothing to judge them on.
        """
        return not self.no_clock and (by_arrival or not self.problem)

    def describe(self) -> str:
        """One sentence naming the problem, what it does to deadlines, and the fix."""
        if self.no_clock:
            return ('the node clock reads 0: use_sim_time is set but no /clock has been '
                    'received; frames are still processed and published, but no deadline can '
                    'be judged (none is dropped, aborted or counted late) and no latency is '
                    'recorded: publish /clock (play the bag with --clock) or set '
                    'use_sim_time: false')
        if self.unset:
            return ('header stamps are unset (0); set them in the camera driver, or use '
                    'deadline_reference: arrival')
        seconds = abs(self.offset_ns) / 1e9
        if self.offset_ns > 0:
            return (f'header stamps are {seconds:.1f} s behind the node clock (a camera with its '
                    'own clock, or a bag played without --clock / use_sim_time); deadlines count '
                    'from the stamp, so frames look late (latency is not recorded): fix the '
                    'clock, or set deadline_reference: arrival')
        return (f'header stamps are {seconds:.1f} s ahead of the node clock (a camera with its '
                'own clock, or a node on a /clock behind the camera); a deadline counted from a '
                "stamp in the future lies beyond the frame's end, so no frame is dropped, "
                'aborted or counted late, and latency would be negative (not recorded): fix the '
                'camera clock, or set deadline_reference: arrival')


def check_stamp(stamp_ns: int, arrival_ns: int) -> StampCheck:
    """Compare a header stamp with the arrival time (both on the node clock, in ns)."""
    offset = arrival_ns - stamp_ns
    # before use_sim_time has received /clock the node clock reads 0: nothing to compare with
    no_clock = arrival_ns <= 0
    far = not no_clock and stamp_ns != 0 and abs(offset) >= FAR_NS
    return StampCheck(offset, stamp_ns == 0, far, no_clock)
