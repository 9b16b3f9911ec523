# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Detections as plain data, and the filters applied after the detector."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import torch


@dataclass(frozen=True)
class Detection:
    """One detected object, box in input-image pixels (x1, y1, x2, y2)."""

    class_id: int
    label: str
    score: float
    box: tuple[float, float, float, float]


def to_detections(output: dict[str, torch.Tensor], categories: list[str], *,
                  score_threshold: float = 0.0, max_detections: int = 100,
                  class_filter: Iterable[str] = (), scale: tuple[float, float] = (1.0, 1.0)
                  ) -> list[Detection]:
    """Turn a torchvision detector output into filtered, score-sorted detections.

    ``scale`` (sx, sy) maps boxes from the network's input back to the source image.
    """
    wanted = {c.strip() for c in class_filter if c.strip()}
    boxes = output['boxes'].detach().cpu().numpy().astype(np.float64)
    scores = output['scores'].detach().cpu().numpy().astype(np.float64)
    labels = output['labels'].detach().cpu().numpy()
    order = np.argsort(-scores, kind='stable')
    out: list[Detection] = []
    for i in order:
        if scores[i] < score_threshold or len(out) >= max_detections:
            break
        cid = int(labels[i])
        name = categories[cid] if 0 <= cid < len(categories) else str(cid)
        if wanted and name not in wanted and str(cid) not in wanted:
            continue
        x1, y1, x2, y2 = boxes[i]
        out.append(Detection(cid, name, float(scores[i]),
                             (x1 * scale[0], y1 * scale[1], x2 * scale[0], y2 * scale[1])))
    return out


def as_dict(d: Detection) -> dict[str, Any]:
    """A JSON-ready form."""
    return {'class_id': d.class_id, 'label': d.label, 'score': round(d.score, 4),
            'box': [round(v, 1) for v in d.box]}
