# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The node's parameters: descriptors with ranges, validation that says why it refuses.

Accepted values become plain records - the per-frame settings snapshot, the engine request and
the detector spec - so the node's hot path reads attributes, never parameters.
"""

from __future__ import annotations

from pathlib import Path
import re
from typing import Any, Mapping, Sequence

from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                ParameterType)

from ..perception.detector import default_store_path, EngineRequest
from ..perception.models import DETECTORS
from ..perception.prepare import DetectorSpec
from ..realtime.deadline import DeadlinePolicy, DeadlineReference, POLICIES, REFERENCES
from ..realtime.settings import DEFAULT_MAX_INPUT_PIXELS, Settings

MiB = 2 ** 20
EXECUTION_MODES = ('preload', 'sequential', 'pipelined', 'auto')
TRANSPORTS = ('raw', 'compressed')
# parameters that change the executor's configuration (applied between two frames)
ENGINE = ('memory_budget_mb', 'execution_mode', 'resident_units')
# torchvision's COCO list pads unused ids with these; they are not classes to filter on
NOT_CLASSES = ('__background__', 'N/A')
# parameters (or their prefixes) every rclpy node has: a stream of one of these names would
# shadow them (``use_sim_time.model``)
ROS_PARAMETERS = ('qos_overrides', 'use_sim_time', 'start_type_description_service')

# name: (default, description, read_only, range (lo, hi, step) or None)
SPEC: dict[str, tuple[Any, str, bool, tuple[float, float, float] | None]] = {
    'model': ('fasterrcnn_mobilenet_v3_large_320_fpn',
              f'torchvision detector builder name: {", ".join(DETECTORS)}', True, None),
    'weights': ('none', 'none (seeded random: boxes are not meaningful) | DEFAULT (torchvision '
                'download, networked robots) | path to a safetensors or state-dict file', True,
                None),
    'store_path': ('', 'layer store file; empty: <model>-<random|default|file stem-digest>'
                   '-s2.dls in $DEMAND_LAYERING_STORES or ~/.cache/demand_layering_ros, exported '
                   'in a child process when missing', True, None),
    'device': ('cpu', 'cpu | cuda | cuda:N', True, None),
    'num_threads': (0, 'torch intra-op threads for inference (a robot shares its CPU); 0 = '
                    "torch's default (OMP_NUM_THREADS or the core count); with streams on "
                    'several engines inferring side by side, each gets an equal share of them '
                    '(0: of the CPUs)',
                    True, (0, 1024, 1)),
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
    'deadline_ms': (500.0, 'a frame is due this long after its deadline reference (node clock)',
                    False, (1.0, 600000.0, 0.0)),
    'deadline_reference': ('stamp', 'stamp (the header stamp: end-to-end, needs the camera on '
                           'the node clock) | arrival (when the node received the frame: '
                           'cameras that stamp with a clock of their own)', False, None),
    'deadline_policy': ('skip_stale', 'skip_stale (drop frames already late) | abort (also '
                        'cancel an inference between units once now + the predicted remaining '
                        'compute passes the deadline) | complete', False, None),
    'auto_tune': (False, 'the planner picks mode, budget and resident units: the least memory '
                  'whose predicted delay meets deadline_ms, within memory_budget_mb (0: no cap); '
                  're-plans when measured delay drifts from the prediction; while on, '
                  'execution_mode and resident_units are the planner\'s', False, None),
    'auto_tune_quantile': (0.9, 'the share of frames auto_tune plans to finish within '
                           'deadline_ms: it aims this quantile of the measured / predicted '
                           'inference time, and of the time outside inference, at the deadline '
                           '(0.9: one frame in ten may miss; 0.99 for at most one in a hundred, '
                           'at the cost of more weight memory); with streams, for all of them',
                           False, (0.5, 0.999, 0.0)),
    'score_threshold': (0.5, 'drop detections scoring below this', False, (0.0, 1.0, 0.0)),
    'max_detections': (100, 'publish at most this many detections per frame', False,
                       (1, 10000, 1)),
    'class_filter': ([''], 'publish only these class names or ids ([""] = all); names must be '
                     "classes of the model", False, None),
    'max_input_pixels': (DEFAULT_MAX_INPUT_PIXELS, 'refuse images with more pixels than this '
                         '(compressed images before decoding, from their header)', False,
                         (1, 16384 * 16384, 1)),
    'debug_image': (True, 'publish ~/debug_image (only computed while someone subscribes)',
                    False, None),
    'streams': ([''], 'camera streams served by this node under one memory budget, e.g. '
                '[front, rear]: each has its input and outputs under its name (front/image, '
                'front/detections) and parameters front.model, front.deadline_ms, ...; [""] = '
                "one unnamed stream with today's topic and parameter names", True, None),
    'engines_take_turns': (False, 'with streams: one inference at a time across all engines, '
                           'the nearest deadline first, each on all of num_threads; false: '
                           'engines, and on the CPU a lane per stream of one engine, infer '
                           'side by side, each on its share of num_threads', True, None),
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


# what a value given as another type means, for the parameter types a user writes loosely:
# ``deadline_ms:=300`` (an integer for a double), ``class_filter:=person`` (one string for a
# list), ``class_filter: [1, 3]`` (ids as integers), ``resident_units: []`` (an empty YAML list,
# which ROS passes with no type at all: the parameter's own "none")
_AS = {
    (ParameterType.PARAMETER_DOUBLE, ParameterType.PARAMETER_INTEGER): float,
    (ParameterType.PARAMETER_INTEGER, ParameterType.PARAMETER_DOUBLE):
        lambda v: int(v) if float(v).is_integer() else v,
    (ParameterType.PARAMETER_STRING_ARRAY, ParameterType.PARAMETER_STRING): lambda v: [v],
    (ParameterType.PARAMETER_STRING_ARRAY, ParameterType.PARAMETER_INTEGER_ARRAY):
        lambda v: [str(i) for i in v],
}


def loosely(expected: int, given: int, value: Any, default: Any) -> Any:
    """``value``, of ROS parameter type ``given``, as the type ``expected`` where it means one.

    Otherwise unchanged (the type check then refuses it with its reason). An empty list (no
    type) is the parameter's default for the list parameters, whose defaults mean "none"
    ([""]) or "keep" ([0, 0]).
    """
    if given == ParameterType.PARAMETER_NOT_SET and isinstance(default, list):
        return list(default)
    convert = _AS.get((expected, given))
    return value if convert is None else convert(value)


def class_names(categories: Sequence[str]) -> list[str]:
    """The model's class names a filter may use."""
    return [c for c in categories if c not in NOT_CLASSES]


