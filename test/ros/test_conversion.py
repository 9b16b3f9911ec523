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
    (dict(encoding='32FC1'), 'not supported .supported: rgb8, .*yuv422.*bayer_rggb8.*mono16'),
    (dict(height=0), 'size'),
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
    with pytest.raises(ImageError, match='neither JPEG nor PNG'):
        conversion.compressed_to_rgb(CompressedImage(format='jpeg', data=b'not a jpeg'))
    ok, jpeg = cv2.imencode('.jpg', RGB)
    with pytest.raises(ImageError, match='cannot be decoded'):  # header fine, data cut off
        conversion.compressed_to_rgb(CompressedImage(format='jpeg', data=jpeg[:200].tobytes()))
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
    assert d.id == ''  # a tracking id in vision_msgs: this detector does not track
    assert conversion.to_detection_array([], h).header == h


def test_a_reused_builder_gives_each_frame_its_own_values():
    builder = conversion.DetectionArrayBuilder()
    h = Header(frame_id='cam')
    first = [Detection(1, 'person', 0.9, (0, 0, 10, 10)),
             Detection(2, 'bicycle', 0.8, (5, 5, 25, 15))]
    a = builder.build(first, h)
    assert [x.results[0].hypothesis.class_id for x in a.detections] == ['1', '2']
    b = builder.build([Detection(3, 'car', 0.7, (0, 0, 4, 4))], Header(frame_id='other'))
    assert len(b.detections) == 1 and b.detections[0].header.frame_id == 'other'
    assert b.detections[0].results[0].hypothesis.class_id == '3'
    assert b.detections[0].bbox.size_x == 4


# BT.601 limited range, the inverse of what OpenCV's YUV2RGB conversions assume
def rgb_to_yuv(rgb):
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    return [np.clip(np.round(c), 0, 255).astype(np.uint8) for c in (y, u, v)]


# flat colours in 2x2 blocks: chroma subsampling and demosaicing lose nothing inside a block
BLOCKS = np.kron(np.random.default_rng(1).integers(40, 215, (3, 4, 3)),
                 np.ones((4, 4, 1))).astype(np.uint8)  # 12x16


def packed_422(rgb, order):
    y, u, v = rgb_to_yuv(rgb)
    h, w = y.shape
    out = np.zeros((h, w // 2, 4), np.uint8)
    channels = {'Y0': y[:, 0::2], 'Y1': y[:, 1::2], 'U': u[:, 0::2], 'V': v[:, 0::2]}
    for i, name in enumerate(order):
        out[..., i] = channels[name]
    return out.reshape(h, w * 2)


@pytest.mark.parametrize('encoding,order', [
    ('yuv422', ('U', 'Y0', 'V', 'Y1')), ('uyvy', ('U', 'Y0', 'V', 'Y1')),
    ('yuv422_yuy2', ('Y0', 'U', 'Y1', 'V')), ('yuyv', ('Y0', 'U', 'Y1', 'V'))])
def test_packed_yuv422_in_both_byte_orders(encoding, order):
    data = packed_422(BLOCKS, order)
    msg = Image(height=12, width=16, encoding=encoding, step=32, data=data.tobytes())
    out = conversion.image_to_rgb(msg)
    assert np.abs(out.astype(int) - BLOCKS).max() <= 3
    swapped = 'yuyv' if order[0] == 'U' else 'uyvy'  # the other byte order is clearly wrong
    msg.encoding = swapped
    assert np.abs(conversion.image_to_rgb(msg).astype(int) - BLOCKS).max() > 20


@pytest.mark.parametrize('pattern', ['rggb', 'bggr', 'gbrg', 'grbg'])
def test_bayer_patterns(pattern):
    mosaic = np.zeros(BLOCKS.shape[:2], np.uint8)
    for k, colour in enumerate(pattern):
        dy, dx = divmod(k, 2)
        mosaic[dy::2, dx::2] = BLOCKS[dy::2, dx::2, 'rgb'.index(colour)]
    out = conversion.image_to_rgb(image(mosaic, f'bayer_{pattern}8'))
    # inside each flat 4x4 block, away from the borders, demosaicing is exact
    inner = (slice(1, 3), slice(1, 3))
    for by in range(3):
        for bx in range(4):
            got = out[by * 4:by * 4 + 4, bx * 4:bx * 4 + 4][inner]
            assert np.abs(got.astype(int) - BLOCKS[by * 4, bx * 4]).max() <= 2, (by, bx)


@pytest.mark.parametrize('bigendian', [0, 1])
def test_sixteen_bit_images_keep_the_high_byte_in_either_byte_order(bigendian):
    wide = RGB.astype(np.uint16) * 256 + 77  # low byte: noise that must be dropped
    dtype = '>u2' if bigendian else '<u2'
    for encoding, arr, expect in (('rgb16', wide, RGB), ('bgr16', wide[..., ::-1], RGB),
                                  ('mono16', wide[..., 0], np.dstack([RGB[..., 0]] * 3))):
        raw = np.ascontiguousarray(arr).astype(dtype)
        h, w = raw.shape[:2]
        msg = Image(height=h, width=w, encoding=encoding, is_bigendian=bigendian,
                    step=raw.strides[0], data=raw.tobytes())
        assert np.array_equal(conversion.image_to_rgb(msg), expect), encoding
        msg.is_bigendian = 1 - bigendian  # the wrong byte order gives the noise
        assert not np.array_equal(conversion.image_to_rgb(msg), expect), encoding


def test_max_input_pixels_refuses_raw_and_compressed_before_decoding(monkeypatch):
    with pytest.raises(ImageError, match='35 pixels.*above max_input_pixels .34.'):
        conversion.image_to_rgb(image(RGB, 'rgb8'), max_pixels=34)
    ok, big = cv2.imencode('.jpg', np.zeros((8000, 8000, 3), np.uint8))
    assert ok and big.size < 2 << 20  # megabytes that decode to 192 MB
    monkeypatch.setattr(cv2, 'imdecode', lambda *_a: pytest.fail('decoded a refused image'))
    with pytest.raises(ImageError, match='jpeg image 8000x8000 .64000000 pixels. is above'):
        conversion.compressed_to_rgb(CompressedImage(format='jpeg', data=big.tobytes()),
                                     max_pixels=25_000_000)
    ok, png = cv2.imencode('.png', np.zeros((6000, 5000, 3), np.uint8))
    with pytest.raises(ImageError, match='png image 5000x6000'):
        conversion.compressed_to_rgb(CompressedImage(format='png', data=png.tobytes()),
                                     max_pixels=25_000_000)


def test_compressed_formats_other_than_jpeg_and_png_are_refused():
    ok, bmp = cv2.imencode('.bmp', RGB)
    with pytest.raises(ImageError, match='neither JPEG nor PNG'):
        conversion.compressed_to_rgb(CompressedImage(format='bmp', data=bmp.tobytes()))
