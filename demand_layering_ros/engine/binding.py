# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Binding a store to a skeleton: matching, hooks, sliced forwards, and weights in and out.

The contract is reversible, like Accelerate's hooks: ``Binder`` checks that every parameter and
buffer of the skeleton is in the store (same shape and dtype), puts a forward pre-hook and a
forward hook on each unit's modules (they tell the executor a unit is entered and left), replaces
the forward of a module stored in output slices, and ``remove()`` leaves the skeleton as it was.
Binding a unit sets its modules' parameters and buffers to views of the bytes where the loader
placed it; unbinding puts the meta placeholders back.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from . import slicing
from .errors import EngineError, StoreMismatchError
from .format import Binding, BindingKind, TensorEntry, Unit
from .store import LayerStore

# (container dict, attribute, store key, the meta placeholder it replaces)
Target = tuple[dict[str, Any], str, str, Any]


class _ForwardOverride:
    """Replaces one module's forward; ``remove()`` restores it (like a hook handle)."""

    def __init__(self, module: nn.Module, forward: Callable[..., Any]) -> None:
        self.module = module
        module.forward = forward  # type: ignore[method-assign]

    def remove(self) -> None:
        self.module.__dict__.pop('forward', None)


class Binder:
    """Attaches a store's units to a skeleton; calls ``enter(u)`` / ``leave(u)`` around them.

    ``enter(u)`` returns the unit's tensors (bound by the caller through :meth:`bind`, or used
    directly by a sliced forward).
    """

    def __init__(self, skeleton: nn.Module, store: LayerStore,
                 enter: Callable[[int], dict[str, torch.Tensor]],
                 leave: Callable[[int], None]) -> None:
        self.skeleton = skeleton
        self.store = store
        self._enter = enter
        self._leave = leave
        self.targets = self._match()
        self._cache: dict[Any, list[tuple[dict[str, Any], str, Any]]] = {}
        self._bound: set[int] = set()
        self._handles = self._install()

    # -- weights in and out ----------------------------------------------------------------------
    def bind(self, u: int, views: dict[str, torch.Tensor], key: Any = None) -> None:
        """Point unit ``u``'s modules at ``views``.

        With a ``key``, the prepared values are kept until :meth:`unbind_all` (a plan binds the
        same views every frame).
        """
        assignments = self._cache.get(key) if key is not None else None
        if assignments is None:
            assignments = []
            for container, attr, k, placeholder in self.targets[u]:
                t = views[k]
                assignments.append((container, attr, nn.Parameter(t, requires_grad=False)
                                    if isinstance(placeholder, nn.Parameter) else t))
            if key is not None:
                self._cache[key] = assignments
        for container, attr, value in assignments:
            container[attr] = value
        self._bound.add(u)

    def unbind(self, u: int) -> None:
        """Put unit ``u``'s placeholders back."""
        if u in self._bound:
            for container, attr, _k, placeholder in self.targets[u]:
                container[attr] = placeholder
            self._bound.discard(u)

    def unbind_all(self) -> None:
        """Every placeholder back; cached bindings forgotten (the memory behind them changes)."""
        for u in list(self._bound):
            self.unbind(u)
        self._cache.clear()

    def remove(self) -> None:
        """Unbind and take the hooks off: the skeleton is as it was."""
        self.unbind_all()
        for h in self._handles:
            h.remove()
        self._handles = []

    # -- hooks --------------------------------------------------------------------------------
    def _install(self) -> list[Any]:
        handles: list[Any] = []
        modules = dict(self.skeleton.named_modules())
        sliced: dict[str, list[Unit]] = {}
        for unit in self.store.units:
            if unit.slice is not None:
                sliced.setdefault(unit.slice[0], []).append(unit)
            for path in unit.modules:
                m = modules[path]
                handles.append(m.register_forward_pre_hook(self._pre_hook(unit.index)))
                handles.append(m.register_forward_hook(self._post_hook(unit.index),
                                                       always_call=True))
        for path, units in sliced.items():
            units.sort(key=lambda u: u.slice[1] if u.slice else 0)
            rows = modules[path]._parameters['weight'].shape[0]
            edges = [(u.slice[1], u.slice[2]) for u in units if u.slice]
            if [lo for lo, _ in edges] != [0] + [hi for _, hi in edges[:-1]] \
                    or edges[-1][1] != rows:
                raise StoreMismatchError(f'{self.store.path.name}: the slices of {path!r} do '
                                         f'not cover its {rows} output rows: {edges}')
            handles.append(_ForwardOverride(modules[path], self._sliced_forward(
                modules[path], units)))
        return handles

    def _pre_hook(self, u: int) -> Callable[..., None]:
        def hook(_module: nn.Module, _args: Any) -> None:
            self._enter(u)
        return hook

    def _post_hook(self, u: int) -> Callable[..., None]:
        def hook(_module: nn.Module, _args: Any, _out: Any) -> None:
            self._leave(u)
        return hook

    def _sliced_forward(self, module: nn.Module, units: list[Unit]) -> Callable[..., Any]:
        def forward(x: torch.Tensor) -> torch.Tensor:
            shape, dim = slicing.output_shape(module, x)
            out = x.new_empty(shape)
            for unit in units:
                views = self._enter(unit.index)
                try:
                    assert unit.slice is not None
                    _, lo, hi = unit.slice
                    w, b = (views.get(self._slice_key(unit, attr)) for attr in ('weight', 'bias'))
                    assert w is not None
                    out.narrow(dim, lo, hi - lo).copy_(slicing.forward_slice(module, x, w, b))
                finally:
                    self._leave(unit.index)
            return out
        return forward

    @staticmethod
    def _slice_key(unit: Unit, attr: str) -> str:
        return next((b.key for b in unit.bindings if b.attr == attr), '')

    # -- matching -------------------------------------------------------------------------------
    def _match(self) -> dict[int, list[Target]]:
        """Check the skeleton against the store; the binding targets of each unit.

        Every stored tensor is compared before a refusal, which says how many differ and the
        first: the store records only its model's class, so stores of two models of one class
        (ssdlite320 and ssd300 are both SSD) are told apart by their tensors.
        """
        modules = dict(self.skeleton.named_modules())
        model = type(self.skeleton).__name__
        targets: dict[int, list[Target]] = {}
        covered: set[tuple[str, str]] = set()
        differ: dict[tuple[str, str], str] = {}   # (module, attr) -> how, in store order
        for unit in self.store.units:
            entries = {t.key: t for t in unit.tensors}
            bound = targets.setdefault(unit.index, [])
            for b in unit.bindings:
                where = (b.module, b.attr)
                module = modules.get(b.module)
                if module is None:
                    differ.setdefault(where, f'{_dotted(*where)}: not in the {model}')
                    continue
                if b.kind == BindingKind.SLICE and unit.slice is not None:
                    problem = self._slice_problem(unit, b, module, entries.get(b.key))
                    if problem:
                        differ.setdefault(where, problem)
                    else:
                        covered.add(where)
                    continue
                container = (module._parameters if b.kind == BindingKind.PARAMETER
                             else module._buffers)
                current = container.get(b.attr)
                entry = entries.get(b.key)
                if current is None or entry is None:
                    differ.setdefault(where, f'{_dotted(*where)}: not a {b.kind} of the {model}')
                elif tuple(current.shape) != entry.shape or current.dtype != entry.dtype:
                    differ.setdefault(where, f'{b.key}: {_kind(entry.dtype, entry.shape)} in the '
                                             f'store, {_kind(current.dtype, current.shape)} in '
                                             f'the {model}')
                else:
                    bound.append((container, b.attr, b.key, current))
                    covered.add(where)
        missing = [_dotted(m, a) for m, mod in modules.items()
                   for a in list(mod._parameters) + list(mod._buffers)
                   if (m, a) not in covered and (m, a) not in differ
                   and (mod._parameters.get(a) is not None or mod._buffers.get(a) is not None)]
        if differ or missing:
            raise StoreMismatchError(self._mismatch(model, list(differ.values()), missing))
        return targets

    def _mismatch(self, model: str, differ: list[str], missing: list[str]) -> str:
        """Why the store does not fit: how many tensors differ, the first, and what to do."""
        stored = {(b.module, b.attr) for u in self.store.units for b in u.bindings}
        made = (f'the store names only its class: {model}' if self.store.model == model
                else f'store made for {self.store.model}')
        parts = ([f'{len(differ)} of its {len(stored)} tensors differ (first {differ[0]})']
                 if differ else [])
        if missing:
            parts.append(f'{len(missing)} of the {model}\'s are not in it'
                         + ('' if differ else f' (first {missing[0]})'))
        return (f'{self.store.path.name} does not fit this {model} ({made}): '
                + ', '.join(parts) + ' - re-export it for this model, or set store_path')

    def _slice_problem(self, unit: Unit, b: Binding, module: nn.Module,
                       entry: TensorEntry | None) -> str | None:
        """How a slice unit's tensor does not fit its module, or None."""
        full = module._parameters.get(b.attr)
        assert unit.slice is not None
        _, lo, hi = unit.slice
        if full is None or entry is None or type(module) not in (nn.Linear, nn.Conv2d):
            return (f'{b.key}: slice unit {unit.name!r} not of a Linear/Conv2d {b.attr} of '
                    f'the {type(self.skeleton).__name__}')
        want = (hi - lo, *full.shape[1:])
        if entry.shape != want or entry.dtype != full.dtype or hi > full.shape[0]:
            return f'{b.key}: {list(entry.shape)} in unit {unit.name!r}, expected {list(want)}'
        return None


def _dotted(module: str, attr: str) -> str:
    return f'{module}.{attr}' if module else attr


def _kind(dtype: torch.dtype, shape: Any) -> str:
    return f'{str(dtype).removeprefix("torch.")} {list(shape)}'


def outside_error() -> EngineError:
    """The error for a skeleton called without its executor."""
    return EngineError('the skeleton ran outside DemandLayeredModel: call the wrapper')
