# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Sizes in refusals: the one rule for how a message shows bytes (a leaf, no torch).

A refusal compares sizes - a budget and the least it must be, a budget and what the engines need
- so its figures must differ where the sizes do: shown rounded alike, a budget just below its
minimum would read as equal to it, and a small one as 0.
"""

from __future__ import annotations

from typing import Collection

MiB = 1 << 20


def mib(*sizes: int, exact: Collection[int] = ()) -> list[str]:
    """``sizes`` (bytes) as figures for one message: MiB to two decimals.

    A figure also gives its size in bytes, in brackets, where the MiB figure alone would mislead:
    where it reads the same as another, different, size's of the message, or 0.00 while the size
    is not 0. Sizes in ``exact`` always give their bytes (a least the reader may want to set:
    two decimals round it down as often as up).
    """
    shown = [f'{n / MiB:.2f} MiB' for n in sizes]
    owners: dict[str, set[int]] = {}
    for text, n in zip(shown, sizes):
        owners.setdefault(text, set()).add(n)
    return [f'{text} ({n} bytes)' if (n in exact or len(owners[text]) > 1
                                      or (n != 0 and round(n / MiB, 2) == 0)) else text
            for text, n in zip(shown, sizes)]
