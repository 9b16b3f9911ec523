# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Image conversion without cv_bridge: encodings, row padding, malformed input."""

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from demand_layering_ros.perception import Detection, ImageError
from demand_layering_ros.ros import conversion

RGB = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)


def image(arr, encoding, pad=0):
    h, w = arr.shape[:2]
    ch = 1 if arr.ndim == 2 else arr.shape[2]
    rows = np.zeros((h, w * ch + pad), np.uint8)
    rows[:, :w * ch] = arr.reshape(h, -1)
    return Image(height=h, width=w, encoding=encoding, step=w * ch + pad, data=rows.tobytes())


@pytest.mark.parametrize('encoding,arr', [
    ('rgb8', RGB), ('bgr8', RGB[..., ::-1]), ('rgba8', np.dstack([RGB, RGB[..., :1]])),
    ('bgra8', np.dstack([RGB[..., ::-1], RGB[..., :1]]))])
@pytest.mark.parametrize('pad', [0, 3])
def test_color_encodings_with_row_padding(encoding, arr, pad):
    assert np.array_equal(conversion.image_to_rgb(image(np.ascontiguousarray(arr), encoding,
                                                        pad)), RGB)


def test_mono8():
    gray = RGB[..., 0].copy()
    out = conversion.image_to_rgb(image(gray, 'mono8', 1))
    assert np.array_equal(out[..., 0], gray) and np.array_equal(out[..., 2], gray)


@pytest.mark.parametrize('mutate,reason', [
    (dict(encoding='yuv422'), 'encoding'), (dict(height=0), 'size'),
    (dict(width=100000), 'size'), (dict(step=5), 'step'), (dict(height=50), 'data has')])
def test_malformed_images_are_rejected_with_the_reason(mutate, reason):
    msg = image(RGB, 'rgb8')
    for k, v in mutate.items():
        setattr(msg, k, v)
    with pytest.raises(ImageError, match=reason):
        conversion.image_to_rgb(msg)


def test_compressed_roundtrip_and_garbage():
    ok, png = cv2.imencode('.png', RGB[..., ::-1])
    assert ok
    msg = CompressedImage(format='png', data=png.tobytes())
    assert np.array_equal(conversion.compressed_to_rgb(msg), RGB)
    with pytest.raises(ImageError, match='cannot be decoded'):
        conversion.compressed_to_rgb(CompressedImage(format='jpeg', data=b'not a jpeg'))
    with pytest.raises(ImageError, match='empty'):
        conversion.compressed_to_rgb(CompressedImage(format='jpeg'))


def test_detection_array_keeps_the_header_and_centres_boxes():
    h = Header(frame_id='camera_optical')
    h.stamp.sec, h.stamp.nanosec = 12, 345
    arr = conversion.to_detection_array([Detection(17, 'cat', 0.75, (10, 20, 30, 60))], h)
    assert arr.header == h and arr.detections[0].header == h
    d = arr.detections[0]
    assert (d.bbox.center.position.x, d.bbox.center.position.y) == (20, 40)
    assert (d.bbox.size_x, d.bbox.size_y) == (20, 40)
    assert d.results[0].hypothesis.class_id == '17' and d.results[0].hypothesis.score == 0.75
    assert conversion.to_detection_array([], h).header == h
