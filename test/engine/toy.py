# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""A small model that exercises what detectors do.

Tied weights, a parent that owns a tensor around its children, a module used twice, buffers,
and a data-dependent branch.
"""

import torch
from torch import nn


class Block(nn.Module):
    """Conv + batch norm, with its own scale used after the children ran."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)
        self.scale = nn.Parameter(torch.ones(c, 1, 1))

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x))) * self.scale


class Toy(nn.Module):
    """Tied embedding-like weights, a shared head applied twice, a branch on the data."""

    def __init__(self, c: int = 16) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.block1 = Block(c)
        self.block2 = Block(c)
        self.head = nn.Conv2d(c, c, 1)
        self.big = nn.Linear(c * 8 * 8, 4096)
        self.out = nn.Linear(4096, 10)
        self.out_tied = nn.Linear(4096, 10)
        self.out_tied.weight = self.out.weight  # shared tensor, stored once
        self.rare = nn.Linear(4096, 10)  # only used when the branch is taken

    def forward(self, x, take_rare: bool = False):
        x = self.block2(self.block1(self.stem(x)))
        x = self.head(self.head(x))  # the same module twice
        x = torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1)
        h = torch.relu(self.big(x))
        y = self.out(h) + self.out_tied(h)
        if take_rare or bool(h.mean() > 1e9):
            y = y + self.rare(h)
        return y


def make_toy(seed: int = 0) -> Toy:
    """A Toy with every parameter and buffer randomised."""
    torch.manual_seed(seed)
    m = Toy().eval()
    with torch.no_grad():
        for name, t in list(m.named_parameters()) + list(m.named_buffers()):
            if t.dtype.is_floating_point:
                t.copy_(torch.rand_like(t) + 0.5 if 'var' in name else torch.randn_like(t) * 0.2)
            else:
                t.fill_(7)
    return m
