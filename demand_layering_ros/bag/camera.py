# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The bundled camera stream: a 30 Hz, 640x480 camera panning across scikit-image's photographs.

Deterministic (same frames, stamps and bytes on every machine with the pinned libraries), written
as a rosbag2 bag with the raw (rgb8) and the compressed (JPEG) variant of each frame, stamped from
a fixed start time so replays and golden files are reproducible. ``write_cameras_bag`` writes
several such cameras (raw only) for nodes that serve several streams.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
import shutil
from typing import Iterator

import numpy as np
from rosbags.rosbag2 import Writer

from .record import bag_qos, publish_bag, STORAGE, staging
from .types import typestore
from .version import check_version, default_version

FPS = 30
SIZE = (480, 640)  # height, width
PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket')
FRAME_ID = 'camera_optical_frame'
RAW_TOPIC = '/camera/image_raw'
COMPRESSED_TOPIC = '/camera/image_raw/compressed'
START_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z
JPEG_QUALITY = 90
CAMERAS = ('front', 'rear')


def camera_frames(n: int) -> list[np.ndarray]:
    """Frames (HxWx3 uint8 RGB) of a camera panning and zooming across the photographs."""
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
        crop = np.ascontiguousarray(photo[y0:y0 + ch, x0:x0 + cw, :3])
        frames.append(cv2.resize(crop, (SIZE[1], SIZE[0]), interpolation=cv2.INTER_AREA))
    return frames


def stamp_ns(i: int) -> int:
    """Header stamp (and bag time) of frame ``i``."""
    return START_NS + i * 10**9 // FPS


def camera_topic(camera: str) -> str:
    """The raw image topic of one of several cameras (``/front/image_raw``)."""
    return f'/{camera}/image_raw'


def camera_stamp_ns(k: int, i: int, cameras: int) -> int:
    """Frame ``i`` of camera ``k`` of ``cameras``: unsynchronised, spread over a period."""
    return stamp_ns(i) + k * 10**9 // (FPS * cameras)


def write_cameras_bag(out: Path, frames: int = 90, cameras: tuple[str, ...] = CAMERAS,
                      storage: str = 'mcap', overwrite: bool = False,
                      version: int | None = None) -> Path:
    """Write several cameras' raw streams to ``out``; returns ``out``.

    Camera ``k`` sees the photographs ``k / len(cameras)`` of the way further on (the same
    frames, shifted), has frame_id ``<camera>_optical_frame`` and its stamps offset by
    ``k / len(cameras)`` of a frame period, so every message's header is its camera's own.
    """
    out = Path(out)
    if _kept(out, overwrite):
        return out
    ts = typestore()
    rgb = camera_frames(frames)
    n = len(cameras)
    with _new_bag(out, storage, version) as writer:
        conns = [writer.add_connection(camera_topic(c), 'sensor_msgs/msg/Image', typestore=ts,
                                       offered_qos_profiles=_sensor_qos()) for c in cameras]
        for i in range(frames):
            for k, camera in enumerate(cameras):
                ns = camera_stamp_ns(k, i, n)
                img = _raw(ts, rgb[(i + k * frames // n) % frames], ns,
                           f'{camera}_optical_frame')
                writer.write(conns[k], ns, ts.serialize_cdr(img, 'sensor_msgs/msg/Image'))
    return out


def _kept(out: Path, overwrite: bool) -> bool:
    """True when a bag at ``out`` exists and stays; one to overwrite is removed first."""
    if out.exists() and not overwrite:
        return True
    shutil.rmtree(out, ignore_errors=True)
    return False


def _sensor_qos() -> list:
    """The offered QoS recorded with the camera topics (a camera driver's sensor-data QoS)."""
    from rclpy.qos import qos_profile_sensor_data
    return [bag_qos(qos_profile_sensor_data)]


@contextmanager
def _new_bag(out: Path, storage: str, version: int | None) -> Iterator[Writer]:
    """A Writer for a bag at ``out``, written in its staging folder and published when closed."""
    root, partial = staging(out)
    version = check_version(version if version is not None else default_version())
    with Writer(partial, version=version,  # type: ignore[arg-type]
                storage_plugin=STORAGE[storage]) as writer:
        yield writer
    publish_bag(root, out)


def _raw(ts: object, rgb: np.ndarray, ns: int, frame_id: str) -> object:
    """A sensor_msgs/Image (rosbags' class) of an RGB frame."""
    types = ts.types  # type: ignore[attr-defined]
    header = types['std_msgs/msg/Header'](
        stamp=types['builtin_interfaces/msg/Time'](sec=ns // 10**9, nanosec=ns % 10**9),
        frame_id=frame_id)
    return types['sensor_msgs/msg/Image'](header=header, height=SIZE[0], width=SIZE[1],
                                          encoding='rgb8', is_bigendian=0, step=SIZE[1] * 3,
                                          data=rgb.reshape(-1))


def write_camera_bag(out: Path, frames: int = 90, storage: str = 'mcap',
                     overwrite: bool = False, version: int | None = None) -> Path:
    """Write the stream (raw and compressed topics) to ``out``; returns ``out``.

    ``version``: the rosbag2 format (default: the newest the running distro reads).
    """
    import cv2
    out = Path(out)
    if _kept(out, overwrite):
        return out
    ts = typestore()
    CompressedImage = ts.types['sensor_msgs/msg/CompressedImage']
    qos = _sensor_qos()
    with _new_bag(out, storage, version) as writer:
        raw = writer.add_connection(RAW_TOPIC, 'sensor_msgs/msg/Image', typestore=ts,
                                    offered_qos_profiles=qos)
        comp = writer.add_connection(COMPRESSED_TOPIC, 'sensor_msgs/msg/CompressedImage',
                                     typestore=ts, offered_qos_profiles=qos)
        for i, rgb in enumerate(camera_frames(frames)):
            ns = stamp_ns(i)
            img = _raw(ts, rgb, ns, FRAME_ID)
            writer.write(raw, ns, ts.serialize_cdr(img, 'sensor_msgs/msg/Image'))
            ok, jpeg = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                                    [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            assert ok
            msg = CompressedImage(header=img.header, format='rgb8; jpeg compressed bgr8',
                                  data=jpeg.reshape(-1))
            writer.write(comp, ns, ts.serialize_cdr(msg, 'sensor_msgs/msg/CompressedImage'))
    return out
