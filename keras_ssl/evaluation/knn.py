"""Cosine-similarity k-nearest-neighbour accuracy of frozen features (InstDisc / DINO protocol).

Each test point votes with its ``k`` most cosine-similar training points; with ``weighted=True`` a
neighbour of similarity ``s`` adds ``exp(s / temperature)`` to its class (Wu et al. 2018, Caron et
al. 2021), otherwise 1. ``k=1`` is the plain nearest-neighbour classifier.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from keras_ssl.backend import tf
from keras_ssl.evaluation.features import Encoder, check_features, features_and_labels


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def knn_predict(train_features: Any, train_labels: Any, test_features: Any, k: int = 20,
                temperature: float = 0.07, weighted: bool = True, batch_size: int = 1024) -> np.ndarray:
    """Labels ``[n_test]`` predicted by the cosine k-NN vote (see :func:`knn_accuracy_from_features`)."""
    train_f, train_y = check_features(train_features, train_labels, "train features")
    test_f = np.asarray(test_features, np.float32)
    if test_f.ndim != 2 or test_f.shape[1] != train_f.shape[1]:
        raise ValueError(f"Test features must have shape [n, {train_f.shape[1]}], got {test_f.shape}.")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}.")
    if weighted and temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
    k = min(int(k), len(train_f))
    classes, train_idx = np.unique(train_y, return_inverse=True)
    num_classes = len(classes)

    train_t = tf.constant(_l2_normalize(train_f))
    train_idx_t = tf.constant(train_idx.astype(np.int32))
    predictions = []
    # One [batch, n_train] similarity block at a time bounds memory.
    for start in range(0, len(test_f), batch_size):
        query = tf.constant(_l2_normalize(test_f[start:start + batch_size]))
        sims = tf.matmul(query, train_t, transpose_b=True)
        top_sims, top_idx = tf.math.top_k(sims, k=k)
        # exp(s/T) rescaled per query by exp(-s_max/T): no overflow/underflow, vote ratios unchanged.
        weights = tf.exp((top_sims - top_sims[:, :1]) / temperature) if weighted else tf.ones_like(top_sims)
        votes = tf.reduce_sum(tf.one_hot(tf.gather(train_idx_t, top_idx), num_classes) * weights[..., None],
                              axis=1)
        predictions.append(tf.argmax(votes, axis=1).numpy())
    if not predictions:
        return np.zeros([0], train_y.dtype)
    return classes[np.concatenate(predictions)]


def knn_accuracy_from_features(train_features: Any, train_labels: Any, test_features: Any, test_labels: Any,
                               k: int = 20, temperature: float = 0.07, weighted: bool = True,
                               batch_size: int = 1024) -> float:
    """k-NN accuracy of precomputed features.

    Args:
        train_features, test_features: ``[n_train, D]`` / ``[n_test, D]`` (need not be normalised).
        train_labels, test_labels: integer labels ``[n_train]`` / ``[n_test]``.
        k: neighbours (clipped to ``n_train``); ``k=1`` is nearest neighbour.
        temperature: ``T`` of the vote weights ``exp(similarity / T)`` when ``weighted``.
        weighted: similarity-weighted votes, otherwise majority vote (ties -> smallest label).
        batch_size: test rows per similarity block (memory ``batch_size * n_train`` floats).

    Returns:
        Top-1 accuracy in ``[0, 1]``.
    """
    test_f, test_y = check_features(test_features, test_labels, "test features")
    predictions = knn_predict(train_features, train_labels, test_f, k, temperature, weighted, batch_size)
    return float(np.mean(predictions == test_y))


def knn_accuracy(encoder: Optional[Encoder], train: Any, test: Any, k: int = 20, temperature: float = 0.07,
                 weighted: bool = True, batch_size: int = 256) -> float:
    """k-NN accuracy of ``encoder`` features on labelled ``train``/``test`` data.

    Args:
        encoder: callable ``[batch, H, W, C] -> [batch, D]``, run with ``training=False``; ``None`` means
            ``train``/``test`` already are ``(features, labels)``.
        train, test: ``(x, y)`` arrays or ``tf.data.Dataset`` of ``(x, y)`` batches.
        k, temperature, weighted: see :func:`knn_accuracy_from_features`.
        batch_size: encoder batch size.
    """
    train_f, train_y = features_and_labels(encoder, train, batch_size, "train")
    test_f, test_y = features_and_labels(encoder, test, batch_size, "test")
    return knn_accuracy_from_features(train_f, train_y, test_f, test_y, k, temperature, weighted)
