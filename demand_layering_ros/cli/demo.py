# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The main job on an embedded default: a bundled camera stream replayed through the node.

The 30 Hz stream is made from photographs that ship with scikit-image; the demo prints the
detections per frame and the memory and delay the node achieved.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import numpy as np

FPS = 30.0
SIZE = (480, 640)  # height, width
PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket')


def camera_frames(n: int) -> list[np.ndarray]:
    """Deterministic frames of a camera panning and zooming across the bundled photographs."""
    import cv2
    from skimage import data
    frames = []
    per_photo = max(1, n // len(PHOTOS))
    for i in range(n):
        photo = getattr(data, PHOTOS[(i // per_photo) % len(PHOTOS)])()
        if photo.ndim == 2:
            photo = np.dstack([photo] * 3)
        h, w = photo.shape[:2]
        t = (i % per_photo) / per_photo
        zoom = 0.7 + 0.3 * t  # the crop shrinks: a slow zoom-in while panning
        ch, cw = int(h * zoom), int(min(w, h * zoom * SIZE[1] / SIZE[0]))
        x0 = int((w - cw) * t)
        y0 = int((h - ch) * (1 - t) / 2)
        crop = photo[y0:y0 + ch, x0:x0 + cw, :3]
        frames.append(cv2.resize(np.ascontiguousarray(crop), (SIZE[1], SIZE[0])))
    return frames


def run_demo(args: argparse.Namespace) -> int:
    """Start the node, stream the frames at 30 Hz, print detections and a summary."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    from ..perception import default_store_path, ensure_store
    from ..perception.models import spec

    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = default_store_path(args.model, args.weights)
    print(f'[demo] store {store} (exported in a child process on first use)', flush=True)
    ensure_store(args.model, args.weights, store)
    categories = spec(args.model).categories()
    if args.weights == 'none':
        print('[demo] weights: none -> seeded random weights: the boxes below are NOT meaningful.'
              ' Use --weights DEFAULT on a networked machine, or --weights /path/to/file.',
              flush=True)
    cmd = ['demand_layering_node', '--ros-args', '-p', f'model:={args.model}',
           '-p', f'weights:={args.weights}', '-p', f'store_path:={store}',
           '-p', 'score_threshold:=0.1', '-p', 'deadline_ms:=1000.0']
    if args.budget_mb:
        cmd += ['-p', f'memory_budget_mb:={args.budget_mb}']
    node = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    rclpy.init()
    probe = rclpy.create_node('demo_player')
    results: dict[str, Detection2DArray] = {}
    diags: list[dict[str, str]] = []
    probe.create_subscription(Detection2DArray, 'detections',
                              lambda m: results.__setitem__(m.header.frame_id, m), 50)
    probe.create_subscription(DiagnosticArray, '/diagnostics', lambda m: diags.extend(
        {kv.key: kv.value for kv in s.values} for s in m.status if 'detector' in s.name), 10)
    pub = probe.create_publisher(Image, 'image', qos_profile_sensor_data)
    frames = camera_frames(args.frames)
    deadline = time.monotonic() + args.timeout
    try:
        while not diags and time.monotonic() < deadline:  # node configured and publishing
            rclpy.spin_once(probe, timeout_sec=0.1)
            if node.poll() is not None:
                print(node.stdout.read().decode(), file=sys.stderr)
                return 1
        t_start = time.monotonic()
        for i, rgb in enumerate(frames):
            while time.monotonic() < t_start + i / FPS:
                rclpy.spin_once(probe, timeout_sec=0.002)
            msg = Image(height=SIZE[0], width=SIZE[1], encoding='rgb8', step=SIZE[1] * 3)
            msg.data = rgb.tobytes()
            msg.header.stamp = probe.get_clock().now().to_msg()
            msg.header.frame_id = f'demo_camera/{i:04d}'
            pub.publish(msg)
        end = time.monotonic() + 5.0
        while time.monotonic() < end:
            rclpy.spin_once(probe, timeout_sec=0.05)
        for fid in sorted(results):
            dets = results[fid].detections
            top = ', '.join(f'{categories[int(d.results[0].hypothesis.class_id)]} '
                            f'{d.results[0].hypothesis.score:.2f}' for d in dets[:3])
            print(f'{fid}: {len(dets)} detections{": " + top if top else ""}')
        d = diags[-1]
        summary = {
            'model': args.model, 'weights': args.weights, 'frames_sent': len(frames),
            'frames_received': int(float(d['received'])),
            'frames_processed': int(float(d['processed'])),
            'superseded': int(float(d['superseded'])),
            'dropped_stale': int(float(d['dropped_stale'])),
            'deadline_missed': int(float(d['deadline_missed'])),
            'latency_ms_p50': float(d.get('latency_ms_p50', 'nan')),
            'latency_ms_p99': float(d.get('latency_ms_p99', 'nan')),
            'mode': d['mode'], 'weight_bytes_peak': int(d['weight_bytes_peak']),
            'preloaded_weight_bytes': int(d['total_bytes']),
            'weight_memory_saved_pct': round(100 * (1 - int(d['weight_bytes_peak'])
                                                    / int(d['total_bytes'])), 1),
            'direct_io': d['direct_io'], 'node_rss_peak_bytes': int(d['rss_peak_bytes']),
        }
        print('[demo] summary: ' + json.dumps(summary))
        print(f'[demo] weight memory {summary["weight_bytes_peak"] / 2**20:.1f} MiB vs '
              f'{summary["preloaded_weight_bytes"] / 2**20:.1f} MiB preloaded '
              f'({summary["weight_memory_saved_pct"]}% less); latency p50 '
              f'{summary["latency_ms_p50"]:.0f} ms, p99 {summary["latency_ms_p99"]:.0f} ms; '
              f'{summary["deadline_missed"]} deadline misses; of {len(frames)} frames sent '
              f'{summary["frames_received"]} arrived (best-effort camera QoS), '
              f'{summary["frames_processed"]} processed, {summary["superseded"]} superseded by '
              'newer ones (the node keeps only the newest)')
        (out / 'summary.json').write_text(json.dumps(summary, indent=2))
        return 0
    finally:
        rclpy.try_shutdown()
        if node.poll() is None:
            os.killpg(node.pid, signal.SIGINT)
            try:
                node.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
