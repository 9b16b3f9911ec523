# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Model registry: torchvision builders by name, seeded random or real weights, and skeletons."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import torch
from torch import nn
import torchvision
from torchvision.models import detection

from ..engine.skeleton import empty_weights
from .errors import ModelError


@dataclass(frozen=True)
class ModelSpec:
    """A servable model: how to build it and what its input looks like."""

    name: str
    builder: Callable[..., nn.Module]
    detector: bool
    input_hw: tuple[int, int]  # default example input (height, width)
    weights_enum: type | None

    def categories(self) -> list[str]:
        """Class names by class id (COCO for detectors, ImageNet for classifiers)."""
        if self.weights_enum is None:
            return []
        return list(self.weights_enum.DEFAULT.meta['categories'])


_DETECTORS = {
    'ssdlite320_mobilenet_v3_large': detection.SSDLite320_MobileNet_V3_Large_Weights,
    'fasterrcnn_mobilenet_v3_large_320_fpn':
        detection.FasterRCNN_MobileNet_V3_Large_320_FPN_Weights,
    'fasterrcnn_mobilenet_v3_large_fpn': detection.FasterRCNN_MobileNet_V3_Large_FPN_Weights,
    'ssd300_vgg16': detection.SSD300_VGG16_Weights,
    'retinanet_resnet50_fpn': detection.RetinaNet_ResNet50_FPN_Weights,
    'fcos_resnet50_fpn': detection.FCOS_ResNet50_FPN_Weights,
    'fasterrcnn_resnet50_fpn': detection.FasterRCNN_ResNet50_FPN_Weights,
}
_CLASSIFIERS = {
    'resnet18': torchvision.models.ResNet18_Weights,
    'resnet50': torchvision.models.ResNet50_Weights,
    'resnet152': torchvision.models.ResNet152_Weights,
    'densenet201': torchvision.models.DenseNet201_Weights,
}

REGISTRY: dict[str, ModelSpec] = {
    **{n: ModelSpec(n, getattr(detection, n), True, (480, 640), w) for n, w in _DETECTORS.items()},
    **{n: ModelSpec(n, getattr(torchvision.models, n), False, (224, 224), w)
       for n, w in _CLASSIFIERS.items()},
}
DETECTORS = tuple(n for n, s in REGISTRY.items() if s.detector)


def spec(name: str) -> ModelSpec:
    """The registry entry for ``name``; ModelError lists the known names otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ModelError(f'unknown model {name!r}; known: {", ".join(sorted(REGISTRY))}') from None


def _build(s: ModelSpec, weights: object = None) -> nn.Module:
    kwargs: dict[str, object] = {'weights': weights}
    if s.detector:
        kwargs['weights_backbone'] = None
    return s.builder(**kwargs).eval()


def build_skeleton(name: str) -> nn.Module:
    """The architecture with every parameter and buffer on the meta device (nothing loaded)."""
    s = spec(name)
    with empty_weights():
        return _build(s)


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every floating parameter and buffer seeded random values (buffers too, in range)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            if not t.dtype.is_floating_point:
                continue
            if name.endswith('running_var'):
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.75)
            elif name.endswith('running_mean'):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif t.dim() > 1:
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=g) * (1.0 / fan_in) ** 0.5)
            else:
                base = 1.0 if 'weight' in name else 0.0
                t.copy_(torch.randn(t.shape, generator=g) * 0.01 + base)
    return model


def build_model(name: str, weights: str = 'none', seed: int = 0) -> nn.Module:
    """A fully materialised model (for export): ``none`` = seeded random, ``DEFAULT``, or a path.

    A path may be a safetensors file or a ``torch.save``d state dict (loaded without pickle).
    """
    s = spec(name)
    if weights.lower() == 'none':
        return randomize_(_build(s), seed)
    if weights == 'DEFAULT':
        if s.weights_enum is None:
            raise ModelError(f'{name}: no published weights')
        return _build(s, s.weights_enum.DEFAULT)
    path = Path(weights)
    if not path.is_file():
        raise ModelError(f'weights {weights!r}: not none, DEFAULT, or an existing file')
    if path.stat().st_size == 0:
        raise ModelError(f'weights {path}: cannot be read (empty file)')
    try:
        if path.suffix == '.safetensors':
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # noqa: BLE001 - any loader failure is a bad weights file
        reason = str(err).strip() or type(err).__name__
        raise ModelError(f'weights {path}: cannot be read ({reason})') from err
    if not isinstance(state, Mapping):
        raise ModelError(f'weights {path}: holds no state dict (a {type(state).__name__}); '
                         'save model.state_dict()')
    model = _build(s)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ModelError(f'weights {path} do not fit {name}: {err}') from err
    return model


def example_input(name: str, hw: tuple[int, int] | None = None, seed: int = 0) -> tuple:
    """Positional arguments of one forward call, for export tracing and tests."""
    s = spec(name)
    h, w = hw or s.input_hw
    x = torch.rand(3, h, w, generator=torch.Generator().manual_seed(seed))
    return ([x],) if s.detector else (x.unsqueeze(0),)
