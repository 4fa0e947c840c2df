"""Linear probe: a linear classifier trained on frozen encoder features.

``method="logistic"`` fits scikit-learn's multinomial ``LogisticRegression`` (lbfgs);
``method="keras"`` trains one ``Dense`` softmax layer with Adam on the same L2-regularised objective
(``mean cross-entropy + ||W||^2 / (2 C n)``, i.e. sklearn's objective divided by ``C n``), for users
without scikit-learn or with features on a GPU.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from keras_ssl.backend import keras, tf
from keras_ssl.evaluation.features import Encoder, features_and_labels


def _standardize(train_f: np.ndarray, test_f: np.ndarray):
    mean = train_f.mean(axis=0)
    std = train_f.std(axis=0)
    std = np.where(std > 1e-8, std, 1.0)
    return (train_f - mean) / std, (test_f - mean) / std


def _fit_logistic(train_f, train_idx, test_f, C: float, max_iter: int, seed: int):
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("method='logistic' needs scikit-learn; install it or use method='keras'.") \
            from error
    classifier = LogisticRegression(C=C, max_iter=max_iter, solver="lbfgs", random_state=seed)
    classifier.fit(train_f, train_idx)
    return classifier.predict(train_f), classifier.predict(test_f)


def _fit_keras(train_f, train_idx, test_f, num_classes: int, C: float, epochs: int, batch_size: int,
               learning_rate: float, seed: int):
    n, dim = train_f.shape
    inputs = keras.Input([dim])
    outputs = keras.layers.Dense(num_classes, kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
                                 kernel_regularizer=keras.regularizers.L2(1.0 / (2.0 * C * n)))(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    data = (tf.data.Dataset.from_tensor_slices((train_f, train_idx))
            .shuffle(n, seed=seed, reshuffle_each_iteration=True).batch(batch_size))
    model.fit(data, epochs=epochs, verbose=0)
    predict = lambda f: np.concatenate(  # noqa: E731
        [model(f[i:i + 4096], training=False).numpy().argmax(axis=1) for i in range(0, len(f), 4096)])
    return predict(train_f), predict(test_f)


def linear_probe(encoder: Optional[Encoder], train: Any, test: Any, method: str = "logistic",
                 C: float = 1.0, max_iter: int = 1000, standardize: bool = True, epochs: int = 100,
                 probe_batch_size: int = 256, learning_rate: float = 1e-2, seed: int = 0,
                 batch_size: int = 256) -> Dict[str, float]:
    """Train a linear classifier on frozen features of ``train`` and score it on ``test``.

    Args:
        encoder: callable ``[batch, H, W, C] -> [batch, D]``, run with ``training=False``; ``None`` means
            ``train``/``test`` already are ``(features, labels)``.
        train, test: ``(x, y)`` arrays or ``tf.data.Dataset`` of ``(x, y)`` batches.
        method: ``"logistic"`` (scikit-learn) or ``"keras"`` (Dense softmax + Adam).
        C: inverse L2 strength (scikit-learn convention), used by both methods.
        max_iter: lbfgs iterations (``"logistic"``).
        standardize: z-score features with the training mean/std first.
        epochs, probe_batch_size, learning_rate: Adam training of the ``"keras"`` probe.
        seed: seeds the classifier initialisation and shuffling.
        batch_size: encoder batch size.

    Returns:
        ``{"accuracy": test top-1, "train_accuracy": train top-1}``.
    """
    if method not in ("logistic", "keras"):
        raise ValueError(f"method must be 'logistic' or 'keras', got {method!r}.")
    if C <= 0:
        raise ValueError(f"C must be > 0, got {C}.")
    train_f, train_y = features_and_labels(encoder, train, batch_size, "train")
    test_f, test_y = features_and_labels(encoder, test, batch_size, "test")
    if train_f.shape[1] != test_f.shape[1]:
        raise ValueError(f"Train and test features differ in dimension: {train_f.shape[1]} vs "
                         f"{test_f.shape[1]}.")
    classes, train_idx = np.unique(train_y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError("The training labels contain a single class; a probe needs at least two.")
    if standardize:
        train_f, test_f = _standardize(train_f, test_f)
    if method == "logistic":
        train_pred, test_pred = _fit_logistic(train_f, train_idx, test_f, C, max_iter, seed)
    else:
        train_pred, test_pred = _fit_keras(train_f.astype(np.float32), train_idx.astype(np.int64),
                                           test_f.astype(np.float32), len(classes), C, epochs,
                                           probe_batch_size, learning_rate, seed)
    return {"accuracy": float(np.mean(classes[test_pred] == test_y)),
            "train_accuracy": float(np.mean(classes[train_pred] == train_y))}
