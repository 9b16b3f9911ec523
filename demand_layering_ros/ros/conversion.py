# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Messages to and from plain data, without cv_bridge: images, detections, the class map."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from vision_msgs.msg import (BoundingBox2D, Detection2D, Detection2DArray, LabelInfo,
                             ObjectHypothesisWithPose, VisionClass)

from ..perception.detections import Detection
from ..perception.errors import ImageError

MAX_SIDE = 16384
_CHANNELS = {'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1}
_TO_RGB = {'bgr8': cv2.COLOR_BGR2RGB, 'rgba8': cv2.COLOR_RGBA2RGB, 'bgra8': cv2.COLOR_BGRA2RGB,
           'mono8': cv2.COLOR_GRAY2RGB}


def image_to_rgb(msg: Image) -> np.ndarray:
    """An HxWx3 uint8 RGB array from a sensor_msgs/Image; ImageError says what is wrong."""
    enc = msg.encoding.lower()
    if enc not in _CHANNELS:
        raise ImageError(f'encoding {msg.encoding!r} not supported (use {", ".join(_CHANNELS)})')
    h, w, ch = int(msg.height), int(msg.width), _CHANNELS[enc]
    if h <= 0 or w <= 0 or h > MAX_SIDE or w > MAX_SIDE:
        raise ImageError(f'image size {w}x{h} out of range (1..{MAX_SIDE})')
    if msg.step < w * ch:
        raise ImageError(f'step {msg.step} is less than width*channels {w * ch}')
    data = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, (bytes, bytearray))
                         else msg.data, dtype=np.uint8)
    if data.size < msg.step * h:
        raise ImageError(f'data has {data.size} bytes, step*height needs {msg.step * h}')
    rows = data[:msg.step * h].reshape(h, msg.step)[:, :w * ch]  # drop row padding
    img = rows.reshape(h, w, ch) if ch > 1 else rows.reshape(h, w)
    return np.ascontiguousarray(img) if enc == 'rgb8' else cv2.cvtColor(img, _TO_RGB[enc])


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage (jpeg, png, ...) to RGB."""
    buf = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if buf.size == 0:
        raise ImageError('compressed image is empty')
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageError(f'compressed image ({msg.format or "no format"}, {buf.size} bytes) '
                         'cannot be decoded')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def rgb_to_image(rgb: np.ndarray, header: Header) -> Image:
    """A sensor_msgs/Image (rgb8) carrying header."""
    msg = Image(header=header, height=rgb.shape[0], width=rgb.shape[1], encoding='rgb8',
                is_bigendian=0, step=rgb.shape[1] * 3)
    msg.data = np.ascontiguousarray(rgb).tobytes()
    return msg


def to_detection_array(detections: Sequence[Detection], header: Header) -> Detection2DArray:
    """Detection2DArray with the source header verbatim; class ids as strings, boxes centred."""
    out = Detection2DArray(header=header)
    for d in detections:
        x1, y1, x2, y2 = d.box
        det = Detection2D(header=header)
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = str(d.class_id)
        hyp.hypothesis.score = float(d.score)
        det.results.append(hyp)
        det.bbox = BoundingBox2D(size_x=float(x2 - x1), size_y=float(y2 - y1))
        det.bbox.center.position.x = float((x1 + x2) / 2)
        det.bbox.center.position.y = float((y1 + y2) / 2)
        det.id = d.label
        out.detections.append(det)
    return out


def to_label_info(categories: Sequence[str], threshold: float, header: Header) -> LabelInfo:
    """The class map (class id -> name) of the loaded model."""
    return LabelInfo(header=header, threshold=float(threshold),
                     class_map=[VisionClass(class_id=i, class_name=name)
                                for i, name in enumerate(categories)])


def draw(rgb: np.ndarray, detections: Sequence[Detection]) -> np.ndarray:
    """A copy of the image with boxes and labels drawn."""
    img = rgb.copy()
    for d in detections:
        x1, y1, x2, y2 = (int(round(v)) for v in d.box)
        cv2.rectangle(img, (x1, y1), (x2, y2), (0, 255, 0), 2)
        cv2.putText(img, f'{d.label} {d.score:.2f}', (x1, max(12, y1 - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 255, 0), 1)
    return img
