# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Two cameras in one node (``streams: [front, rear]``), replayed from a two-camera bag.

The node runs as a subprocess with use_sim_time; ``bag play --clock`` replays
``/front/image_raw`` and ``/rear/image_raw`` (each camera its own frame_id, stamps half a
period apart); this process reads both streams' detections and ``frame_stats`` and the
``/diagnostics`` statuses (one per stream, one for the shared budget).

1. One model on both cameras (one store): one engine, each weight held once - with the budget
   at the size of the model the engine holds the whole model, which two executors could not
   within that budget; below it, a lane per camera, each streaming, the resident units
   once. Every frame of both cameras comes back with its own header, verbatim.
   The global budget is lowered while the bag plays: every frame of either stream captured
   after the change ran with the new plan, none is lost, and weight memory in every
   diagnostics sample is within the budget (the old one until each stream's next frame).
2. Two models (two stores: two engines, one disk): the budget is split between them and never
   exceeded; then auto_tune with per-stream deadlines that the joint planner says are
   feasible: the node agrees, serves 150 frames per stream within the budget and prints the
   misses (a timing figure: the <= 1% target is measured by ``bench --streams``).

ssdlite320_mobilenet_v3_large (13 MB) at 240x320 input, one torch thread: about 150 ms a frame
here alone, 270 ms with two engines side by side beside the player, so the bag plays at 5-7% of
its 30 Hz; 24 + 24 frames, then 12 + 150 per stream; about 2.5 minutes in all.
"""

from __future__ import annotations

import json
import subprocess
import time

from diagnostic_msgs.msg import DiagnosticArray
import pytest
from rosgraph_msgs.msg import Clock
from vision_msgs.msg import Detection2DArray

from demand_layering_ros.bag.camera import (camera_stamp_ns, camera_topic, CAMERAS, FPS,
                                            write_cameras_bag)
from demand_layering_ros.cli.processes import stop
from demand_layering_ros.engine import planner
from demand_layering_ros.engine.profile import Profile
from .live_node import CLI, LiveNode

MODEL = 'ssdlite320_mobilenet_v3_large'
FRAMES = 24            # per camera in the bag
LONG_RUN = 150         # frames per stream served at feasible deadlines
MiB = 2 ** 20
PERIOD_NS = 10 ** 9 // FPS
pytestmark = [pytest.mark.ros, pytest.mark.timeout(420)]


@pytest.fixture(scope='module')
def stores(tmp_path_factory):
    """Two stores of the model (seeds 0 and 1: two detectors), exported side by side."""
    root = tmp_path_factory.mktemp('stores')
    procs = [subprocess.Popen([*CLI, 'export', '--model', MODEL, '--seed', str(seed), '--out',
                               str(root / f'ssdlite{seed}.dls')], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for seed in (0, 1)]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return [(root / f'ssdlite{seed}.dls', o['total_bytes']) for seed, o in zip((0, 1), out)]


@pytest.fixture(scope='module')
def cameras(tmp_path_factory):
    return write_cameras_bag(tmp_path_factory.mktemp('cams') / 'cams', FRAMES)


def profile_of(store) -> Profile:
    return Profile.from_json(json.loads(next(store.parent.glob(
        f'{store.name}.*.profile.json')).read_text()))


class Streams:
    """The node with two streams, and what it publishes, read here."""

    def __init__(self, store, *params: str) -> None:
        args = ['-p', 'use_sim_time:=true', '-p', f'streams:=[{", ".join(CAMERAS)}]',
                '-p', 'input_size:=[240, 320]', '-p', 'debug_image:=false']
        for c in CAMERAS:
            topic = camera_topic(c)
            args += ['-r', f'{c}/image:={topic}',
                     '-p', f'qos_overrides.{topic}.subscription.reliability:=reliable',
                     '-p', f'qos_overrides.{topic}.subscription.depth:=10']
        self.live = LiveNode(str(store), MODEL, *args, *params)
        node = self.live.node
        self.detections: dict[str, list] = {c: [] for c in CAMERAS}
        self.frames: dict[str, list[dict]] = {c: [] for c in CAMERAS}
        self.budget: list[dict] = []      # the shared budget's status, each second
        self.status: dict[str, dict] = {}  # the last status of each stream
        self.clock_ns = 0
        for c in CAMERAS:
            node.create_subscription(Detection2DArray, f'/{c}/detections',
                                     self.detections[c].append, 100)
            node.create_subscription(DiagnosticArray, f'/{c}/frame_stats',
                                     lambda m, c=c: self.frames[c].append(self._frame(m)), 100)
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 10)
        node.create_subscription(Clock, '/clock', self._on_clock, 10)
        self.player: subprocess.Popen | None = None

    @staticmethod
    def _frame(msg: DiagnosticArray) -> dict:
        kv = {k.key: k.value for k in msg.status[0].values}
        return {'stamp': msg.header.stamp.sec * 10 ** 9 + msg.header.stamp.nanosec,
                'missed': kv['missed'] == 'True', 'budget_bytes': int(kv['budget_bytes']),
                'weight_bytes': int(kv['weight_bytes']), 'mode': kv['mode'],
                'inference_ms': float(kv['inference_ms']),
                'latency_ms': float(kv['latency_ms']), '_t': time.monotonic()}

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for st in msg.status:
            values = {kv.key: kv.value for kv in st.values}
            values.update(_level=ord(st.level), _message=st.message, _t=time.monotonic())
            if st.name.endswith('memory budget'):
                self.budget.append(values)
            else:
                self.status[st.name.split(': ')[-2]] = values

    def _on_clock(self, msg: Clock) -> None:
        self.clock_ns = msg.clock.sec * 10 ** 9 + msg.clock.nanosec

    def wait_configured(self) -> dict:
        self.live.wait_for(lambda: self.budget and self.budget[-1]['_level'] != 3, 150,
                           'the node to configure')
        return self.budget[-1]

    def play(self, bag, rate: float, loop: bool = False) -> None:
        self.player = subprocess.Popen(
            [*CLI, 'bag', 'play', str(bag), '--clock', '--rate', str(rate),
             *(['--loop'] if loop else [])], stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, start_new_session=True)

    def wait_frames(self, n: int, timeout: float) -> None:
        try:
            self.live.wait_for(lambda: min(len(f) for f in self.frames.values()) >= n, timeout,
                               f'{n} frames of each stream')
        except AssertionError as err:
            raise AssertionError(
                f'{err}: {({c: len(f) for c, f in self.frames.items()})} frames; statuses '
                f'{self.status}; budget {self.budget[-1:]}; node log '
                f'{self.live.output()[-3000:]}') from None

    def close(self) -> None:
        if self.player is not None:
            stop(self.player, grace_s=10)
        self.live.close()


def header(msg) -> tuple[str, int]:
    return msg.header.frame_id, msg.header.stamp.sec * 10 ** 9 + msg.header.stamp.nanosec


def test_one_model_on_two_cameras_one_executor_headers_and_a_live_budget_change(stores,
                                                                                cameras):
    store, total = stores[0]
    # the whole model as the budget: one executor holds it; two could not (half each)
    node = Streams(store, '-p', f'memory_budget_mb:={total / MiB!r}')
    try:
        first = node.wait_configured()
        assert first['engines'] == '1' and first['engine.front+rear.streams'] == 'front,rear'
        pipeline = profile_of(store).pipeline
        lower = (pipeline.min_budget('pipelined') + total) // 2
        # both streams run at one engine, a lane each (~0.15 s a frame alone, more while the
        # bag plays): 0.67 s between a camera's frames keeps every frame
        node.play(cameras, rate=0.05)
        node.wait_frames(8, 60)
        held = node.budget[-1]
        assert int(held['weight_bytes']) == int(held['engine.front+rear.weight_bytes']) == total
        asked = time.monotonic()
        assert node.live.set_params(memory_budget_mb=lower / MiB)[0].successful
        changed_at = node.clock_ns   # bag time when the change was in force
        node.live.wait_for(lambda: node.player.poll() is not None, 60, 'the bag to end')
        node.wait_frames(FRAMES, 60)
        node.live.spin(2.5)   # the last diagnostics
    finally:
        node.close()
    for k, c in enumerate(CAMERAS):
        # every frame once, in order, with its own camera's header
        assert [header(d) for d in node.detections[c]] == [
            (f'{c}_optical_frame', camera_stamp_ns(k, i, len(CAMERAS))) for i in range(FRAMES)]
        frames = node.frames[c]
        assert [f['stamp'] for f in frames] == [camera_stamp_ns(k, i, len(CAMERAS))
                                                for i in range(FRAMES)]
        status = node.status[c]
        assert all(status[n] == '0.000' for n in ('superseded', 'dropped_stale', 'failed',
                                                  'aborted')), status
        # captured after the change: run with the new plan (a frame published before the
        # probe saw the clock may still run with the old one); done before it: the old one
        after = [f for f in frames if f['stamp'] > changed_at + PERIOD_NS]
        before = [f for f in frames if f['_t'] < asked]
        assert after and before, (changed_at, frames)
        # the engine's budget: both lanes' streamed memory and the resident units once, within
        # the node's
        planned = {f['budget_bytes'] for f in after}
        assert len(planned) == 1 and planned.pop() <= lower, (c, after)
        assert all(f['weight_bytes'] <= f['budget_bytes'] for f in after), (c, after)
        assert all(f['mode'] == 'preload' and f['weight_bytes'] == total for f in before)
    # both streams ran a frame with the new plan: from then on its budget holds
    ran_new = max(next(f['_t'] for f in node.frames[c] if f['budget_bytes'] < total)
                  for c in CAMERAS)
    later = [b for b in node.budget if b['_t'] > ran_new + 0.1]
    assert later and all(int(b['weight_bytes']) <= lower for b in later), later
    # never above the larger of the two, also between the change and the streams' next frames
    assert all(int(b['weight_bytes']) <= total for b in node.budget)
    assert int(later[-1]['engine.front+rear.budget_bytes']) == node.frames['rear'][-1][
        'budget_bytes'] <= lower
    assert later[-1]['engine.front+rear.lanes'] == '2'


def test_two_models_split_the_budget_and_serve_at_feasible_deadlines(stores, cameras):
    (front_store, total), (rear_store, _) = stores
    budget = 1.5 * total
    node = Streams(front_store, '-p', f'memory_budget_mb:={budget / MiB!r}',
                   '-p', f'rear.store_path:={rear_store}')
    # two engines infer side by side on two cores, beside the player and this process: about
    # 0.27 s a frame, so 0.48 s between a camera's frames
    rate = 0.07
    try:
        first = node.wait_configured()
        assert first['engines'] == '2'
        node.play(cameras, rate=rate, loop=True)
        node.wait_frames(12, 60)
        split = node.budget[-1]
        shares = [int(split[f'engine.{c}.budget_bytes']) for c in CAMERAS]
        assert sum(shares) <= budget and min(shares) > profile_of(front_store).pipeline.min_budget(
            'pipelined')
        # deadlines (node clock, running at `rate`) the joint planner must call feasible:
        # two and one and a half frame periods
        deadlines = {'front': 2e3 / FPS, 'rear': 1.5e3 / FPS}
        targets = {c: (d - outside_ms(node.frames[c], rate)) / 1e3 / rate
                   for c, d in deadlines.items()}
        joint = planner.plan_jointly([planner.Demand(c, profile_of(s).pipeline, targets[c])
                                      for c, s in zip(CAMERAS, (front_store, rear_store))],
                                     int(budget))
        assert not joint.missed, joint
        assert all(r.successful for r in node.live.set_params(
            auto_tune=True, **{f'{c}.deadline_ms': d for c, d in deadlines.items()}))
        start = {c: len(node.frames[c]) for c in CAMERAS}
        # the callback checked the budget; the joint plan is searched on the planning thread
        node.live.wait_for(lambda: node.budget[-1]['auto_tune'] == 'True'
                           and node.budget[-1]['planning'] == 'False', 30, 'the joint plan')
        lost_before = {c: lost(node.status[c]) for c in CAMERAS}
        assert node.budget[-1]['unsatisfied'] == '', node.budget[-1]   # the node agrees
        # a frame straddling a pass of the looping bag is not judged: wait for LONG_RUN judged
        # frames of each stream (a slow machine straddles more passes)
        node.live.wait_for(lambda: all(len(valid(node.frames[c][start[c]:])) >= LONG_RUN
                                       for c in CAMERAS), 1.5 * LONG_RUN / FPS / rate + 30,
                           f'{LONG_RUN} judged frames of each stream')
    finally:
        node.close()
    assert all(int(sample['weight_bytes']) <= budget for sample in node.budget)
    result = {}
    for c in CAMERAS:
        frames = valid(node.frames[c][start[c]:])
        # frames that got no result at all (late before inference, or replaced by a newer one)
        # count as misses too
        misses = sum(f['missed'] for f in frames) + lost(node.status[c]) - lost_before[c]
        result[c] = (misses, len(frames))
        print(f'{c}: {misses} of {len(frames)} frames missed {deadlines[c]:.0f} ms; memory '
              f'{sorted({f["budget_bytes"] >> 10 for f in frames})} KiB, inference p50 '
              f'{sorted(f["inference_ms"] for f in frames)[len(frames) // 2]:.0f} ms')
    # every stream served the long run; its misses are a timing figure (printed above): on this
    # VM the same run measured 0 of 157 and 0 of 151 in one moment, 10 of 152 and 15 of 151 in
    # another where inference ran 1.9x slower (CI), so the <= 1% target is judged by
    # `bench --streams` (docs/benchmarks.md), not here
    assert all(n >= LONG_RUN for _misses, n in result.values()), result


def lost(status: dict) -> int:
    """Frames of a stream dropped before inference or superseded, so far."""
    return int(float(status['dropped_stale']) + float(status['superseded']))


def valid(frames: list[dict]) -> list[dict]:
    """Frames within one pass of the looping bag.

    Each pass restarts the clock: a frame of the last pass published after that reads a
    negative latency, and cannot miss.
    """
    return [f for f in frames if f['latency_ms'] > 0]


def outside_ms(frames: list[dict], rate: float) -> float:
    """The most time (node clock) a frame spent outside inference."""
    return max(f['latency_ms'] - f['inference_ms'] * rate for f in valid(frames))
