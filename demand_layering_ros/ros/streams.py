# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Several camera streams in one node: their names, dotted parameters and shared engines.

With ``streams: [front, rear]`` each stream has parameters of its own, named ``front.model``,
``front.deadline_ms``, ... (by default the node-wide parameter of the same name), and topics
under its name. Streams whose detectors are the same - model, weights, store, device and input
size - share one engine: each weight held once. On a CPU the engine runs its streams'
inferences side by side, a lane per stream (engine.lanes: the resident units held once, each lane
streaming the rest); otherwise, or with ``engines_take_turns``, one at a time. Plain data: what
the node declares, and how accepted values become per-stream views and engines.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from rcl_interfaces.msg import ParameterDescriptor

from .params import descriptor as global_descriptor, detector_spec
from ..perception.detector import EngineRequest
from ..perception.prepare import DetectorSpec

# what each stream sets for itself; the rest is node-wide: one process (num_threads,
# autostart), one budget (memory_budget_mb for all streams, auto_tune and auto_tune_quantile for
# the joint plan)
PER_STREAM = ('model', 'weights', 'store_path', 'device', 'input_transport', 'input_size',
              'memory_budget_mb', 'deadline_ms', 'deadline_reference', 'deadline_policy',
              'score_threshold', 'max_detections', 'class_filter', 'max_input_pixels',
              'debug_image')
# a stream's own budget is an override of its share, not a copy of the node's whole budget
STREAM_BUDGET = ('weight memory in MiB fixed for this stream\'s engine out of the node\'s '
                 'memory_budget_mb (streams sharing an engine: the largest applies); 0 = its '
                 'share of the joint plan')
# the store belongs to one model and weights: inherited only where those are the node's too
FOLLOWS_MODEL = ('store_path',)


def names(value: Sequence[str]) -> tuple[str, ...]:
    """The stream names a ``streams`` value lists ([""]: none, the single unnamed stream)."""
    return tuple(n.strip() for n in value if n.strip())


def parameter(stream: str, name: str) -> str:
    """The dotted parameter ``name`` of ``stream`` (``front.deadline_ms``)."""
    return f'{stream}.{name}'


def split(param: str, streams: Sequence[str]) -> tuple[str, str]:
    """(stream, name) of a parameter; ('', param) for the node-wide ones."""
    stream, dot, name = param.partition('.')
    if dot and stream in streams and name in PER_STREAM:
        return stream, name
    return '', param


def default(stream: str, name: str, values: Mapping[str, Any]) -> Any:
    """A stream parameter's default, from the node-wide values (and the stream's so far).

    ``values`` holds the node-wide parameters and the stream's parameters declared before this
    one (PER_STREAM order: model and weights come before store_path).
    """
    if name == 'memory_budget_mb':
        return 0.0
    if name in FOLLOWS_MODEL and any(values[parameter(stream, k)] != values[k]
                                     for k in ('model', 'weights')):
        return ''
    return values[name]


def descriptor(stream: str, name: str) -> ParameterDescriptor:
    """The descriptor of ``stream``'s parameter ``name`` (the node-wide one's range)."""
    d = global_descriptor(name)
    d.name = parameter(stream, name)
    d.description = (STREAM_BUDGET if name == 'memory_budget_mb'
                     else f'stream {stream}: {d.description}')
    return d


def view(stream: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The stream's values under the single-stream names (its own over the node-wide)."""
    if not stream:
        return dict(values)
    return {**values, **{n: values[parameter(stream, n)] for n in PER_STREAM}}


@dataclass(frozen=True)
class Engine:
    """One detector (executor) and the streams it serves."""

    name: str                  # the streams it serves, joined by '+' ('' for the single stream)
    spec: DetectorSpec
    streams: tuple[str, ...]


def key(spec: DetectorSpec) -> tuple[Any, ...]:
    """What makes two streams' detectors the same engine."""
    return (spec.model, spec.weights, Path(spec.store_path).expanduser().resolve(),
            spec.device, spec.input_hw)


def engines(streams: Sequence[str], values: Mapping[str, Any]) -> list[Engine]:
    """Group streams into engines, in the order of their first stream.

    ValueError when two different detectors name one store file (its content is one model's).
    """
    groups: dict[tuple[Any, ...], list[str]] = {}
    specs: dict[tuple[Any, ...], DetectorSpec] = {}
    for s in streams or ('',):
        spec = detector_spec(view(s, values))
        if s:  # until the joint plan is made: the least memory (profiling needs no more)
            spec = replace(spec, engine=EngineRequest())
        k = key(spec)
        groups.setdefault(k, []).append(s)
        specs.setdefault(k, spec)
    # engines on other devices or input sizes may share a store; other weights may not
    stores: dict[Path, tuple[tuple[str, str], list[str]]] = {}
    for k, members in groups.items():
        weights, users = stores.setdefault(k[2], (k[:2], []))
        if weights != k[:2]:
            raise ValueError(f'streams {", ".join(users)} and {", ".join(members)} use different '
                             f'models or weights but one store file ({k[2]}): give each its '
                             'own store_path')
        users += members
    built = [Engine('+'.join(m), specs[k], tuple(m)) for k, m in groups.items()]
    if values['engines_take_turns']:
        return built   # one inference at a time: each on all the threads
    # a lane per stream (lanes run on the CPU only: on a GPU inferences take turns)
    built = [replace(e, spec=replace(e.spec, lanes=len(e.streams)))
             if len(e.streams) > 1 and e.spec.device == 'cpu' else e for e in built]
    return share_threads(built, int(values['num_threads']))


def share_threads(engines: list[Engine], num_threads: int) -> list[Engine]:
    """Inferences running side by side (engines, and lanes of an engine) split the threads.

    Each on all the threads would run twice as many compute threads as there are cores whenever
    both infer, and their OpenMP teams, spinning for cores the other needs, slow both (bench
    --streams, two models: rear p50 259 ms in one node on 2 threads vs 186 ms as two nodes on 1
    thread each). torch has one thread count per process, so it is a share for every engine
    (profiled at it). ``num_threads`` 0: the CPUs this process may run on.
    """
    sharers = sum(e.spec.lanes for e in engines)
    if sharers < 2:
        return engines
    share = thread_share(num_threads or len(os.sched_getaffinity(0)), sharers)
    return [replace(e, spec=replace(e.spec, num_threads=share)) for e in engines]


def thread_share(threads: int, sharers: int) -> int:
    """What each of ``sharers`` inferring side by side gets of ``threads`` (at least one)."""
    return max(1, threads // sharers)
