# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The main job on an embedded default: the bundled camera bag replayed through the node.

The 30 Hz camera bag (bag/camera.py) is replayed with /clock into the node running with
use_sim_time; the demo prints the detections per frame and the memory and delay the node
achieved, and records the node's outputs into a results bag. Then the live-tuning scene
(``demo_tuning``) plays the bag in a loop at its own rate and changes the memory budget and
auto_tune over the parameter service: a table per phase and ``tuning.png``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import shutil
import socket
import subprocess
import sys
import threading
import time
from typing import Any
from urllib.parse import urlparse

from .processes import stop

REACH_TIMEOUT_S = 3.0  # offline machines must not wait long for the weights' server


def node_command(*ros_args: str) -> list[str]:
    """The node as a module of this interpreter, so that no PATH is needed.

    A colcon install puts executables in lib/demand_layering_ros, which is not on PATH.
    """
    return [sys.executable, '-m', 'demand_layering_ros.ros.node', '--ros-args', *ros_args]


def reachable(url: str, timeout: float = REACH_TIMEOUT_S) -> bool:
    """Whether the host of ``url`` accepts a connection within ``timeout`` (DNS included)."""
    host = urlparse(url).hostname or ''
    result: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)
    t = threading.Thread(target=connect, daemon=True)  # name resolution has no timeout of its own
    t.start()
    t.join(timeout)
    return bool(result and result[0])


def default_weights_available(model: str) -> bool:
    """Whether torchvision's DEFAULT weights for ``model`` are cached or downloadable."""
    import torch
    from ..perception.models import spec
    weights = spec(model).weights_enum
    if weights is None:
        return False
    url = weights.DEFAULT.url
    cached = Path(torch.hub.get_dir()) / 'checkpoints' / Path(urlparse(url).path).name
    return cached.is_file() or reachable(url)


def prepare_store(model: str, weights: str) -> tuple[str, Path]:
    """(weights used, store): 'auto' tries DEFAULT, then falls back to seeded random weights."""
    from ..perception import default_store_path, ensure_store, ModelError
    if weights == 'auto':
        if default_weights_available(model):
            store = default_store_path(model, 'DEFAULT')
            print(f'[demo] weights: torchvision DEFAULT (COCO) -> store {store}', flush=True)
            try:
                return 'DEFAULT', ensure_store(model, 'DEFAULT', store)
            except ModelError as err:
                print(f'[demo] DEFAULT weights failed ({err})', flush=True)
        print('[demo] NOTICE: torchvision DEFAULT weights are neither cached nor downloadable '
              'here; using seeded random weights (weights: none).', flush=True)
        weights = 'none'
    store = default_store_path(model, weights)
    print(f'[demo] store {store} (exported in a child process on first use)', flush=True)
    return weights, ensure_store(model, weights, store)


