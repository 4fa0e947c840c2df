"""Training-time evaluation callbacks: k-NN accuracy and representation-collapse detection.

Both write their numbers into the epoch ``logs`` so they land in ``History``, TensorBoard and
``EarlyStopping`` (list them *before* those callbacks). The encoder is ``encoder`` if given, else the
model being trained, whose ``__call__`` must return encoder features ``[batch, D]``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, List, Optional, Tuple

import numpy as np

from keras_ssl.backend import keras
from keras_ssl.evaluation.features import Encoder, encode, extract_features
from keras_ssl.evaluation.knn import knn_accuracy_from_features
from keras_ssl.evaluation.statistics import effective_rank, embedding_std


class CollapseWarning(UserWarning):
    """Emitted by :class:`CollapseMonitor` when the embedding collapses or diverges, and by
    :class:`~keras_ssl.evaluation.HealthMonitor` when a health metric says so."""


class KNNMonitor(keras.callbacks.Callback):
    """Every ``every`` epochs, write the k-NN accuracy of the encoder into ``logs[name]`` and print it.

    Args:
        train, test: labelled ``(x, y)`` arrays or ``tf.data.Dataset`` of ``(x, y)`` batches (keep them
            small: both are re-encoded at each evaluation).
        every: evaluate at the end of epochs ``every, 2 * every, ...``.
        k, temperature, weighted: see :func:`~keras_ssl.evaluation.knn_accuracy_from_features`.
        encoder: callable to evaluate; defaults to ``self.model``.
        name: logs key.
        verbose: print the value when > 0.
        batch_size: encoder batch size.

    ``self.history`` keeps ``(epoch, accuracy)`` pairs (0-based epochs).
    """

    def __init__(self, train: Any, test: Any, every: int = 5, k: int = 20, temperature: float = 0.07,
                 weighted: bool = True, encoder: Optional[Encoder] = None, name: str = "knn_accuracy",
                 verbose: int = 1, batch_size: int = 256, print_fn: Callable[[str], None] = print):
        super().__init__()
        self.train, self.test = train, test
        self.every = max(int(every), 1)
        self.k, self.temperature, self.weighted = k, temperature, weighted
        self.encoder = encoder
        self.name = name
        self.verbose = verbose
        self.batch_size = batch_size
        self.print_fn = print_fn
        self.history: List[Tuple[int, float]] = []

    def evaluate(self) -> float:
        """k-NN accuracy of the current encoder."""
        encoder = self.encoder if self.encoder is not None else self.model
        train_f, train_y = extract_features(encoder, self.train, self.batch_size)
        test_f, test_y = extract_features(encoder, self.test, self.batch_size)
        return knn_accuracy_from_features(train_f, train_y, test_f, test_y, self.k, self.temperature,
                                          self.weighted)

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        if (epoch + 1) % self.every:
            return
        accuracy = self.evaluate()
        self.history.append((epoch, accuracy))
        if logs is not None:
            logs[self.name] = accuracy
        if self.verbose:
            self.print_fn(f"Epoch {epoch + 1}: {self.name} = {accuracy:.4f}")


_FIXES = ("Likely fixes: lower the learning rate (or add warm-up); check the stop-gradient on the target "
          "branch and the predictor head (SimSiam/BYOL); use a larger batch or a larger temperature "
          "(contrastive losses); reduce weight decay; check augmentations are not trivially identical.")


class CollapseMonitor(keras.callbacks.Callback):
    """Detect representation collapse at epoch end and (optionally) stop training.

    Every ``every`` epochs, encodes ``data`` (a small unlabelled batch: array, ``(x, y)`` or dataset; labels
    ignored), writes ``logs["feature_std"]`` and ``logs["feature_effective_rank"]`` and, when
    ``embedding_std < min_std_ratio / sqrt(D)`` (healthy: ``~1/sqrt(D)``), ``effective_rank <
    min_effective_rank`` or the features are not finite, issues a :class:`CollapseWarning` naming the
    problem and likely fixes, and sets ``self.model.stop_training`` if ``stop``.

    ``self.history`` keeps ``(epoch, embedding_std, effective_rank)``; ``self.collapsed_epoch`` is the
    first 0-based epoch flagged (or ``None``).
    """

    def __init__(self, data: Any, every: int = 1, min_std_ratio: float = 0.1,
                 min_effective_rank: Optional[float] = None, stop: bool = True,
                 encoder: Optional[Encoder] = None, batch_size: int = 256):
        super().__init__()
        self.data = data
        self.every = max(int(every), 1)
        self.min_std_ratio = min_std_ratio
        self.min_effective_rank = min_effective_rank
        self.stop = stop
        self.encoder = encoder
        self.batch_size = batch_size
        self.history: List[Tuple[int, float, float]] = []
        self.collapsed_epoch: Optional[int] = None

    def _problem(self, features: np.ndarray, std: float, rank: float) -> Optional[str]:
        dim = features.shape[1]
        if not np.all(np.isfinite(features)):
            return "the encoder features contain NaN/Inf (training diverged)"
        threshold = self.min_std_ratio / math.sqrt(dim)
        if std < threshold:
            healthy = 1 / math.sqrt(dim)
            return (f"embedding_std = {std:.2e} is below min_std_ratio / sqrt(D) = {self.min_std_ratio} / "
                    f"sqrt({dim}) = {threshold:.2e} (healthy ~ {healthy:.2e}): the embedding has collapsed "
                    "towards a constant")
        if self.min_effective_rank is not None and rank < self.min_effective_rank:
            return (f"effective_rank = {rank:.2f} is below min_effective_rank = {self.min_effective_rank} "
                    f"(D = {dim}): the embedding has collapsed into a low-dimensional subspace")
        return None

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        if (epoch + 1) % self.every:
            return
        encoder = self.encoder if self.encoder is not None else self.model
        features = encode(encoder, self.data, self.batch_size)
        finite = bool(np.all(np.isfinite(features)))
        std = embedding_std(features) if finite else float("nan")
        rank = effective_rank(features) if finite else float("nan")
        self.history.append((epoch, std, rank))
        if logs is not None:
            logs["feature_std"] = std
            logs["feature_effective_rank"] = rank
        problem = self._problem(features, std, rank)
        if problem is None:
            return
        if self.collapsed_epoch is None:
            self.collapsed_epoch = epoch
        action = " Stopping training." if self.stop else ""
        warnings.warn(f"Representation collapse at epoch {epoch + 1}: {problem}.{action} {_FIXES}",
                      CollapseWarning, stacklevel=2)
        if self.stop and self.model is not None:
            self.model.stop_training = True
