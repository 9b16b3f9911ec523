# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Direct I/O's alignment: unit regions, reads and buffers start and end on its boundary.

A leaf (no torch) so that the policy, and the planner above it, import without the store
format's tensor types.
"""

ALIGN = 4096          # unit regions: direct I/O needs block-aligned offsets, lengths and buffers


def align_up(n: int, to: int = ALIGN) -> int:
    """Round ``n`` up to a multiple of ``to``."""
    return (n + to - 1) // to * to
