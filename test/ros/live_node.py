# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Start the node for real (console script subprocess) and talk to it from this process."""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter_client import AsyncParameterClient
from rclpy.qos import qos_profile_sensor_data
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.srv import ChangeState
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray

from demand_layering_ros.cli.processes import stop

CLI = [sys.executable, '-m', 'demand_layering_ros.cli.main']


def export_store(model: str, path: Path) -> Path:
    """``model``'s store exported to ``path`` by the CLI (a child process, as the node does)."""
    subprocess.run([*CLI, 'export', '--model', model, '--out', str(path)], check=True,
                   timeout=300, capture_output=True)
    return path


class LiveNode:
    """The node in a subprocess plus a probe node here (publisher, subscribers, clients)."""

    def __init__(self, store: str, model: str, *extra: str,
                 extra_env: dict[str, str] | None = None, namespace: str = '') -> None:
        env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', OMP_NUM_THREADS='1')
        env.update(extra_env or {})
        cmd = [sys.executable, '-m', 'demand_layering_ros.ros.node', '--ros-args',
               '-p', f'model:={model}', '-p', f'store_path:={store}', *extra]
        # the node's output goes to a file: reading it never blocks, and it survives the node
        self._log = tempfile.NamedTemporaryFile(prefix='dl-node-', suffix='.log')
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('probe', context=self.context)
        self.exec = SingleThreadedExecutor(context=self.context)
        self.exec.add_node(self.node)
        self.detections: list[Detection2DArray] = []
        self.diagnostics: list[dict[str, str]] = []
        self.node.create_subscription(Detection2DArray, 'detections',
                                      self.detections.append, 50)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 10)
        self.pub = self.node.create_publisher(Image, 'image', qos_profile_sensor_data)
        self.cpub = self.node.create_publisher(CompressedImage, 'image/compressed',
                                               qos_profile_sensor_data)
        self.params = AsyncParameterClient(self.node, f'{namespace}/demand_layering_node')
        self.lifecycle = self.node.create_client(
            ChangeState, f'{namespace}/demand_layering_node/change_state')

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for st in msg.status:
            if 'detector' in st.name:
                self.diagnostics.append({**{kv.key: kv.value for kv in st.values},
                                         '_message': st.message, '_level': st.level,
                                         '_hardware_id': st.hardware_id,
                                         '_time': time.monotonic()})

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.exec.spin_once(timeout_sec=0.05)

    def wait_for(self, cond, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return
            self.exec.spin_once(timeout_sec=0.05)
            if self.proc.poll() is not None:
                raise AssertionError(f'node exited ({self.proc.returncode}): {self.output()}')
        raise AssertionError(f'timed out waiting for {what}')

    def image(self, frame_id: str, age_s: float = 0.0, size=(120, 160)) -> Image:
        h, w = size
        msg = Image(height=h, width=w, encoding='bgr8', step=w * 3)
        msg.data = np.random.default_rng(len(frame_id)).integers(
            0, 255, (h, w, 3), dtype=np.uint8).tobytes()
        stamp = self.node.get_clock().now().nanoseconds - int(age_s * 1e9)
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 10 ** 9)
        msg.header.frame_id = frame_id
        return msg

    def compressed(self, frame_id: str, data: bytes | None = None) -> CompressedImage:
        img = self.image(frame_id)
        if data is None:
            arr = np.frombuffer(bytes(img.data), np.uint8).reshape(img.height, img.width, 3)
            data = cv2.imencode('.jpg', arr)[1].tobytes()
        return CompressedImage(header=img.header, format='jpeg', data=data)

    def set_params(self, **values):
        from rclpy.parameter import Parameter
        future = self.params.set_parameters([Parameter(k, value=v) for k, v in values.items()])
        self.wait_for(future.done, 20, 'set_parameters')
        return future.result().results

    def change_state(self, transition_id: int) -> bool:
        assert self.lifecycle.wait_for_service(timeout_sec=10)
        req = ChangeState.Request()
        req.transition.id = transition_id
        future = self.lifecycle.call_async(req)
        self.wait_for(future.done, 30, 'change_state')
        return future.result().success

    def output(self) -> str:
        if self._log.closed:
            return self._final_output
        with open(self._log.name, 'rb') as f:
            return f.read().decode(errors='replace')

    def get_params(self, *names: str) -> list:
        """Values read over the node's parameter service (as `ros2 param get` does)."""
        from rclpy.parameter import parameter_value_to_python
        future = self.params.get_parameters(list(names))
        self.wait_for(future.done, 20, 'get_parameters')
        return [parameter_value_to_python(v) for v in future.result().values]

    def close(self) -> None:
        try:
            rclpy.shutdown(context=self.context)
        finally:
            stop(self.proc, grace_s=10)
            self._final_output = self.output()  # the file goes with close()
            self._log.close()
