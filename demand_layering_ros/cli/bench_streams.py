# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""``demand-layering bench --streams``: two cameras in one node vs two nodes, measured.

Two scenarios - (a) the same detector on two cameras, (b) two different detectors - each run
as (1) one node with two streams (``streams: [front, rear]``, every engine at its pipelined
minimum; for (a) a lane per camera), and with ``engines_take_turns`` (one inference at a time
on all the threads; for (a) one lane), (2) two single-stream nodes, each at its
own pipelined minimum, with ``--threads`` each and (``separate_split``) with them split between
the two, (3) two preloaded single-stream nodes. Every setup replays the same
two-camera bag (``bag play --clock``, the nodes on use_sim_time) and is measured the same way:
the nodes' PSS and RSS summed over their processes (``/proc/PID/smaps_rollup``, sampled twice
a second while the bag plays: peak and steady, the median of the second half), weight memory
from diagnostics (the executors' peaks, summed), and per stream the inference p50, latency
p50, deadline misses and frames lost. Stores are exported and profiled once, before any setup
runs, so no node exports or profiles. With ``--rounds`` every setup runs once per round, the
setups interleaved, and each is judged by its rounds pooled (``pooled``): the median of the
rounds' p50s and memory, the sum of misses and losses. With ``--auto-tune-quantile Q`` every
node but the preloaded ones runs ``auto_tune`` at that quantile of frames on time; frames
after the first ``--warmup-frames`` of each camera are counted apart (``after_warmup``: late,
lost, and whether the node's joint plan called every deadline feasible meanwhile).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import random
import statistics
import subprocess
import sys
import threading
import time
from typing import Any, Callable

from .processes import stop

SCENARIOS = ('same', 'different')
SETUPS = ('one_node', 'one_node_turns', 'separate', 'separate_split', 'preloaded')
ONE_NODE = ('one_node', 'one_node_turns')
BASELINES = ('separate', 'separate_split', 'preloaded')   # one node is compared with each
SAMPLE_S = 0.5          # memory sampling period
SETTLE_S = 60.0         # after the bag: until every frame is accounted for
CONFIGURE_S = 600.0     # a node's configure (stores are ready: only loading)


def add_arguments(b: argparse.ArgumentParser) -> None:
    """The options of ``bench --streams`` (on the bench subcommand's parser)."""
    g = b.add_argument_group('two streams (--streams)')
    g.add_argument('--streams', action='store_true', help='benchmark two camera streams in one '
                   'node against two nodes (memory and per-stream latency) instead')
    g.add_argument('--same', default='fasterrcnn_mobilenet_v3_large_320_fpn',
                   help='scenario (a): this detector on both cameras')
    g.add_argument('--different', nargs=2, metavar=('FRONT', 'REAR'),
                   default=['fasterrcnn_mobilenet_v3_large_320_fpn',
                            'ssdlite320_mobilenet_v3_large'],
                   help='scenario (b): one detector per camera')
    g.add_argument('--scenarios', nargs='+', choices=SCENARIOS, default=list(SCENARIOS))
    g.add_argument('--setups', nargs='+', choices=SETUPS, default=list(SETUPS))
    g.add_argument('--camera-frames', type=int, default=60, help='frames per camera in the bag')
    g.add_argument('--rounds', type=int, default=1, help='run every setup this many times, '
                   'interleaved (this machine\'s speed drifts by more than the differences '
                   'measured): figures are pooled over the rounds')
    g.add_argument('--rate', type=float, default=0.05, help='bag play rate (30 Hz cameras; the '
                   'nodes must keep up: a frame superseded counts as lost)')
    g.add_argument('--deadline-ms', type=float, default=100.0,
                   help='per-stream deadline on the node clock (which runs at --rate)')
    g.add_argument('--auto-tune-quantile', type=float, default=None, metavar='Q',
                   help='run the nodes (not the preloaded ones) with auto_tune, planning for '
                   'this share of frames within --deadline-ms')
    g.add_argument('--warmup-frames', type=int, default=0, help='frames per camera before the '
                   'after_warmup counts start (the tuner\'s measured / predicted history)')
    g.add_argument('--input-size', type=int, nargs=2, metavar=('H', 'W'), default=None,
                   help='the nodes resize frames to this before inference (default: 480x640)')


def dispatch(single: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """The bench command: the stream benchmark with --streams, ``single`` otherwise."""
    def run(args: argparse.Namespace) -> int:
        return run_streams(args) if args.streams else single(args)
    return run


# -- memory ---------------------------------------------------------------------------------
def rollup(pid: int) -> tuple[int, int]:
    """(PSS, RSS) of a process in bytes (0, 0 once it is gone)."""
    try:
        with open(f'/proc/{pid}/smaps_rollup') as f:
            fields = {ln.split(':')[0]: int(ln.split()[1]) * 1024 for ln in f
                      if ln.startswith(('Pss:', 'Rss:'))}
    except (OSError, ValueError, IndexError):
        return 0, 0
    return fields.get('Pss', 0), fields.get('Rss', 0)


class Sampler:
    """Samples the summed PSS and RSS of processes on a thread of its own."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.samples: list[tuple[int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> 'Sampler':
        self._thread.start()
        return self

    def stop(self) -> dict[str, int]:
        """Stop; peak and steady (median of the second half) PSS and RSS."""
        self._stop.set()
        self._thread.join(timeout=5)
        pss = [p for p, _r in self.samples] or [0]
        rss = [r for _p, r in self.samples] or [0]
        half = len(pss) // 2
        return {'pss_peak_bytes': max(pss), 'rss_peak_bytes': max(rss),
                'pss_steady_bytes': int(statistics.median(pss[half:])),
                'rss_steady_bytes': int(statistics.median(rss[half:])),
                'samples': len(self.samples)}

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            per = [rollup(pid) for pid in self.pids]
            self.samples.append((sum(p for p, _r in per), sum(r for _p, r in per)))


# -- processes ------------------------------------------------------------------------------
def node_args(stream_topics: dict[str, str]) -> list[str]:
    """What every node of the bench gets: the bag's clock, reliable inputs, no debug image."""
    args = ['-p', 'use_sim_time:=true', '-p', 'debug_image:=false']
    for topic in stream_topics.values():
        args += ['-p', f'qos_overrides.{topic}.subscription.reliability:=reliable',
                 '-p', f'qos_overrides.{topic}.subscription.depth:=10']
    return args


def start(ros_args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """A node process of this interpreter, in a session of its own (killed as a group).

    Its log goes to ``log`` (a pipe nobody reads while it runs would block a node that logs
    more than the pipe holds).
    """
    cmd = [sys.executable, '-m', 'demand_layering_ros.ros.node', '--ros-args', *ros_args]
    with open(log, 'wb') as f:
        return subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=f)


def setup_processes(setup: str, models: dict[str, str], stores: dict[str, Path],
                    topics: dict[str, str], args: argparse.Namespace) -> list[list[str]]:
    """The ROS arguments of each node process of a setup."""
    size = (['-p', f'input_size:=[{args.input_size[0]}, {args.input_size[1]}]']
            if args.input_size else [])
    common = ['-p', f'num_threads:={setup_threads(setup, len(models), args.threads)}',
              '-p', f'device:={args.device}', '-p', f'deadline_ms:={args.deadline_ms}', *size]
    if args.auto_tune_quantile is not None and setup != 'preloaded':
        common += ['-p', 'auto_tune:=true', '-p', f'auto_tune_quantile:={args.auto_tune_quantile}']
    if setup in ONE_NODE:
        ros = [*node_args(topics), *common, '-p', f'streams:=[{", ".join(models)}]',
               '-p', 'memory_budget_mb:=0.0',
               '-p', f'engines_take_turns:={str(setup == "one_node_turns").lower()}']
        for s in models:
            ros += ['-p', f'{s}.model:={models[s]}', '-p', f'{s}.store_path:={stores[s]}',
                    '-r', f'{s}/image:={topics[s]}']
        return [ros]
    mode = 'preload' if setup == 'preloaded' else 'pipelined'
    return [[*node_args({s: topics[s]}), *common, '-r', f'__ns:=/{s}',
             '-p', f'model:={models[s]}', '-p', f'store_path:={stores[s]}',
             '-p', f'execution_mode:={mode}', '-p', 'memory_budget_mb:=0.0',
             '-r', f'image:={topics[s]}'] for s in models]


def setup_threads(setup: str, nodes: int, threads: int) -> int:
    """Each node's intra-op threads: the machine's, or (``separate_split``) a share of them.

    Two nodes with every core's threads each run twice as many compute threads as there are cores
    whenever both infer; a user running two nodes on a small computer would split the cores.
    """
    from ..ros.streams import thread_share   # the node's own rule for its engines
    return thread_share(threads, nodes) if setup == 'separate_split' else threads


# -- one setup ------------------------------------------------------------------------------
class Probe:
    """This process's view of the nodes: their /diagnostics statuses, by stream."""

    def __init__(self, node: Any, streams: tuple[str, ...], warmup: int = 0) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        self.streams = streams
        self.status: dict[str, dict[str, str]] = {}
        self.weight_peaks: dict[str, int] = {}   # per engine (executor), its peak
        self.warmup = warmup
        self.at_warmup: dict[str, dict[str, str]] = {}   # each stream's status once warmed up
        self.budget_reports = 0   # the node's budget statuses after every stream's warm-up ...
        self.unsatisfied: dict[str, int] = {}   # ... in which a stream's deadline was infeasible
        self.lock = threading.Lock()
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on, 50)

    def _on(self, msg: Any) -> None:
        with self.lock:
            for st in msg.status:
                values = {kv.key: kv.value for kv in st.values}
                values['_message'] = st.message
                parts = st.name.split(': ')
                if parts[-1] == 'memory budget' and len(self.at_warmup) == len(self.streams):
                    self.budget_reports += 1
                    for s in filter(None, values.get('unsatisfied', '').split(',')):
                        self.unsatisfied[s] = self.unsatisfied.get(s, 0) + 1
                if parts[-1] != 'detector':
                    continue
                # one node with streams: '<node>: front: detector'; a node per stream:
                # '/front/demand_layering_node: detector'
                stream = parts[-2] if len(parts) == 3 else parts[0].split('/')[1]
                self.status[stream] = values
                if stream not in self.at_warmup and outcomes(values) >= self.warmup:
                    self.at_warmup[stream] = values
                if 'weight_bytes_peak' in values:
                    engine = values.get('engine', stream)
                    self.weight_peaks[engine] = max(self.weight_peaks.get(engine, 0),
                                                    int(values['weight_bytes_peak']))

    def ready(self) -> bool:
        with self.lock:
            return all('mode' in self.status.get(s, {}) and self.status[s]['_message'] not in (
                'inactive',) and not self.status[s]['_message'].startswith('preparing')
                for s in self.streams)

    def settled(self, frames: int) -> bool:
        with self.lock:
            return all(float(self.status.get(s, {}).get('received', -1)) >= frames and
                       outcomes(self.status[s]) >= frames for s in self.streams)


OUTCOMES = ('processed', 'superseded', 'dropped_stale', 'aborted', 'failed', 'rejected')


def outcomes(status: dict[str, str]) -> float:
    """Frames a stream's status has accounted for (processed or given up)."""
    return sum(float(status.get(k, 0)) for k in OUTCOMES)


def run_setup(scenario: str, setup: str, models: dict[str, str], stores: dict[str, Path],
              bag: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Start the setup's nodes, replay the bag, measure; the nodes are stopped in any case."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from ..bag.camera import camera_topic
    topics = {s: camera_topic(s) for s in models}
    logs = Path(args.stores) / 'logs'
    logs.mkdir(parents=True, exist_ok=True)
    procs = [start(a, logs / f'{scenario}-{setup}-{i}.log')
             for i, a in enumerate(setup_processes(setup, models, stores, topics, args))]
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('bench_streams_probe', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    probe = Probe(node, tuple(models), args.warmup_frames if args.auto_tune_quantile else 0)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    player = None
    try:
        _wait(lambda: probe.ready(), CONFIGURE_S, 'the nodes to configure', procs, logs)
        sampler = Sampler([p.pid for p in procs]).start()
        t0 = time.monotonic()
        player = subprocess.Popen([sys.executable, '-m', 'demand_layering_ros.cli.main', 'bag',
                                   'play', str(bag), '--clock', '--rate', str(args.rate)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        _wait(lambda: player.poll() is not None, args.camera_frames / 30 / args.rate + 60,
              'the bag to play', procs, logs)
        try:
            _wait(lambda: probe.settled(args.camera_frames), SETTLE_S, 'every frame', procs,
                  logs)
        except TimeoutError:
            pass   # counted below as frames lost
        memory = sampler.stop()
        played_s = time.monotonic() - t0
        time.sleep(1.5)   # a last diagnostics message
    finally:
        if player is not None:
            stop(player)
        for p in procs:
            stop(p)
        executor.shutdown()
        rclpy.shutdown(context=context)
        spin.join(timeout=5)
    with probe.lock:
        streams = {s: _stream_figures(probe.status.get(s, {}), args.camera_frames)
                   for s in models}
        if args.auto_tune_quantile is not None:
            for s, fig in streams.items():
                fig['after_warmup'] = _after(
                    probe.status.get(s, {}), probe.at_warmup.get(s), args.camera_frames,
                    probe.unsatisfied.get(s, 0) / probe.budget_reports
                    if probe.budget_reports else None)
        weight = sum(probe.weight_peaks.values())
    return {'scenario': scenario, 'setup': setup, 'models': models, 'processes': len(procs),
            'weight_bytes_peak': weight, 'seconds': played_s, **memory, 'streams': streams}


def _after(end: dict[str, str], warm: dict[str, str] | None, frames: int,
           infeasible: float | None) -> dict[str, Any] | None:
    """A stream's frames after its warm-up: how many, late (missed), lost, plan feasible.

    The frames counted are those accounted for after ``warm`` (the status once the first
    frames were). Late: processed after the deadline; lost: sent but never processed
    (superseded, dropped as stale, aborted, failed, never received). ``infeasible``: the share
    of the node's budget statuses meanwhile that named the stream as one whose deadline the
    joint plan cannot meet (None: no joint plan, a single stream). The predicted p99 is the
    single-stream tuner's for its plan in force at the end (none with streams: the joint plan
    has no tuner).
    """
    if warm is None:
        return None

    def diff(key: str) -> float:
        return float(end.get(key, 0)) - float(warm.get(key, 0))
    counted = frames - outcomes(warm)
    processed = diff('processed')
    return {'frames': counted, 'processed': processed, 'late': diff('deadline_missed'),
            'lost': counted - processed, 'late_or_lost_share':
            (diff('deadline_missed') + counted - processed) / counted if counted else None,
            'joint_plan_infeasible_share': infeasible,
            'predicted_ms_p99': float(end['predicted_ms_p99'])
            if end.get('predicted_ms_p99') not in (None, '') else None,
            'budget_bytes': float(end['budget_bytes']) if 'budget_bytes' in end else None}


def _stream_figures(status: dict[str, str], frames: int) -> dict[str, Any]:
    def num(key: str) -> float | None:
        return float(status[key]) if key in status else None
    processed = num('processed') or 0.0
    return {'model': status.get('model'), 'inference_ms_p50': num('inference_ms_p50'),
            'latency_ms_p50': num('latency_ms_p50'), 'deadline_missed': num('deadline_missed'),
            'processed': processed, 'lost': frames - processed,
            'weight_bytes_peak': num('weight_bytes_peak'), 'mode': status.get('mode')}


def _wait(cond: Callable[[], bool], timeout: float, what: str,
          procs: list[subprocess.Popen[bytes]], logs: Path) -> None:
    end = time.monotonic() + timeout
    while not cond():
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f'a node exited ({p.returncode}) while waiting for {what} '
                                   f'(its log is in {logs})')
        if time.monotonic() > end:
            raise TimeoutError(f'timed out waiting for {what}')
        time.sleep(0.1)


# -- the whole benchmark --------------------------------------------------------------------
def prepare(model: str, seed: int, args: argparse.Namespace) -> Path:
    """The store of ``model`` (exported once) and its profiles for the nodes' settings."""
    root = Path(args.stores)
    root.mkdir(parents=True, exist_ok=True)
    store = root / f'{model}-s{seed}.dls'
    cli = [sys.executable, '-m', 'demand_layering_ros.cli.main']
    if not store.exists():
        subprocess.run([*cli, 'export', '--model', model, '--seed', str(seed), '--out',
                        str(store)], check=True, capture_output=True, timeout=1800)
    size = ['--input-size', *map(str, args.input_size)] if args.input_size else []
    # a node profiles at configure: done here once, for each thread count a node may give it
    # (all of them, or a share: two nodes with their threads split, or one node's two engines)
    for threads in sorted({args.threads, setup_threads('separate_split', 2, args.threads)}):
        subprocess.run([*cli, 'profile', '--model', model, '--store', str(store), '--threads',
                        str(threads), '--device', args.device, *size], check=True,
                       capture_output=True, timeout=1800)
    return store


def pooled(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One figure set per scenario and setup from its rounds (a single round as it is)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r['scenario'], r['setup']), []).append(r)
    out = []
    for rounds in groups.values():
        if len(rounds) == 1:
            out.append(rounds[0])
            continue
        first = rounds[0]
        merged = {**first, 'rounds': len(rounds),
                  'weight_bytes_peak': max(r['weight_bytes_peak'] for r in rounds)}
        for k in ('pss_steady_bytes', 'pss_peak_bytes', 'rss_steady_bytes'):
            merged[k] = statistics.median(r[k] for r in rounds)
        merged['streams'] = {s: _pool_stream([r['streams'][s] for r in rounds])
                             for s in first['streams']}
        out.append(merged)
    return out


def _pool_stream(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    def median(key: str) -> float | None:
        values = [r[key] for r in rounds if r[key] is not None]
        return statistics.median(values) if values else None
    summed = {k: sum(r[k] or 0.0 for r in rounds)
              for k in ('deadline_missed', 'processed', 'lost')}
    out = {**rounds[0], 'inference_ms_p50': median('inference_ms_p50'),
           'latency_ms_p50': median('latency_ms_p50'),
           'inference_ms_p50_rounds': [r['inference_ms_p50'] for r in rounds], **summed}
    after = [r['after_warmup'] for r in rounds if r.get('after_warmup')]
    if after:
        total = {k: sum(a[k] for a in after) for k in ('frames', 'processed', 'late', 'lost')}
        out['after_warmup'] = {**total, 'late_or_lost_share': (
            (total['late'] + total['lost']) / total['frames'] if total['frames'] else None),
            'joint_plan_infeasible_share': max(
                (a['joint_plan_infeasible_share'] or 0.0 for a in after), default=None)}
    return out


def compare(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per scenario: memory one node saves against the others, and per-stream latency ratios."""
    runs = pooled(runs)
    out: dict[str, Any] = {}
    for scenario in SCENARIOS:
        by = {r['setup']: r for r in runs if r['scenario'] == scenario}
        for variant in ONE_NODE:
            one = by.get(variant)
            if one is not None:
                out.setdefault(scenario, {})[variant] = _against(one, by)
    return out


def _against(one: dict[str, Any], by: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for other in BASELINES:
        r = by.get(other)
        if r is None:
            continue
        ratios = {s: (one['streams'][s]['inference_ms_p50'] /
                      r['streams'][s]['inference_ms_p50'])
                  if one['streams'][s]['inference_ms_p50'] and
                  r['streams'][s]['inference_ms_p50'] else None for s in one['streams']}
        out[f'vs_{other}'] = {
            'pss_steady_saved_bytes': r['pss_steady_bytes'] - one['pss_steady_bytes'],
            'pss_peak_saved_bytes': r['pss_peak_bytes'] - one['pss_peak_bytes'],
            'rss_steady_saved_bytes': r['rss_steady_bytes'] - one['rss_steady_bytes'],
            'weight_saved_bytes': r['weight_bytes_peak'] - one['weight_bytes_peak'],
            'inference_p50_ratio': ratios}
    return out


def table(runs: list[dict[str, Any]]) -> str:
    """One line per setup, for people."""
    MiB = 2 ** 20
    lines = [f'{"scenario":10} {"setup":14} {"PSS steady":>11} {"PSS peak":>9} '
             f'{"RSS steady":>11} {"weights":>8}  per stream: inference p50 / misses / lost']
    for r in runs:
        per = '  '.join(f'{s} {v["inference_ms_p50"] or 0:.0f} ms / '
                        f'{v["deadline_missed"] or 0:.0f} / {v["lost"]:.0f}' + (
                            f' (after warm-up: {a["late"]:.0f} late, {a["lost"]:.0f} lost of '
                            f'{a["frames"]:.0f})' if (a := v.get('after_warmup')) else '')
                        for s, v in r['streams'].items())
        lines.append(f'{r["scenario"]:10} {r["setup"]:14} {r["pss_steady_bytes"] / MiB:9.0f} M'
                     f' {r["pss_peak_bytes"] / MiB:7.0f} M {r["rss_steady_bytes"] / MiB:9.0f} M'
                     f' {r["weight_bytes_peak"] / MiB:6.1f} M  {per}')
    return '\n'.join(lines)


def run_streams(args: argparse.Namespace) -> int:
    """Every scenario in every setup; the JSON is written after each run (partial runs count)."""
    from ..bag.camera import write_cameras_bag
    from ..ros import dds_profile
    # DDS stays on this machine, in a domain of this run's own, sized for camera frames
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    os.environ.setdefault('FASTDDS_BUILTIN_TRANSPORTS', 'SHM')
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.Random(os.getpid()).randint(101, 215)))
    dds_profile.apply()
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    bag = Path(args.stores) / f'cameras-{args.camera_frames}'
    write_cameras_bag(bag, args.camera_frames)
    scenarios = {'same': {'front': (args.same, 0), 'rear': (args.same, 0)},
                 'different': {'front': (args.different[0], 0),
                               'rear': (args.different[1], 0)}}
    stores = {(m, seed): prepare(m, seed, args) for sc in args.scenarios
              for m, seed in scenarios[sc].values()}
    runs: list[dict[str, Any]] = []
    config = {k: getattr(args, k) for k in ('same', 'different', 'camera_frames', 'rounds',
                                            'rate', 'deadline_ms', 'input_size', 'threads',
                                            'device', 'auto_tune_quantile', 'warmup_frames')}
    for rnd in range(args.rounds):
        for sc in args.scenarios:
            models = {s: m for s, (m, _seed) in scenarios[sc].items()}
            paths = {s: stores[ms] for s, ms in scenarios[sc].items()}
            for setup in args.setups:
                print(f'[bench --streams] round {rnd + 1}/{args.rounds}, {sc}: {setup} ...',
                      flush=True)
                runs.append({**run_setup(sc, setup, models, paths, bag, args), 'round': rnd})
                out.write_text(json.dumps({'config': config, 'runs': runs,
                                           'pooled': pooled(runs),
                                           'comparison': compare(runs)}, indent=1))
    print(table(pooled(runs)))
    print(json.dumps(compare(runs)))
    return 0
