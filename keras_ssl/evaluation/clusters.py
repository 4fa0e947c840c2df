"""Cluster assignments against labels: the contingency table and purity (SwAV's prototypes, k-means)."""

from __future__ import annotations

import warnings
from typing import Optional

import numpy as np


def contingency(assignments, labels) -> np.ndarray:
    """``int64 [num_classes, num_clusters]``: how many items of each class fall in each cluster."""
    return _counts(*_checked(assignments, labels))


def cluster_purity(assignments, labels, num_clusters: Optional[int] = None) -> float:
    """Fraction of items whose cluster's majority class is their own class (1.0: pure clusters).

    ``assignments`` and ``labels``: ints ``[n]`` (cluster ids, e.g. ``SwAV.assign_prototypes``, and
    class ids). Purity rises with the number of clusters, so compare equal numbers. ``num_clusters``
    (e.g. ``model.prototypes.num_prototypes``): warns when it is smaller than the number of classes,
    since several classes must then share a cluster and purity cannot reach 1.
    """
    assignments, labels = _checked(assignments, labels)
    classes = len(np.unique(labels))
    if num_clusters is not None and int(num_clusters) < classes:
        warnings.warn(f"{num_clusters} clusters for {classes} classes: some classes must share a "
                      f"cluster, so purity is at most the share of the {num_clusters} largest classes. Use "
                      f"at least {classes} prototypes (SwAV's num_prototypes; the paper: 3x the classes).",
                      UserWarning, stacklevel=2)
    return float(_counts(assignments, labels).max(axis=0).sum() / len(labels))


def _counts(assignments: np.ndarray, labels: np.ndarray) -> np.ndarray:
    counts = np.zeros((labels.max() + 1, assignments.max() + 1), np.int64)
    np.add.at(counts, (labels, assignments), 1)
    return counts


def _checked(assignments, labels):
    assignments, labels = np.asarray(assignments), np.asarray(labels)
    if assignments.ndim != 1 or labels.shape != assignments.shape:
        raise ValueError(f"assignments and labels must be int arrays of the same shape [n]; got "
                         f"{assignments.shape} and {labels.shape}.")
    if len(labels) == 0:
        raise ValueError("assignments and labels are empty.")
    for name, values in (("assignments", assignments), ("labels", labels)):
        if not np.issubdtype(values.dtype, np.integer) or values.min() < 0:
            raise ValueError(f"{name} must be int ids >= 0; got dtype {values.dtype}. Map names to ids "
                             "first, e.g. np.unique(y, return_inverse=True)[1].")
    return assignments.astype(np.int64), labels.astype(np.int64)


__all__ = ["cluster_purity", "contingency"]
