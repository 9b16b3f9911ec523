# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Diagnostics: a status per stream, one for a budget streams share, ``~/frame_stats``.

A stream's status has its level and message, rates, latency split and memory.

The level comes from the node's state and the runner's recent window (realtime.health), so it
clears once the cause is gone; the values keep the cumulative counters for dashboards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from ..realtime.health import Level
from ..realtime.runner import FrameReport

STALE_AFTER_S = 3.0      # no frame for this long: the input is stale
SILENT_INPUT_S = 5.0     # publishers exist but nothing arrived for this long: say why it may be
PROFILE_FILE = 'share/demand_layering_ros/config/fastdds_large_frames.xml'


@dataclass
class Inputs:
    """What the node knows when it publishes diagnostics."""

    name: str
    hardware_id: str
    frames: dict[str, float] = field(default_factory=dict)
    engine: dict[str, Any] = field(default_factory=dict)
    health: tuple[Level, str] = (Level.OK, 'ok')
    error: str | None = None          # why configure failed
    preparing: str | None = None      # progress of export/profile before configure
    active: bool = False
    topic: str = 'image'
    publishers: int = 0
    silent_s: float = 0.0             # seconds without a frame (since activation at most)
    received: int = 0                 # frames since activation or the publishers changed


def level_and_message(i: Inputs) -> tuple[Level, str]:
    """The level and message: configure errors, preparation, input, then the recent window."""
    if i.error:
        return Level.ERROR, i.error
    if i.preparing is not None:
        return Level.OK, f'preparing: {i.preparing}'
    if not i.active:
        return Level.STALE, 'inactive'
    level, message = i.health
    if level == Level.ERROR:
        return level, message
    if i.publishers and i.silent_s > SILENT_INPUT_S:
        arrived = f' ({i.received} arrived since the publishers changed)' if i.received else ''
        return Level.WARN, (
            f'{i.publishers} publisher(s) on {i.topic} but no frame for {i.silent_s:.0f} s'
            f'{arrived}: unless the camera stopped, with best-effort QoS Fast DDS loses frames '
            "larger than the publisher's shared-memory segment (512 KiB by default) or the "
            'socket buffers, and an incompatible QoS delivers nothing; start the camera with '
            f'FASTDDS_DEFAULT_PROFILES_FILE (FASTRTPS_DEFAULT_PROFILES_FILE before Kilted) = '
            f'<prefix>/{PROFILE_FILE} (the launch file sets it), or subscribe reliably: '
            f'qos_overrides.{i.topic}.subscription.reliability: reliable')
    if i.frames.get('last_input_age_s', float('inf')) > STALE_AFTER_S:
        return Level.STALE, ('no input images' + ('' if i.publishers
                                                  else f' (no publisher on {i.topic})'))
    return level, message


def status(i: Inputs) -> DiagnosticStatus:
    """Build the status message."""
    level, message = level_and_message(i)
    values = {**i.frames, **i.engine}
    return DiagnosticStatus(level=bytes([int(level)]), name=i.name, message=message,
                            hardware_id=i.hardware_id,
                            values=[KeyValue(key=k, value=_fmt(v)) for k, v in values.items()])


def array(stamp: Any, *statuses: DiagnosticStatus) -> DiagnosticArray:
    """Wrap statuses into one message."""
    msg = DiagnosticArray()
    msg.header.stamp = stamp
    msg.status = list(statuses)
    return msg


@dataclass
class BudgetInputs:
    """What the node knows about the memory budget its streams share."""

    name: str
    hardware_id: str
    budget_bytes: int | None          # memory_budget_mb (None: 0, the engines' minimums)
    engines: dict[str, dict[str, Any]] = field(default_factory=dict)   # engine -> figures
    streams: dict[str, dict[str, float]] = field(default_factory=dict)  # stream -> counters
    disk_read_bps: float = 0.0        # all engines' reads over the last period
    unsatisfied: dict[str, str] = field(default_factory=dict)  # stream -> why it cannot be met
    waiting: tuple[str, ...] = ()     # engines whose larger plan waits for others to shrink
    planning: bool = False            # a joint plan is being searched (auto_tune)
    auto_tune: bool = False
    active: bool = False
    error: str | None = None


def budget_status(i: BudgetInputs) -> DiagnosticStatus:
    """The shared budget: weight memory in all, the split per engine, the disk, misses.

    WARN names the streams whose deadline the joint plan cannot meet.
    """
    held = sum(int(e.get('weight_bytes', 0)) for e in i.engines.values())
    planned = sum(int(e.get('budget_bytes', 0)) for e in i.engines.values())
    if i.error:
        level, message = Level.ERROR, i.error
    elif not i.active:
        level, message = Level.STALE, 'inactive'
    elif i.unsatisfied:
        level = Level.WARN
        message = ('the joint plan cannot meet the deadline of ' + '; '.join(
            f'{s} ({why})' for s, why in i.unsatisfied.items()))
    else:
        level = Level.OK
        message = (f'{len(i.engines)} engine(s) for {len(i.streams)} streams: {held / 2**20:.1f}'
                   f' MiB held within {planned / 2**20:.1f} MiB planned')
    values: dict[str, Any] = {
        'budget_bytes': i.budget_bytes if i.budget_bytes is not None else planned,
        'planned_bytes': planned, 'weight_bytes': held, 'engines': len(i.engines),
        'auto_tune': i.auto_tune, 'disk_read_bps': i.disk_read_bps,
        'unsatisfied': ','.join(i.unsatisfied), 'waiting_to_grow': ','.join(i.waiting),
        'planning': i.planning}
    for e, fig in i.engines.items():
        values.update({f'engine.{e}.{k}': v for k, v in fig.items()})
    for s, counts in i.streams.items():
        values.update({f'stream.{s}.{k}': v for k, v in counts.items()})
    return DiagnosticStatus(level=bytes([int(level)]), name=i.name, message=message,
                            hardware_id=i.hardware_id,
                            values=[KeyValue(key=k, value=_fmt(v)) for k, v in values.items()])


def frame_stats(r: FrameReport, name: str, hardware_id: str) -> DiagnosticArray:
    """One processed frame as ``~/frame_stats``: the header stamp is the frame's.

    WARN when the frame missed its deadline. Keys: inference_ms, latency_ms, deadline_ms,
    missed, predicted_ms (empty when unknown), mode, budget_bytes, weight_bytes,
    resident_units, auto_tune.
    """
    values = {'inference_ms': r.inference_ms, 'latency_ms': r.latency_ms,
              'deadline_ms': r.deadline_ms, 'missed': r.missed,
              'predicted_ms': '' if r.predicted_ms is None else r.predicted_ms,
              'mode': r.mode, 'budget_bytes': r.budget_bytes, 'weight_bytes': r.weight_bytes,
              'resident_units': r.resident_units, 'auto_tune': r.auto_tune}
    st = DiagnosticStatus(level=bytes([int(Level.WARN if r.missed else Level.OK)]), name=name,
                          message='deadline missed' if r.missed else 'ok',
                          hardware_id=hardware_id,
                          values=[KeyValue(key=k, value=_fmt(v)) for k, v in values.items()])
    msg = DiagnosticArray()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(r.stamp_ns, 1_000_000_000)
    msg.status = [st]
    return msg


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f'{v:.3f}'
    return str(v)
