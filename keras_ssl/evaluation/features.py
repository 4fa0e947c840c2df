"""Run a frozen encoder over evaluation data: ``(x, y)`` NumPy arrays or a ``tf.data.Dataset``.

An *encoder* is any callable mapping an image batch ``[batch, H, W, C]`` to features ``[batch, D]``:
a ``keras.Model`` / layer (called with ``training=False``) or a plain function.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterator, Optional, Tuple

import numpy as np

from keras_ssl.backend import keras, tf

Encoder = Callable[..., Any]


def _accepts_training(encoder: Encoder) -> bool:
    if isinstance(encoder, keras.layers.Layer):
        return True
    try:
        params = inspect.signature(encoder).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "training" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _to_numpy(value: Any) -> np.ndarray:
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


def _split(element: Any) -> Tuple[Any, Optional[Any]]:
    """``(x, y)`` / ``(x,)`` / ``x`` -> ``(x, y or None)``."""
    if isinstance(element, (tuple, list)):
        if len(element) == 0 or len(element) > 3:
            raise ValueError(f"Expected `x`, `(x,)` or `(x, y)` data, got a tuple of length {len(element)}.")
        return element[0], (element[1] if len(element) > 1 else None)
    if isinstance(element, dict):
        raise ValueError("Dict-structured data is not supported; map it to `(x, y)` tuples first "
                         "(e.g. `ds.map(lambda d: (d['image'], d['label']))`).")
    return element, None


def _batches(data: Any, batch_size: int) -> Iterator[Tuple[Any, Optional[Any]]]:
    """Yield ``(x_batch, y_batch or None)`` from arrays or a (batched or unbatched) dataset."""
    if isinstance(data, tf.data.Dataset):
        x_spec, y_spec = _split(data.element_spec)
        # Scalar labels mean the dataset yields single examples: batch it here.
        if y_spec is not None and y_spec.shape.rank == 0:
            data = data.batch(batch_size)
        for element in data:
            yield _split(element)
        return
    x, y = _split(data)
    x = np.asarray(x) if not tf.is_tensor(x) else x
    n = len(x)
    if y is not None and len(y) != n:
        raise ValueError(f"Got {n} inputs but {len(y)} labels.")
    for start in range(0, n, batch_size):
        yield x[start:start + batch_size], (None if y is None else y[start:start + batch_size])


def _labels_1d(y: Any) -> np.ndarray:
    y = _to_numpy(y)
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot / probabilities
        y = y.argmax(axis=1)
    return y.reshape(len(y)).astype(np.int64)


def _run(encoder: Encoder, x: Any, training_kwarg: bool) -> np.ndarray:
    features = encoder(x, training=False) if training_kwarg else encoder(x)
    features = _to_numpy(features)
    if features.ndim != 2:
        raise ValueError(f"The encoder must return features of shape [batch, D], got shape {features.shape}; "
                         "pool or flatten its output (e.g. GlobalAveragePooling2D).")
    return features.astype(np.float32, copy=False)


def _extract(encoder: Encoder, data: Any, batch_size: int, need_labels: bool
             ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    training_kwarg = _accepts_training(encoder)
    features, labels = [], []
    for x, y in _batches(data, batch_size):
        if need_labels and y is None:
            raise ValueError("Evaluation data has no labels: pass `(x, y)` arrays or a dataset of `(x, y)` "
                             "batches.")
        features.append(_run(encoder, tf.convert_to_tensor(x), training_kwarg))
        if y is not None:
            labels.append(_labels_1d(y))
    if not features:
        raise ValueError("Evaluation data is empty.")
    features = np.concatenate(features, axis=0)
    if not need_labels:
        return features, None
    labels = np.concatenate(labels, axis=0)
    if len(labels) != len(features):
        raise ValueError(f"Got {len(features)} feature rows but {len(labels)} labels.")
    return features, labels


def extract_features(encoder: Encoder, data: Any, batch_size: int = 256) -> Tuple[np.ndarray, np.ndarray]:
    """Encode labelled ``data`` in inference mode.

    Args:
        encoder: callable ``[batch, H, W, C] -> [batch, D]``; Keras layers/models get ``training=False``.
        data: ``(x, y)`` arrays, or a ``tf.data.Dataset`` of ``(x, y)`` batches (or of single
            examples with scalar labels, which are batched here). One-hot labels are argmax-ed.
        batch_size: batch size for arrays and unbatched datasets.

    Returns:
        ``(features float32 [n, D], labels int64 [n])``.

    Raises:
        ValueError: if the data carries no labels, or features and labels differ in length.
    """
    features, labels = _extract(encoder, data, batch_size, need_labels=True)
    return features, labels


def encode(encoder: Encoder, data: Any, batch_size: int = 256) -> np.ndarray:
    """Encode ``data`` (``x``, ``(x, y)`` or a dataset of either; labels ignored) -> float32 ``[n, D]``."""
    return _extract(encoder, data, batch_size, need_labels=False)[0]


def check_features(features: Any, labels: Any, what: str = "features") -> Tuple[np.ndarray, np.ndarray]:
    """Validate a ``(features [n, D], labels [n])`` pair and return it as ``(float32, int64)`` arrays."""
    features = np.asarray(_to_numpy(features), np.float32)
    labels = _to_numpy(labels)
    if features.ndim != 2:
        raise ValueError(f"{what} must have shape [n, D], got {features.shape}.")
    if labels.ndim != 1:
        raise ValueError(f"Labels for {what} must have shape [n], got {labels.shape}.")
    if len(features) != len(labels):
        raise ValueError(f"{what} has {len(features)} rows but {len(labels)} labels.")
    if len(features) == 0:
        raise ValueError(f"{what} is empty.")
    return features, labels.astype(np.int64)


def features_and_labels(encoder: Optional[Encoder], data: Any, batch_size: int, what: str
                        ) -> Tuple[np.ndarray, np.ndarray]:
    """``extract_features`` when an encoder is given, else treat ``data`` as ``(features, labels)``."""
    if encoder is not None:
        return extract_features(encoder, data, batch_size)
    if isinstance(data, tf.data.Dataset):
        return extract_features(lambda x: x, data, batch_size)
    x, y = _split(data)
    if y is None:
        raise ValueError(f"{what} has no labels: pass `(features, labels)`.")
    return check_features(x, y, what)
