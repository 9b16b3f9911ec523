# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Output slicing: a large Linear or Conv2d computed in slices of its output rows.

This is how the memory floor goes below the largest layer (the paper's floor): the weight of such
a layer is stored as several units, each holding a block of output rows (and their bias), and the
layer's output is assembled slice by slice, so only one or two slices are in memory at a time.
Each output element is the same dot product as before; the kernels may block the reduction
differently for a narrower output, so results agree up to float rounding (see the tests for the
tolerance), not always bit for bit.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

SLICE_BYTES = 2 << 20     # target bytes of one slice
MIN_ROWS = 64             # narrower GEMMs lose more speed than the memory is worth


def sliceable(module: nn.Module, slice_bytes: int) -> bool:
    """True when ``module`` is a plain Linear / Conv2d whose weight is worth slicing."""
    if type(module) not in (nn.Linear, nn.Conv2d):
        return False
    if isinstance(module, nn.Conv2d) and (module.groups != 1 or module.padding_mode != 'zeros'
                                          or isinstance(module.padding, str)):
        return False
    if set(module._buffers) - {None} or set(module._parameters) - {'weight', 'bias'}:
        return False
    w = module.weight
    return w is not None and len(slice_rows(module, slice_bytes)) > 1


def slice_rows(module: nn.Module, slice_bytes: int) -> list[tuple[int, int]]:
    """The output-row ranges [lo, hi) the weight is split into (about ``slice_bytes`` each)."""
    w = module.weight
    rows = w.shape[0]
    row_bytes = w[0].numel() * w.element_size()
    per = max(MIN_ROWS, slice_bytes // max(row_bytes, 1))
    if per >= rows:
        return [(0, rows)]
    n = -(-rows // per)
    per = -(-rows // n)  # even slices
    return [(lo, min(rows, lo + per)) for lo in range(0, rows, per)]


def output_shape(module: nn.Module, x: torch.Tensor) -> tuple[torch.Size, int]:
    """The full output's shape and the dimension that holds output rows."""
    if isinstance(module, nn.Linear):
        return torch.Size((*x.shape[:-1], module.out_features)), x.dim() - 1
    h, w = x.shape[-2:]
    oh, ow = (
        (size + 2 * p - d * (k - 1) - 1) // s + 1
        for size, p, d, k, s in zip((h, w), module.padding, module.dilation,
                                    module.kernel_size, module.stride))
    return torch.Size((*x.shape[:-3], module.out_channels, oh, ow)), x.dim() - 3


def forward_slice(module: nn.Module, x: torch.Tensor, weight: torch.Tensor,
                  bias: torch.Tensor | None) -> torch.Tensor:
    """The module's output for the rows whose weight (and bias) slice is given."""
    if isinstance(module, nn.Linear):
        return F.linear(x, weight, bias)
    return F.conv2d(x, weight, bias, module.stride, module.padding, module.dilation, 1)
