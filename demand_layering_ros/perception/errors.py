# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Errors of the perception layer."""


class PerceptionError(Exception):
    """Base of perception errors."""


class ModelError(PerceptionError, ValueError):
    """An unknown model name or unusable weights."""


class ImageError(PerceptionError, ValueError):
    """An image that cannot be used (size, encoding, data)."""
