# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Clocks a deadline cannot be judged on, and every frame counted in exactly one outcome."""

from __future__ import annotations

from test_runner import make, S


def test_frames_the_camera_sent_while_the_runner_was_stopped_are_not_lost():
    runner, _det, clock, _pub, _ = make()
    period = S // 10   # a 10 Hz camera
    runner.start()
    try:
        for k in range(20):
            runner.offer('m', 10 * S + k * period, clock.ns())
    finally:
        runner.stop()   # deactivated for 1.5 s while the camera goes on
    runner.start()
    try:
        runner.offer('m', 10 * S + 35 * period, clock.ns())
        assert runner.stats.counts['lost'] == 0
        runner.offer('m', 10 * S + 36 * period, clock.ns())
        runner.offer('m', 10 * S + 39 * period, clock.ns())   # the period is still known
        assert runner.stats.counts['lost'] == 2
    finally:
        runner.stop()
