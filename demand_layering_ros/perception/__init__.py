# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Perception: the model registry, pre- and post-processing, detections as plain data."""

from .detections import as_dict, Detection
from .detector import (default_store_path, Detector, EngineFigures, EngineRequest,
                       ensure_store)
from .errors import ImageError, ModelError, PerceptionError
from .models import build_model, build_skeleton, DETECTORS, example_input, REGISTRY
from .prepare import DetectorSpec, open_detector, Preparation

__all__ = [
    'DETECTORS', 'Detection', 'Detector', 'DetectorSpec', 'EngineFigures', 'EngineRequest',
    'ImageError',
    'ModelError', 'PerceptionError', 'Preparation', 'REGISTRY', 'as_dict', 'build_model',
    'build_skeleton', 'default_store_path', 'ensure_store', 'example_input', 'open_detector',
]
