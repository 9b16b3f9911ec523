# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Skeletons: modules whose parameters and buffers were never materialised (meta device)."""

from __future__ import annotations

from contextlib import contextmanager
import threading
from typing import Iterator

import torch
from torch import nn

_REGISTER_PARAMETER = nn.Module.register_parameter
_REGISTER_BUFFER = nn.Module.register_buffer
_inside = threading.local()     # .depth: how many empty_weights blocks this thread is in
_patch_lock = threading.Lock()
_patch_users = 0                # blocks open in all threads (the patch stays while any is)


def _building() -> bool:
    return getattr(_inside, 'depth', 0) > 0


def _meta_parameter(self: nn.Module, name: str, param: nn.Parameter | None) -> None:
    if _building() and param is not None and param.device.type != 'meta':
        param = nn.Parameter(param.to('meta'), requires_grad=param.requires_grad)
    _REGISTER_PARAMETER(self, name, param)


def _meta_buffer(self: nn.Module, name: str, tensor: torch.Tensor | None,
                 persistent: bool = True) -> None:
    if _building() and tensor is not None:
        tensor = tensor.to('meta')
    _REGISTER_BUFFER(self, name, tensor, persistent)


@contextmanager
def empty_weights() -> Iterator[None]:
    """Build modules inside this block with parameters and buffers on the meta device.

    Unlike ``with torch.device('meta')``, tensors that are not parameters or buffers (anchor
    templates, normalisation constants kept as attributes) stay real, so the skeleton still runs
    once its weights are bound. Each weight exists on the CPU only while its own module is built.
    Only the calling thread's modules become skeletons: other threads building modules meanwhile
    (or building skeletons of their own) are not affected.
    """
    global _patch_users
    with _patch_lock:
        if _patch_users == 0:
            nn.Module.register_parameter = _meta_parameter  # type: ignore[method-assign]
            nn.Module.register_buffer = _meta_buffer  # type: ignore[method-assign]
        _patch_users += 1
    _inside.depth = getattr(_inside, 'depth', 0) + 1
    try:
        yield
    finally:
        _inside.depth -= 1
        with _patch_lock:
            _patch_users -= 1
            if _patch_users == 0:
                nn.Module.register_parameter = _REGISTER_PARAMETER  # type: ignore[method-assign]
                nn.Module.register_buffer = _REGISTER_BUFFER  # type: ignore[method-assign]


def materialised_bytes(module: nn.Module) -> int:
    """Bytes of parameters and buffers that are not on the meta device."""
    tensors = list(module.parameters()) + list(module.buffers())
    return sum(t.numel() * t.element_size() for t in tensors if t.device.type != 'meta')
