# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""From an RGB uint8 image to the detector's input tensor (resizing only when asked)."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from .errors import ImageError


def to_input(rgb: np.ndarray, input_hw: tuple[int, int] | None = None
             ) -> tuple[torch.Tensor, tuple[float, float]]:
    """Return (CHW float tensor in [0, 1], (sx, sy) to map boxes back to ``rgb``'s pixels)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageError(f'expected an HxWx3 uint8 RGB image, got {rgb.shape} {rgb.dtype}')
    h, w = rgb.shape[:2]
    scale = (1.0, 1.0)
    if input_hw is not None and (h, w) != tuple(input_hw):
        rgb = cv2.resize(rgb, (input_hw[1], input_hw[0]), interpolation=cv2.INTER_LINEAR)
        scale = (w / input_hw[1], h / input_hw[0])
    rgb = rgb if rgb.flags.writeable and rgb.flags.c_contiguous else np.array(rgb)
    tensor = torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255.0)
    return tensor, scale
