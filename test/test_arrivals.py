# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Frames lost before the node, counted from gaps in the camera's header stamps."""

from __future__ import annotations

import numpy as np

from demand_layering_ros.realtime import Health, Level
from demand_layering_ros.realtime.arrivals import StampGaps

PERIOD_NS = 33_333_333   # a 30 Hz camera


def stamps(n: int, jitter: float = 0.0, seed: int = 0) -> np.ndarray:
    """When a camera took n frames (ns), each off its period by up to ``jitter`` of it."""
    rng = np.random.default_rng(seed)
    base = 10**12 + np.arange(n) * PERIOD_NS
    return (base + rng.uniform(-jitter, jitter, n) * PERIOD_NS).astype(np.int64)


def count(gaps: StampGaps, taken: np.ndarray) -> int:
    return sum(gaps.lost(int(t)) for t in taken)


def test_a_camera_that_loses_nothing_loses_nothing_even_when_its_stamps_jitter():
    for jitter in (0.0, 0.1, 0.2):
        assert count(StampGaps(), stamps(600, jitter)) == 0, jitter


def test_most_frames_lost_are_counted_close_to_the_truth():
    taken = stamps(3000, jitter=0.1)
    for share in (0.3, 0.6, 0.8):
        arrived = np.random.default_rng(1).random(len(taken)) >= share
        gaps = StampGaps()
        lost = count(gaps, taken[arrived])
        truth = int(np.sum(~arrived[:np.flatnonzero(arrived)[-1]]))
        assert abs(lost - truth) <= 0.1 * truth, (share, lost, truth)
        assert abs(gaps.period_ns / PERIOD_NS - 1) < 0.2


def test_bursts_of_stamps_are_not_the_cameras_period():
    # a camera bracketing 3 exposures 1 ms apart every 100 ms; a driver sending each frame
    # twice (1 us apart): taken as the period, such gaps made every other one thousands lost
    bracketing, twice = StampGaps(), StampGaps()
    t, lost = 10 ** 12, [0, 0]
    for _ in range(100):
        for i in range(3):
            lost[0] += bracketing.lost(t + i * 10 ** 6)
        lost[1] += twice.lost(t) + twice.lost(t + 1000)
        t += 100 * 10 ** 6
    assert lost == [0, 0]
    # frames really lost between bursts still count
    g, t, lost = StampGaps(), 10 ** 12, 0
    for k in range(80):
        if k % 4 != 3:   # every fourth frame never arrives (20; the first 8 gaps teach the
            lost += g.lost(t) + g.lost(t + 1000)   # period and count nothing)
        t += 33_333_333
    assert 17 <= lost <= 18, lost


def test_pauses_a_bag_starting_over_and_unset_stamps_are_not_losses():
    gaps = StampGaps()
    taken = stamps(100)
    assert count(gaps, taken) == 0
    assert gaps.lost(int(taken[-1]) + 5 * 10**9) == 0        # the camera paused for 5 s
    assert count(gaps, taken) == 0                             # the bag played again
    assert gaps.lost(0) == 0 and gaps.lost(int(taken[-1]) + PERIOD_NS) == 0
    assert gaps.lost(int(taken[-1]) + 4 * PERIOD_NS) == 2      # (after the one just above)


def test_health_warns_when_most_frames_never_arrive_and_not_for_a_few():
    t = [0.0]
    for share, warn in ((0.1, False), (0.7, True)):
        health, gaps = Health(clock=lambda: t[0]), StampGaps()
        taken = stamps(300, jitter=0.1)
        for stamp in taken[np.random.default_rng(2).random(len(taken)) >= share]:
            health.note('received')
            health.note('processed')
            lost = gaps.lost(int(stamp))
            if lost:
                health.note('lost', 'the camera at 30 Hz by its stamps', lost)
        level, message = health.assess()
        assert (level == Level.WARN) == warn, (share, message)
        if warn:
            assert 'frames the camera stamped never arrived' in message
            assert 'the camera at 30 Hz by its stamps' in message
