"""Checks of class-id labels shared by the classifiers of every modality (images, tables)."""

from __future__ import annotations

import warnings

import numpy as np


def check_labels(y, num_classes: int) -> np.ndarray:
    """Validate array labels: integer class ids in ``[0, num_classes)``; warns when a class is absent."""
    y = np.asarray(y)
    if y.dtype.kind in "OUSb" or y.dtype.kind == "f":
        hint = ("map them to ids first, e.g. names, y = np.unique(y, return_inverse=True)"
                if y.dtype.kind in "OUS" else "cast integral values with y.astype('int64')")
        raise ValueError(f"Labels must be integer class ids 0..{num_classes - 1}; got dtype {y.dtype}: "
                         f"{hint}.")
    if y.ndim == 2 and y.shape[1] == num_classes and num_classes > 1:
        raise ValueError("Labels look one-hot [n, num_classes]; pass class ids instead: y.argmax(axis=1).")
    if y.ndim > 1 and not (y.ndim == 2 and y.shape[1] == 1):
        raise ValueError(f"Labels must have shape [n] (class ids); got {y.shape}.")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(
            f"Labels must lie in [0, {num_classes - 1}] for num_classes={num_classes}; got values from "
            f"{y.min()} to {y.max()}. Fix the labels or build the classifier with more classes."
        )
    missing = sorted(set(range(num_classes)) - set(np.unique(y).tolist()))
    if y.size and missing:
        warnings.warn(
            f"The labels contain no example of class(es) {missing[:20]} of {num_classes}: the classifier "
            "will not learn to predict them. Check the labels or the sampling.", UserWarning, stacklevel=3)
    return y
