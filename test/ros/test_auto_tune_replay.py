# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""auto_tune against a replayed 30 Hz camera: convergence after a deadline change, memory.

The node runs as a subprocess with use_sim_time; the bundled camera bag loops at its recorded
30 Hz (JPEG topic) with /clock; the test changes ``deadline_ms`` over the parameter service
and reads every processed frame from ``~/frame_stats``:

1. a loose deadline for 50 frames (the ratios the tuner's quantiles come from): the least
   memory of all (the planner's curve starts at the sequential minimum, whatever the
   machine's speed);
2. a deadline 10% above the predicted p99 of that plan (as the node reports it) plus the
   time outside inference at its worst: from frame k + 10 on the deadline is met at p90, the
   configuration holds for 30 frames (one late correction at most, never back to a
   configuration it left; where that correction followed the machine, whose frames at the
   configuration held had slowed by more than 10%, the deadline is judged from 10 frames
   after it), the one reached uses <= 1.1 x the weight memory the curve needs
   for the deadline (the profile saved next to the store + the planner); the misses are
   printed (a miss rate is a timing figure, measured over long runs, not asserted here);
3. a deadline between what the whole model and the minimum achieve on this machine as it
   runs (the whole model measured by hand, auto_tune off): met at the median from frame
   k + 10 on (p90 printed: the machine's own noise is as wide as this band), never back to a
   configuration it left.

The least memory is checked where the curve's answer does not depend on how much slower the
loaded machine runs than the idle one the profile measured (a 30 Hz stream costs the node a
share of a 2-core machine); for the deadline between the minimums the planner's answer on the
profile's figures is printed next to what the node held.

fasterrcnn_mobilenet_v3_large_320_fpn (74 MiB): its curve falls steeply from the sequential
minimum (every unit read in the open) to the pipelined minimum (reads behind compute); one
torch thread (the node gets one core, the bag and this test the other).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import pytest

from demand_layering_ros.bag.camera import COMPRESSED_TOPIC, RAW_TOPIC, write_camera_bag
from demand_layering_ros.cli.processes import stop
from demand_layering_ros.engine import planner
from demand_layering_ros.engine.profile import Profile
from .live_node import CLI, export_store, LiveNode

MODEL = 'fasterrcnn_mobilenet_v3_large_320_fpn'
SETTLE = 10          # frames after a deadline change before the deadline must hold
HOLD = 30            # frames after those in which the configuration must hold
LOOSE = 50           # frames at the loose deadline before its predicted p99 is read
MiB = 2 ** 20
pytestmark = [pytest.mark.ros, pytest.mark.timeout(480)]


@pytest.fixture(scope='module')
def store(tmp_path_factory):
    return export_store(MODEL, tmp_path_factory.mktemp('store') / 'frcnn.dls')


@pytest.fixture(scope='module')
def camera(tmp_path_factory):
    return write_camera_bag(tmp_path_factory.mktemp('cam') / 'camera', 90)


class Frames:
    """``~/frame_stats`` as plain records (node clock ms, bytes, flags)."""

    def __init__(self, live: LiveNode) -> None:
        self.items: list[dict] = []
        live.node.create_subscription(DiagnosticArray, '/demand_layering_node/frame_stats',
                                      self._on, 100)

    def _on(self, msg: DiagnosticArray) -> None:
        kv = {k.key: k.value for k in msg.status[0].values}
        self.items.append({
            'inference_ms': float(kv['inference_ms']), 'latency_ms': float(kv['latency_ms']),
            'deadline_ms': float(kv['deadline_ms']), 'missed': kv['missed'] == 'True',
            'budget_bytes': int(kv['budget_bytes']), 'weight_bytes': int(kv['weight_bytes']),
            'mode': kv['mode']})

    def __len__(self) -> int:
        return len(self.items)


def valid(frames: list[dict]) -> list[dict]:
    """Frames whose latency is on one pass of the bag.

    The looping bag sets /clock back at each pass (as ``ros2 bag play --loop``); a frame of the
    last pass published after that reads a latency below its own inference time.
    """
    return [f for f in frames if f['latency_ms'] >= f['inference_ms']]


def outside_ms(frames: list[dict], q: float) -> float:
    """Time outside inference (transport, waiting, decoding, publishing) at quantile q."""
    return float(np.quantile([f['latency_ms'] - f['inference_ms'] for f in valid(frames)], q))


def reached(frames: list[dict]) -> int:
    """Weight memory of the configuration reached SETTLE frames after a deadline change.

    Until its first change within HOLD frames: a later correction follows the machine (a disk
    that slowed down), which the curve measured on the idle machine does not know.
    """
    config = frames[SETTLE]['budget_bytes']
    held = []
    for f in frames[SETTLE:SETTLE + HOLD]:
        if f['budget_bytes'] != config:
            break
        held.append(f['weight_bytes'])
    return max(held)


def least_budget(pipeline, deadline_ms: float, outside: float,
                 slowdown: float = 1.0) -> int | None:
    """The least weight memory the planner's curve needs for the deadline (None: out of reach).

    The curve is the profile's, measured on the idle machine at configure, its delays times
    ``slowdown``: a deadline derived from frames of the loaded machine may be out of its reach
    (seen in CI: a 258 ms deadline from frames whose whole model ran faster than the profile
    said).
    """
    plan, met = planner.plan_for_deadline(pipeline, (deadline_ms - outside) / 1e3,
                                          correction=lambda mode: slowdown)
    return plan.budget_bytes if met else None


def first_config(frames: list[dict]) -> list[dict]:
    """The frames of a phase until its first change of configuration."""
    config = frames[0]['budget_bytes']
    ahead = [i for i, f in enumerate(frames) if f['budget_bytes'] != config]
    return frames[:ahead[0] if ahead else len(frames)]


def followed_the_machine(frames: list[dict]) -> int | None:
    """The frame of a late change that followed the machine, or None.

    A late change (after frame SETTLE) follows the machine where the configuration held until
    then ran more than 10% slower in its last 5 frames than in its first 5 after SETTLE (in
    CI: the minimum at 300-340 ms, then 390-450, then one of 680 ms, before the tuner bought
    speed with memory). The issue asks for that too: a configuration that meets the deadline
    within SETTLE frames of a change in the machine's speed.
    """
    late = [i for i in range(SETTLE + 1, len(frames))
            if frames[i]['budget_bytes'] != frames[i - 1]['budget_bytes']]
    if not late:
        return None
    held = [f['inference_ms'] for f in frames[SETTLE:late[0]]]
    if len(held) < 10 or np.median(held[-5:]) <= 1.1 * np.median(held[:5]):
        return None
    return late[0]


def test_auto_tune_converges_and_holds_the_least_memory(store, camera):
    live = LiveNode(str(store), MODEL, '-p', 'use_sim_time:=true', '-p', 'auto_tune:=true',
                    '-p', 'deadline_ms:=4000.0', '-p', 'input_transport:=compressed',
                    '-p', 'debug_image:=false', '-r', f'image/compressed:={COMPRESSED_TOPIC}')
    frames = Frames(live)
    player = None
    try:
        live.wait_for(lambda: live.diagnostics and 'budget_bytes' in live.diagnostics[-1], 180,
                      'the node to configure')
        profile = Profile.from_json(json.loads(next(store.parent.glob(
            f'{store.name}.*.profile.json')).read_text()))
        pipe = profile.pipeline
        least_of_all, whole = pipe.min_budget('sequential'), pipe.min_budget('preload')
        player = subprocess.Popen([*CLI, 'bag', 'play', str(camera), '--clock', '--loop',
                                   '--topics', COMPRESSED_TOPIC], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, start_new_session=True)

        def run(n: int, what: str) -> list[dict]:
            start = len(frames)
            live.wait_for(lambda: len(frames) >= start + n, 30 + n, what)
            return frames.items[start:start + n]

        def change(deadline_ms: float, n: int, judged: float = 0.9) -> tuple[list[dict], str]:
            """Set the deadline; check frames k + SETTLE on: met at ``judged``, config held.

            Met: or out of reach on the machine as it runs, with the whole model in. Held for
            HOLD frames: over a long run the machine itself changes (the disk's
            speed drifts) and re-planning for it is the point of auto_tune.
            """
            assert live.set_params(deadline_ms=deadline_ms)[0].successful
            got = run(n, f'frames at {deadline_ms:.0f} ms')
            after = got[SETTLE:]
            followed = followed_the_machine(got)
            if followed is not None:   # judged from SETTLE frames after it followed, 20 frames
                more = max(0, followed + SETTLE + 20 - len(got))
                got = got + run(more, 'frames after the tuner followed the machine')
                print(f'the machine slowed at an unchanged configuration; the tuner followed '
                      f'at frame k+{followed}: met judged from frame k+{followed + SETTLE}')
            judge = got[SETTLE if followed is None else followed + SETTLE:]
            latency = [f['latency_ms'] for f in valid(judge)]
            met = float(np.quantile(latency, judged))
            configs = [(f['mode'], f['budget_bytes']) for f in after[:HOLD]]
            visited = [c for i, c in enumerate(configs) if i == 0 or c != configs[i - 1]]
            least = least_budget(pipe, deadline_ms, outside_ms(got, 0.9))
            needs = 'more than it has' if least is None else f'{least / MiB:.1f} MiB'
            held = reached(got)
            report = (f'{deadline_ms:.0f} ms: p50 {np.median(latency):.0f} ms, p90 '
                      f'{np.quantile(latency, 0.9):.0f} ms from frame k+{len(got) - len(judge)}, '
                      f'{held / MiB:.1f} MiB held from frame k+{SETTLE} '
                      f'({len(visited) - 1} changes), the profile\'s curve needs {needs}; '
                      'frames (ms, KiB) '
                      f'{[(round(f["inference_ms"]), f["budget_bytes"] >> 10) for f in got]}')
            print(report)
            # met; or the machine slowed until the deadline is out of reach and the tuner
            # went to the fastest configuration there is (all it can do)
            assert met <= deadline_ms or got[-1]['budget_bytes'] >= whole, report
            # never back to a configuration it left (no oscillation); held: at most one late
            # correction where the deadline leaves the machine's noise room (judged at p90)
            assert len(set(visited)) == len(visited), report
            assert judged < 0.9 or len(visited) <= 2, report
            return got, report

        # a loose deadline: the least memory of all; enough measured / predicted ratios for
        # the tuner's quantiles
        loose = run(LOOSE, 'frames at a loose deadline')
        assert loose[-1]['budget_bytes'] <= 1.1 * least_of_all, loose[-1]
        reported = live.diagnostics[-1]
        p99 = float(reported['predicted_ms_p99'])
        assert float(reported['predicted_ms_p90']) <= p99
        minimum_ms = float(np.median([f['inference_ms'] for f in loose[SETTLE:]]))
        # above the minimum's predicted p99 plus the time outside inference at its worst: the
        # least memory is still the minimum (10% above: the disk's speed drifts while the
        # test runs, up to 4x on this machine)
        deadline = 1.1 * p99 + outside_ms(loose, 1.0)
        got, report = change(deadline, SETTLE + HOLD + 10)
        held = reached(got)
        at_minimum = first_config(got)
        latency = [f['latency_ms'] for f in valid(at_minimum)]
        if len(latency) < 3 or np.quantile(latency, 0.9) <= deadline:
            # the minimum met the deadline while the tuner held it: nothing called for more
            least = least_budget(pipe, deadline, outside_ms(got, 0.9))
            assert least is not None, f'the curve cannot meet {deadline:.0f} ms: {report}'
            assert held <= 1.1 * least, report
            assert held <= 1.1 * least_of_all, report
        else:
            # the machine slowed after the loose phase (seen in CI: the minimum at 301-493 ms
            # against 444 ms): the least is the curve's at the speed the minimum ran now
            predicted = planner.plan_for_budget(pipe, at_minimum[0]['budget_bytes'])
            slowdown = (np.median([f['inference_ms'] for f in at_minimum])
                        / (predicted.predicted_s * 1e3))
            least = least_budget(pipe, deadline, outside_ms(got, 0.9), slowdown)
            print(f'the minimum missed {deadline:.0f} ms at p90 over its {len(at_minimum)} '
                  f'frames ({slowdown:.2f} x the profile): the curve at that speed needs '
                  f'{"more than it has" if least is None else f"{least / MiB:.1f} MiB"}')
            assert least is None or held <= 1.1 * least, report
        misses = sum(f['missed'] for f in got)
        print(f'{misses} of {len(got)} frames missed {deadline:.0f} ms (predicted p99 '
              f'{p99:.0f} ms of inference)')
        # what the whole model achieves here (by hand: auto_tune off, not judged by the tuner)
        assert live.set_params(auto_tune=False, execution_mode='preload')[0].successful
        preloaded = run(12, 'frames with the whole model')[2:]   # the first reads it in
        whole_ms = float(np.quantile([f['inference_ms'] for f in preloaded], 0.9))
        assert live.set_params(auto_tune=True, execution_mode='pipelined')[0].successful
        # a deadline between the two: reachable with memory to spare, missed by the minimum.
        # Judged at the median: this band is 1.2-1.7x wide, and the 2-core VM's speed moves by
        # 15-20% within a phase (frames of one configuration at 190 ms, then 240-270 ms, with
        # single frames at 420-500 ms), which no configuration short of the whole model keeps
        # within the deadline at p90; the median still fails a tuner that stays at (or goes
        # back to) a configuration too slow for it - the minimum misses it by 15%.
        lo, hi = 1.2 * whole_ms, 0.85 * minimum_ms
        if lo < hi:
            change(outside_ms(loose, 0.9) + (lo + hi) / 2, 40, judged=0.5)
        else:   # the disk is fast now: the minimum runs nearly as fast as the whole model
            print(f'no room between the whole model ({whole_ms:.0f} ms at p90) and the '
                  f'minimum ({minimum_ms:.0f} ms at p50) on this machine now: two deadline '
                  'changes judged, not three')
    finally:
        if player is not None:
            stop(player, grace_s=10)
        live.close()


def test_a_looping_bag_sets_the_clock_back_each_pass(camera):
    """Each pass restarts /clock at the bag's start (the last pass's end is never held).

    The raw topic: opening a pass over its large messages takes long enough that the clock
    thread used to publish the last pass's end first, and held the clock there.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rosgraph_msgs.msg import Clock
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('clock_probe', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    clock: list[int] = []
    node.create_subscription(Clock, '/clock', lambda m: clock.append(
        m.clock.sec * 10 ** 9 + m.clock.nanosec), 100)
    player = subprocess.Popen([*CLI, 'bag', 'play', str(camera), '--clock', '--loop',
                               '--rate', '2', '--topics', RAW_TOPIC,
                               '--wait-for-subscribers', '0'], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        end = time.monotonic() + 8.0   # three passes of a 1.5 s bag and startup
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
    finally:
        os.killpg(player.pid, signal.SIGINT)
        player.wait(timeout=10)
        rclpy.shutdown(context=context)
    steps = np.diff(np.array(clock)) / 1e9
    backs = np.flatnonzero(steps < 0)
    assert len(backs) >= 2, 'the clock never went back at a new pass'
    # within a pass the clock advances at rate 2 of the wall clock: about 0.02 s per 100 Hz
    # tick, never a pass's worth held at its end
    passes = np.split(steps, backs)
    for p in passes[1:-1]:
        forward = p[1:]
        assert forward.max() < 0.2 and forward.sum() > 2.0, forward
