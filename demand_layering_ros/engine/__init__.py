# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The demand-layered executor: layer store, policy, loaders, binding, executor, planner.

Pure PyTorch and the OS; no ROS. Usable as a library on its own::

    store = LayerStore.export(model, 'model.dls', (example,))
    with empty_weights():
        skeleton = build()            # same architecture, weights never materialised
    dl = DemandLayeredModel(skeleton, store, mode='pipelined', budget_bytes=64 << 20)
    out = dl(example)
"""

from importlib import import_module
from typing import Any

# names -> the module that defines them, imported on first use: the planner (and the process
# that plans beside inference, ``plan_worker``) imports without torch
_HOME = {
    **dict.fromkeys(('BudgetError', 'ConfigError', 'EngineError', 'InferenceAborted',
                     'StoreChangedError', 'StoreCorruptError', 'StoreError',
                     'StoreExistsError', 'StoreFormatError', 'StoreMismatchError'), 'errors'),
    **dict.fromkeys(('DemandLayeredModel', 'MODES', 'Record', 'Visit'), 'executor'),
    'Disk': 'loaders',
    **dict.fromkeys(('Config', 'IOSettings', 'Mode'), 'policy'),
    'empty_weights': 'skeleton',
    **dict.fromkeys(('LayerStore', 'Unit'), 'store'),
}


def __getattr__(name: str) -> Any:
    """The exported name, its module imported now (PEP 562)."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    return getattr(import_module(f'.{home}', __name__), name)


__all__ = sorted(_HOME)
