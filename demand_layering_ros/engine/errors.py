# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Errors of the demand-layered executor; each message names the unit or value at fault."""


class EngineError(Exception):
    """Base of every error raised by the engine."""


class StoreError(EngineError):
    """A layer store cannot be used."""


class StoreFormatError(StoreError):
    """The file is not a layer store, or its header or unit table is inconsistent or truncated."""


class StoreCorruptError(StoreError):
    """A unit's bytes do not match its checksum."""


class StoreChangedError(StoreError):
    """The store file changed while in use (written, truncated, replaced or removed)."""


class StoreMismatchError(StoreError):
    """The store does not belong to the skeleton it is used with (other model, dtype or shapes)."""


class StoreExistsError(StoreError):
    """Export refused to overwrite an existing file."""


class BudgetError(EngineError, ValueError):
    """A memory budget below what the chosen mode needs."""


class ConfigError(EngineError, ValueError):
    """An unknown mode, unit name or other invalid configuration value."""


class InferenceAborted(EngineError):
    """An inference was cancelled between two units by its abort callable."""
