"""Collapse statistics of an embedding batch ``[n, D]`` (NumPy; tensors are accepted too)."""

from __future__ import annotations

from typing import Any

import numpy as np


def _as_matrix(features: Any) -> np.ndarray:
    features = features.numpy() if hasattr(features, "numpy") else features
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or features.shape[0] == 0:
        raise ValueError(f"Features must have shape [n, D] with n > 0, got {features.shape}.")
    return features


def embedding_std(features: Any) -> float:
    """Mean per-dimension standard deviation of the L2-normalised features ``[n, D]``.

    Unit vectors spread isotropically give ``~1/sqrt(D)``; a collapsed (constant) embedding gives 0
    (the SimSiam collapse diagnostic, Chen & He 2021).
    """
    features = _as_matrix(features)
    normalised = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    return float(normalised.std(axis=0).mean())


def effective_rank(features: Any) -> float:
    """Effective rank ``exp(H(p))`` of features ``[n, D]``, ``p = s / sum(s)`` their singular values.

    Roy & Vetterli (2007); the uncentred form is RankMe (Garrido et al. 2023). Between 1 (rank-one /
    constant features) and ``min(n, D)`` (all singular values equal); 0 for all-zero features.
    """
    singular_values = np.linalg.svd(_as_matrix(features), compute_uv=False)
    total = singular_values.sum()
    if not np.isfinite(total) or total <= 0:
        return 0.0 if total == 0 else float("nan")
    p = singular_values / total
    p = p[p > 0]
    return float(np.exp(-np.sum(p * np.log(p))))
