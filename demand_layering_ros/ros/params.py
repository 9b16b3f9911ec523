# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The node's parameters: descriptors with ranges, and validation that says why it refuses."""

from __future__ import annotations

from typing import Any

from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                ParameterType)

from ..perception.models import DETECTORS
from ..realtime.deadline import POLICIES

EXECUTION_MODES = ('preload', 'sequential', 'pipelined', 'auto')
TRANSPORTS = ('raw', 'compressed')

# name: (default, description, read_only, range (lo, hi, step) or None)
SPEC: dict[str, tuple[Any, str, bool, tuple[float, float, float] | None]] = {
    'model': ('fasterrcnn_mobilenet_v3_large_320_fpn',
              f'torchvision detector builder name: {", ".join(DETECTORS)}', True, None),
    'weights': ('none', 'none (seeded random: boxes are not meaningful) | DEFAULT (torchvision '
                'download, networked robots) | path to a safetensors or state-dict file', True,
                None),
    'store_path': ('', 'layer store file; empty: ~/.cache/demand_layering_ros/<model>-<weights>'
                   '.dls, exported in a child process when missing', True, None),
    'device': ('cpu', 'cpu | cuda | cuda:N', True, None),
    'input_transport': ('raw', 'raw (subscribes image) | compressed (image/compressed)', True,
                        None),
    'input_size': ([0, 0], '[height, width] the image is resized to before inference; [0, 0] '
                   'keeps the camera size', True, None),
    'autostart': (True, 'configure and activate on start (lifecycle)', True, None),
    'memory_budget_mb': (0.0, 'weight memory budget in MiB (buffers, in-flight and resident '
                         'units); 0 = the least the execution mode accepts', False,
                         (0.0, 65536.0, 0.0)),
    'execution_mode': ('pipelined', 'preload | sequential | pipelined | auto (pipelined at the '
                       'budget; no streaming when the budget holds the model)', False, None),
    'resident_units': ([''], 'unit names kept loaded permanently ([""] = none)', False, None),
    'deadline_ms': (500.0, 'a frame is due this long after its header stamp (node clock)', False,
                    (1.0, 600000.0, 0.0)),
    'deadline_policy': ('skip_stale', 'skip_stale (drop frames already late) | abort (also '
                        'cancel an inference between units once now + the predicted remaining '
                        'compute passes the deadline) | complete', False, None),
    'auto_tune': (False, 'the planner picks mode, budget and resident units: the least memory '
                  'whose predicted delay meets deadline_ms, within memory_budget_mb (0: no cap); '
                  're-plans when measured delay drifts from the prediction; while on, '
                  'execution_mode and resident_units are the planner\'s', False, None),
    'score_threshold': (0.5, 'drop detections scoring below this', False, (0.0, 1.0, 0.0)),
    'max_detections': (100, 'publish at most this many detections per frame', False,
                       (1, 10000, 1)),
    'class_filter': ([''], 'publish only these class names or ids ([""] = all)', False, None),
    'debug_image': (True, 'publish ~/debug_image (only computed while someone subscribes)',
                    False, None),
}


def descriptor(name: str) -> ParameterDescriptor:
    """The ParameterDescriptor for ``name`` (description, range, read-only)."""
    default, text, read_only, rng = SPEC[name]
    d = ParameterDescriptor(name=name, description=text, read_only=read_only)
    if isinstance(default, list):
        d.type = (ParameterType.PARAMETER_INTEGER_ARRAY if isinstance(default[0], int)
                  else ParameterType.PARAMETER_STRING_ARRAY)
    if rng is not None:
        if isinstance(default, int) and not isinstance(default, bool):
            d.integer_range = [IntegerRange(from_value=int(rng[0]), to_value=int(rng[1]),
                                            step=int(rng[2]))]
        else:
            d.floating_point_range = [FloatingPointRange(from_value=rng[0], to_value=rng[1],
                                                         step=rng[2])]
    return d


def check(name: str, value: Any) -> str | None:
    """Why ``value`` is not acceptable for ``name`` (None when it is); engine checks come later."""
    if name == 'model' and value not in DETECTORS:
        return f'model {value!r} is not a served detector ({", ".join(DETECTORS)})'
    if name == 'execution_mode' and value not in EXECUTION_MODES:
        return f'execution_mode {value!r}: one of {", ".join(EXECUTION_MODES)}'
    if name == 'deadline_policy' and value not in POLICIES:
        return f'deadline_policy {value!r}: one of {", ".join(POLICIES)}'
    if name == 'input_transport' and value not in TRANSPORTS:
        return f'input_transport {value!r}: one of {", ".join(TRANSPORTS)}'
    if name == 'device' and not (value == 'cpu' or str(value).startswith('cuda')):
        return f'device {value!r}: cpu, cuda or cuda:N'
    if name == 'input_size' and (len(value) != 2 or min(value) < 0 or
                                 (0 in value and any(value))):
        return f'input_size {list(value)}: [height, width], both positive, or [0, 0]'
    return None
