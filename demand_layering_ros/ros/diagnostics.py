# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""One DiagnosticStatus for the detector: rates, latency, drops, memory; STALE without input."""

from __future__ import annotations

from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

STALE_AFTER_S = 3.0


def status(name: str, frames: dict[str, float], engine: dict[str, Any], error: str | None,
           active: bool) -> DiagnosticStatus:
    """Build the status: ERROR on a degraded node, STALE without input, WARN on misses."""
    if error:
        level, message = DiagnosticStatus.ERROR, error
    elif not active:
        level, message = DiagnosticStatus.STALE, 'inactive'
    elif frames.get('last_input_age_s', float('inf')) > STALE_AFTER_S:
        level, message = DiagnosticStatus.STALE, 'no input images'
    elif frames.get('deadline_missed', 0) or frames.get('aborted', 0):
        level, message = DiagnosticStatus.WARN, 'deadline misses'
    else:
        level, message = DiagnosticStatus.OK, 'ok'
    values = {**{k: v for k, v in frames.items()}, **engine}
    return DiagnosticStatus(level=level, name=name, message=message, hardware_id='',
                            values=[KeyValue(key=k, value=_fmt(v)) for k, v in values.items()])


def array(stamp: Any, st: DiagnosticStatus) -> DiagnosticArray:
    """Wrap one status."""
    msg = DiagnosticArray()
    msg.header.stamp = stamp
    msg.status = [st]
    return msg


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f'{v:.3f}'
    return str(v)
