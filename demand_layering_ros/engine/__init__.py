# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The demand-layered executor: layer store, policy, loaders, binding, executor, planner.

Pure PyTorch and the OS; no ROS. Usable as a library on its own::

    store = LayerStore.export(model, 'model.dls', (example,))
    with empty_weights():
        skeleton = build()            # same architecture, weights never materialised
    dl = DemandLayeredModel(skeleton, store, mode='pipelined', budget_bytes=64 << 20)
    out = dl(example)
"""

from .errors import (BudgetError, ConfigError, EngineError, InferenceAborted,
                     StoreChangedError, StoreCorruptError, StoreError, StoreExistsError,
                     StoreFormatError, StoreMismatchError)
from .executor import DemandLayeredModel, MODES, Record, Visit
from .loaders import Disk
from .policy import Config, IOSettings, Mode
from .skeleton import empty_weights
from .store import LayerStore, Unit

__all__ = [
    'BudgetError', 'Config', 'ConfigError', 'DemandLayeredModel', 'Disk', 'EngineError',
    'IOSettings', 'InferenceAborted', 'LayerStore', 'MODES', 'Mode', 'StoreChangedError',
    'StoreCorruptError', 'StoreError', 'StoreExistsError', 'StoreFormatError',
    'StoreMismatchError', 'Record', 'Unit', 'Visit', 'empty_weights',
]