def add_parser(sub: Any) -> None:
    """Register ``demo``."""
    d = sub.add_parser('demo', help='replay the bundled camera stream through the node')
    d.add_argument('--model', default='fasterrcnn_mobilenet_v3_large_320_fpn')
    d.add_argument('--weights', default='auto', help='auto (torchvision DEFAULT when cached or '
                   'downloadable, else seeded random) | DEFAULT | none | PATH')
    d.add_argument('--frames', type=int, default=90, help='frames when writing the camera bag')
    d.add_argument('--bag', help='camera bag to replay (default: the bundled stream)')
    d.add_argument('--rate', type=float, default=0.2, help='replay speed; 0.2 plays the 30 Hz '
                   'camera at 6 frames/s, about what a 2-core CPU keeps up with')
    d.add_argument('--deadline-ms', type=float, default=1000.0)
    d.add_argument('--budget-mb', type=float, default=0.0, help='0: the pipelined minimum')
    d.add_argument('--out', default='demo_out')
    d.add_argument('--timeout', type=float, default=600)
    d.add_argument('--no-tuning', action='store_true', help='skip the live-tuning scene')
    d.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    """Start the node (use_sim_time), replay the camera bag into it, record and print results."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from diagnostic_msgs.msg import DiagnosticArray
    from vision_msgs.msg import Detection2DArray

    from ..bag.camera import FPS, RAW_TOPIC, START_NS, write_camera_bag
    from ..bag.play import Player
    from ..bag.record import Recorder
    from ..perception.models import spec
    from ..ros import dds_profile
    from .bag import DEFAULT_CAMERA_BAG

    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    dds_profile.apply()  # this process publishes 640x480 frames; before its first participant
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    camera = Path(args.bag) if args.bag else DEFAULT_CAMERA_BAG
    if not camera.exists():
        print(f'[demo] writing the camera stream bag {camera} ({args.frames} frames)', flush=True)
        write_camera_bag(camera, args.frames)
    weights, store = prepare_store(args.model, args.weights)
    categories = spec(args.model).categories()
    if weights == 'none':
        print('[demo] weights: none -> seeded random weights: the boxes below are NOT meaningful.'
              ' Use --weights DEFAULT on a networked machine, or --weights /path/to/file.',
              flush=True)
    cmd = node_command('-p', f'model:={args.model}', '-p', f'weights:={weights}',
                       '-p', f'store_path:={store}',
                       '-p', 'score_threshold:=0.1', '-p', f'deadline_ms:={args.deadline_ms}',
                       '-p', 'use_sim_time:=true', '-r', f'image:={RAW_TOPIC}',
                       # reliable input: every replayed frame reaches the node and is counted
                       '-p', f'qos_overrides.{RAW_TOPIC}.subscription.reliability:=reliable',
                       '-p', f'qos_overrides.{RAW_TOPIC}.subscription.depth:=5')
    if args.budget_mb:
        cmd += ['-p', f'memory_budget_mb:={args.budget_mb}']
    # the node's log goes to a file: a pipe read only at the end would block a node that logs
    # more than the pipe holds
    log = out / 'node.log'
    with open(log, 'wb') as f:
        node = subprocess.Popen(cmd, start_new_session=True, stdout=f, stderr=subprocess.STDOUT)
    rclpy.init()
    probe = rclpy.create_node('demand_layering_demo')
    executor = SingleThreadedExecutor()
    executor.add_node(probe)
    diags: list[dict[str, str]] = []
    quiet = threading.Event()   # the tuning scene prints a table instead of every frame

    def on_detections(m: Detection2DArray) -> None:
        if quiet.is_set():
            return
        ns = m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
        top = ', '.join(f'{categories[int(d.results[0].hypothesis.class_id)]} '
                        f'{d.results[0].hypothesis.score:.2f}' for d in m.detections[:3])
        print(f'frame {round((ns - START_NS) * FPS / 1e9):3d} ({m.header.frame_id}): '
              f'{len(m.detections)} detections{": " + top if top else ""}', flush=True)

    probe.create_subscription(Detection2DArray, 'detections', on_detections, 50)
    probe.create_subscription(DiagnosticArray, '/diagnostics', lambda m: diags.extend(
        {kv.key: kv.value for kv in s.values} for s in m.status if 'detector' in s.name), 10)
    results = out / 'results'
    if results.exists():
        shutil.rmtree(results)
    recorder = Recorder(probe, ['/detections', '/diagnostics', '/label_info'], results)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    deadline = time.monotonic() + args.timeout
    try:
        while not diags and time.monotonic() < deadline:  # node configured and publishing
            time.sleep(0.1)
            if node.poll() is not None:
                print(log.read_text(errors='replace')[-3000:], file=sys.stderr)
                return 1
        player = Player(probe, camera, rate=args.rate, clock=True, topics=[RAW_TOPIC],
                        progress=False)
        sent = player.message_count
        print(f'[demo] replaying {sent} frames of a {FPS} Hz camera at rate {args.rate} '
              f'({FPS * args.rate:g} frames per second of wall time)', flush=True)
        time.sleep(0.5)
        player.run()
        time.sleep(3.0)  # the last frame's inference and one more diagnostics message
        d = diags[-1]
        summary = {
            'model': args.model, 'weights': weights, 'bag': str(camera),
            'frames_published': sent, 'frames_received': int(float(d['received'])),
            'frames_processed': int(float(d['processed'])),
            'superseded': int(float(d['superseded'])),
            'dropped_stale': int(float(d['dropped_stale'])),
            'aborted': int(float(d['aborted'])),
            'deadline_missed': int(float(d['deadline_missed'])),
            # the node measures latency on its clock: bag time, which runs at `rate`
            'latency_ms_p50': float(d.get('latency_ms_p50', 'nan')) / args.rate,
            'latency_ms_p99': float(d.get('latency_ms_p99', 'nan')) / args.rate,
            'latency_sim_ms_p50': float(d.get('latency_ms_p50', 'nan')),
            'inference_ms_p50': float(d.get('inference_ms_p50', 'nan')),
            # where the rest went (wall ms; transport and queue are on the bag clock)
            'convert_ms_p50': float(d.get('convert_ms_p50', 'nan')),
            'publish_ms_p50': float(d.get('publish_ms_p50', 'nan')),
            'convert_publish_ms_p50': float(d.get('convert_publish_ms_p50', 'nan')),
            'queue_ms_p50': float(d.get('queue_ms_p50', 'nan')),
            'predicted_ms': d.get('predicted_ms'),
            'mode': d['mode'], 'weight_bytes_peak': int(d['weight_bytes_peak']),
            'preloaded_weight_bytes': int(d['total_bytes']),
            'weight_memory_saved_pct': round(100 * (1 - int(d['weight_bytes_peak'])
                                                    / int(d['total_bytes'])), 1),
            'direct_io': d['direct_io'], 'node_rss_peak_bytes': int(d['rss_peak_bytes']),
            'results_bag': str(results),
        }
        rec = recorder.close()
        summary['recorded'] = rec.counts
        print('[demo] summary: ' + json.dumps(summary))
        print(f'[demo] weight memory {summary["weight_bytes_peak"] / 2**20:.1f} MiB vs '
              f'{summary["preloaded_weight_bytes"] / 2**20:.1f} MiB preloaded '
              f'({summary["weight_memory_saved_pct"]}% less); latency (stamp to detections, '
              f'wall) p50 {summary["latency_ms_p50"]:.0f} ms, '
              f'p99 {summary["latency_ms_p99"]:.0f} ms '
              f'(inference p50 {summary["inference_ms_p50"]:.0f} ms, conversion + publishing '
              f'p50 {summary["convert_publish_ms_p50"]:.1f} ms, waiting for the previous frame '
              f'p50 {summary["queue_ms_p50"]:.0f} ms); '
              f'{summary["deadline_missed"]} deadline misses; of {sent} frames replayed '
              f'{summary["frames_processed"]} processed, {summary["superseded"]} superseded by '
              f'newer ones (the node keeps only the newest), {summary["dropped_stale"]} too old')
        print(f'[demo] results bag: {results}')
        (out / 'summary.json').write_text(json.dumps(summary, indent=2))
        if not args.no_tuning:
            from .demo_tuning import run_scene
            quiet.set()
            profiles = sorted(store.parent.glob(f'{store.name}.*.profile.json'),
                              key=lambda f: f.stat().st_mtime)
            run_scene(probe, '/demand_layering_node', camera, profiles[-1], out, args.model)
        return 0
    finally:
        executor.shutdown()
        rclpy.try_shutdown()
        stop(node, grace_s=15)