def check(name: str, value: Any, categories: Sequence[str] = ()) -> str | None:
    """Why ``value`` is not acceptable for ``name`` (None when it is); engine checks come later.

    ``categories`` are the model's classes (class_filter is checked against them).
    """
    if name == 'model' and value not in DETECTORS:
        return f'model {value!r} is not a served detector ({", ".join(DETECTORS)})'
    if name == 'execution_mode' and value not in EXECUTION_MODES:
        return f'execution_mode {value!r}: one of {", ".join(EXECUTION_MODES)}'
    if name == 'deadline_policy' and value not in POLICIES:
        return f'deadline_policy {value!r}: one of {", ".join(POLICIES)}'
    if name == 'deadline_reference' and value not in REFERENCES:
        return f'deadline_reference {value!r}: one of {", ".join(REFERENCES)}'
    if name == 'input_transport' and value not in TRANSPORTS:
        return f'input_transport {value!r}: one of {", ".join(TRANSPORTS)}'
    if name == 'device' and not (value == 'cpu' or str(value).startswith('cuda')):
        return f'device {value!r}: cpu, cuda or cuda:N'
    if name == 'input_size' and (len(value) != 2 or min(value) < 0 or
                                 (0 in value and any(value))):
        return f'input_size {list(value)}: [height, width], both positive, or [0, 0]'
    if name == 'streams':
        return check_stream_names(value)
    if name == 'class_filter' and categories:
        names = class_names(categories)
        unknown = [c for c in value if c.strip() and c.strip() not in names
                   and not (c.strip().isdigit() and int(c.strip()) < len(categories)
                            and categories[int(c.strip())] not in NOT_CLASSES)]
        if unknown:
            return (f'class_filter {unknown}: not classes of this model (class names or ids '
                    f'0..{len(categories) - 1} except those of {", ".join(NOT_CLASSES)}; names: '
                    f'{", ".join(names)})')
    return None


def check_stream_names(value: Sequence[str]) -> str | None:
    """Why a ``streams`` list is not acceptable (None when it is)."""
    names = [n.strip() for n in value if n.strip()]
    for n in names:
        # a stream's name starts its topics and its parameters' names: a ROS name token
        if not re.fullmatch(r'[A-Za-z][A-Za-z0-9_]*', n):
            return (f'streams: {n!r} is not a valid stream name (a letter, then letters, digits '
                    'or underscores)')
        if n in SPEC or n in ROS_PARAMETERS:
            return f'streams: {n!r} is the name of a node parameter; choose another name'
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        return f'streams: {", ".join(twice)} named more than once'
    return None


def settings_from(values: Mapping[str, Any]) -> Settings:
    """The per-frame settings snapshot of accepted parameter values."""
    cap = values['memory_budget_mb']
    return Settings(
        deadline_ms=float(values['deadline_ms']),
        deadline_policy=DeadlinePolicy(values['deadline_policy']),
        deadline_reference=DeadlineReference(values['deadline_reference']),
        score_threshold=float(values['score_threshold']),
        max_detections=int(values['max_detections']),
        class_filter=tuple(c.strip() for c in values['class_filter'] if c.strip()),
        max_input_pixels=int(values['max_input_pixels']),
        debug_image=bool(values['debug_image']),
        auto_tune=bool(values['auto_tune']),
        auto_tune_quantile=float(values['auto_tune_quantile']),
        budget_cap_bytes=int(cap * MiB) if cap > 0 else None)


def engine_from(values: Mapping[str, Any]) -> EngineRequest:
    """The executor configuration the parameters ask for (budget 0 = the mode's minimum)."""
    mode = values['execution_mode']
    budget = values['memory_budget_mb']
    return EngineRequest(mode='pipelined' if mode == 'auto' else mode,
                         budget_bytes=int(budget * MiB) if budget > 0 else None,
                         resident=tuple(r for r in values['resident_units'] if r))


def detector_spec(values: Mapping[str, Any]) -> DetectorSpec:
    """What configure builds: the detector, its store and how it runs."""
    store = (Path(values['store_path']) if values['store_path']
             else default_store_path(values['model'], values['weights']))
    size = tuple(values['input_size'])
    return DetectorSpec(model=values['model'], weights=values['weights'], store_path=store,
                        device=values['device'],
                        input_hw=(int(size[0]), int(size[1])) if any(size) else None,
                        num_threads=int(values['num_threads']), engine=engine_from(values))
