# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Skeletons: modules whose parameters and buffers were never materialised (meta device)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn


@contextmanager
def empty_weights() -> Iterator[None]:
    """Build modules inside this block with parameters and buffers on the meta device.

    Unlike ``with torch.device('meta')``, tensors that are not parameters or buffers (anchor
    templates, normalisation constants kept as attributes) stay real, so the skeleton still runs
    once its weights are bound. Each weight exists on the CPU only while its own module is built.
    """
    register_parameter = nn.Module.register_parameter
    register_buffer = nn.Module.register_buffer

    def meta_parameter(self: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None and param.device.type != 'meta':
            param = nn.Parameter(param.to('meta'), requires_grad=param.requires_grad)
        register_parameter(self, name, param)

    def meta_buffer(self: nn.Module, name: str, tensor: torch.Tensor | None,
                    persistent: bool = True) -> None:
        if tensor is not None:
            tensor = tensor.to('meta')
        register_buffer(self, name, tensor, persistent)

    nn.Module.register_parameter = meta_parameter  # type: ignore[method-assign]
    nn.Module.register_buffer = meta_buffer  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = register_parameter  # type: ignore[method-assign]
        nn.Module.register_buffer = register_buffer  # type: ignore[method-assign]


def materialised_bytes(module: nn.Module) -> int:
    """Bytes of parameters and buffers that are not on the meta device."""
    tensors = list(module.parameters()) + list(module.buffers())
    return sum(t.numel() * t.element_size() for t in tensors if t.device.type != 'meta')
