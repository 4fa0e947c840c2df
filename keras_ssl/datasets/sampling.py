"""Label-budget sampling shared by the evaluation protocols and benchmarks."""

from __future__ import annotations

import numpy as np


def few_labels(x: np.ndarray, y: np.ndarray, per_class: int, seed: int = 0):
    """The first ``per_class`` examples of each class after a seeded shuffle: ``(x, y)``."""
    order = np.random.default_rng(seed).permutation(len(y))
    keep = np.concatenate([order[y[order] == c][:per_class] for c in np.unique(y)])
    return x[keep], y[keep]
