"""The few-label protocol for tables: pretrain on the unlabelled rows, then train with few labels.

A tabular practitioner with many rows and few labels has three honest alternatives to
self-supervised pretraining, and the protocol measures all of them on the same labelled rows and
the same held-out test rows:

* the same MLP encoder trained **from scratch** on the labels alone (what pretraining must beat);
* **logistic regression** on the preprocessed features (standardised numerics, missing-value
  indicators, one-hot categoricals);
* scikit-learn's **HistGradientBoostingClassifier** on the raw numerics (missing values handled
  natively) and the categorical ids: the baseline a practitioner would actually pick.

Pretrained encoders (SCARF, VIME) are **fine-tuned** (:data:`TABULAR_FINETUNE`, the same schedule
as the from-scratch MLP) and **linear-probed** (logistic regression on frozen embeddings).
Labelled subsets are stratified (:func:`label_subset`); every score is accuracy and ROC AUC on the
test split. ``benchmarks/tabular_payoff.py`` runs the whole grid; ``tests/test_tabular_payoff.py``
asserts the few-label gain on one table.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

#: The encoder of the recipes: :func:`keras_ssl.tabular.mlp_encoder` with SCARF's 4 x 256 ReLU layers.
TABULAR_ENCODER: Dict[str, Any] = {"hidden_units": 256, "depth": 4}

#: Pretraining per method: Adam, epochs over the unlabelled training rows, the papers' pretext settings
#: (SCARF: corruption rate 0.6, temperature 1.0; VIME: p_m 0.3, alpha 2.0).
TABULAR_PRETRAIN: Dict[str, Dict[str, Any]] = {
    "scarf": {"epochs": 10, "batch_size": 256, "learning_rate": 1e-3, "corruption_rate": 0.6,
              "temperature": 1.0},
    "vime": {"epochs": 10, "batch_size": 256, "learning_rate": 1e-3, "p_m": 0.3, "alpha": 2.0},
}

#: Supervised training of an encoder + linear head (pretrained or from scratch): Adam, batches of
#: ``min(batch_size, n)`` labelled rows, ``max(steps, min_epochs * ceil(n / batch))`` steps: 300 for
#: the few-label budgets, at least 5 epochs when labels are many.
TABULAR_FINETUNE: Dict[str, Any] = {"steps": 300, "min_epochs": 5, "batch_size": 64, "learning_rate": 3e-4}


def label_subset(frame, label: str, n: Optional[int], seed: int = 0):
    """``n`` rows of ``frame`` drawn per class in proportion to the class frequencies (at least one row
    per class; seeded); ``None`` or ``n >= len(frame)`` returns ``frame``."""
    if n is None or n >= len(frame):
        return frame
    rng = np.random.default_rng(seed)
    values = frame[label].to_numpy()
    classes, counts = np.unique(values, return_counts=True)
    if n < len(classes):
        raise ValueError(f"{n} labels cannot cover the {len(classes)} classes of {label!r}.")
    quota = np.maximum(1, np.floor(n * counts / counts.sum()).astype(int))
    while quota.sum() < n:  # hand out the remainder to the largest classes
        quota[np.argmax(counts / counts.sum() * n - quota)] += 1
    while quota.sum() > n:
        quota[np.argmax(quota)] -= 1
    rows = np.concatenate([rng.choice(np.flatnonzero(values == c), q, replace=False)
                           for c, q in zip(classes, quota)])
    return frame.iloc[np.sort(rows)]


def _batches(frame, label: Optional[str], prep, batch_size: int, shuffle: bool, seed: int):
    from keras_ssl.tabular import tabular_dataset

    return tabular_dataset(frame, label=label, preprocessing=prep, batch_size=batch_size, shuffle=shuffle,
                           seed=seed)[0]


def tabular_encoder(prep, seed: int = 0, **overrides):
    """The recipes' encoder (:data:`TABULAR_ENCODER`) for ``prep``, drawn after ``set_random_seed(seed)``."""
    from keras_ssl.backend import keras
    from keras_ssl.tabular import mlp_encoder

    keras.utils.set_random_seed(seed)
    return mlp_encoder(prep, **{**TABULAR_ENCODER, **overrides})


def pretrain_tabular(method: str, frame, prep, seed: int = 0, epochs: Optional[int] = None,
                     verbose: int = 0, **overrides):
    """Pretrain ``method`` (``"scarf"`` or ``"vime"``) on the rows of ``frame`` (labels unused) from
    ``tabular_encoder(prep, seed)``; returns the trained model (``model.encoder``)."""
    from keras_ssl import tabular
    from keras_ssl.backend import keras

    if method not in TABULAR_PRETRAIN:
        raise ValueError(f"Unknown method {method!r}; choose from {sorted(TABULAR_PRETRAIN)}.")
    r = {**TABULAR_PRETRAIN[method], **overrides}
    encoder = tabular_encoder(prep, seed)
    if method == "scarf":
        model = tabular.SCARF(encoder, corruption_rate=r["corruption_rate"], temperature=r["temperature"],
                              seed=seed)
    else:
        model = tabular.VIME(encoder, p_m=r["p_m"], alpha=r["alpha"], seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(r["learning_rate"]))
    data = _batches(frame.drop(columns=[prep.label]) if prep.label in frame else frame, None, prep,
                    r["batch_size"], True, seed)
    model.fit(data, epochs=int(epochs if epochs is not None else r["epochs"]), verbose=verbose)
    return model


def _scores(probabilities: np.ndarray, labels: np.ndarray) -> Dict[str, float]:
    from sklearn.metrics import roc_auc_score

    scores = {"accuracy": float(np.mean(probabilities.argmax(axis=1) == labels))}
    if probabilities.shape[1] == 2 and len(np.unique(labels)) == 2:
        scores["auc"] = float(roc_auc_score(labels, probabilities[:, 1]))
    return scores


def _labels(frame, prep) -> np.ndarray:
    from keras_ssl.tabular.preprocessing import label_values

    return np.asarray(label_values(frame[prep.label], prep)).astype(np.int64)


def fine_tune(encoder, prep, labelled, test, seed: int = 0, **overrides) -> Dict[str, float]:
    """Train ``encoder`` + a linear softmax head on ``labelled`` rows (:data:`TABULAR_FINETUNE`);
    test accuracy/AUC. ``encoder`` is trained in place: pass a copy."""
    from keras_ssl import tabular
    from keras_ssl.backend import keras

    r = {**TABULAR_FINETUNE, **overrides}
    num_classes = len(prep.label_names) if prep.label_names else int(_labels(labelled, prep).max()) + 1
    num_classes = max(num_classes, 2)
    keras.utils.set_random_seed(seed)
    classifier = tabular.TabularClassifier(encoder, num_classes=num_classes, head="linear")
    classifier.compile(optimizer=keras.optimizers.Adam(r["learning_rate"]))
    batch = min(int(r["batch_size"]), len(labelled))
    steps = max(int(r["steps"]), int(r["min_epochs"]) * -(-len(labelled) // batch))
    train = _batches(labelled, prep.label, prep, batch, True, seed).repeat()
    classifier.fit(train, steps_per_epoch=steps, epochs=1, verbose=0)
    probabilities = classifier.predict(_batches(test, prep.label, prep, 2048, False, seed), verbose=0)
    return _scores(np.asarray(probabilities), _labels(test, prep))


def _embeddings(encoder, frame, prep) -> np.ndarray:
    data = _batches(frame, prep.label, prep, 2048, False, 0).map(lambda x, y: x)
    return np.asarray(encoder.predict(data, verbose=0))


def probe(encoder, prep, labelled, test, seed: int = 0) -> Dict[str, float]:
    """Logistic regression on frozen, standardised embeddings of ``encoder``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    train = _embeddings(encoder, labelled, prep)
    scaler = StandardScaler().fit(train)
    model = LogisticRegression(max_iter=2000, random_state=seed)
    model.fit(scaler.transform(train), _labels(labelled, prep))
    return _scores(model.predict_proba(scaler.transform(_embeddings(encoder, test, prep))),
                   _labels(test, prep))


def _preprocessed(frame, prep) -> Dict[str, np.ndarray]:
    data = _batches(frame, prep.label, prep, 4096, False, 0).map(lambda x, y: prep(x))
    parts = list(data.as_numpy_iterator())
    return {key: np.concatenate([p[key] for p in parts]) for key in ("numeric", "missing", "categorical")}


def logistic_regression(prep, labelled, test, seed: int = 0) -> Dict[str, float]:
    """Logistic regression on standardised numerics, missing indicators and one-hot categoricals."""
    from sklearn.linear_model import LogisticRegression

    def features(frame):
        p = _preprocessed(frame, prep)
        one_hot = [np.eye(size, dtype=np.float32)[p["categorical"][:, j]]
                   for j, size in enumerate(prep.vocabulary_sizes)]
        return np.concatenate([p["numeric"], p["missing"], *one_hot], axis=1)

    model = LogisticRegression(max_iter=2000, random_state=seed)
    model.fit(features(labelled), _labels(labelled, prep))
    return _scores(model.predict_proba(features(test)), _labels(test, prep))


def gradient_boosting(prep, labelled, test, seed: int = 0) -> Dict[str, float]:
    """scikit-learn's ``HistGradientBoostingClassifier`` (defaults) on raw numerics (NaN kept: it
    handles missing values) and categorical ids (native categorical splits up to 255 categories)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    def features(frame):
        numeric = (frame[list(prep.numeric)].to_numpy(np.float64) if prep.numeric
                   else np.zeros((len(frame), 0)))
        categorical = _preprocessed(frame, prep)["categorical"].astype(np.float64)
        return np.concatenate([numeric, categorical], axis=1)

    # Native categorical splits take at most 255 categories; larger vocabularies stay ordinal ids.
    mask = [False] * len(prep.numeric) + [size <= 255 for size in prep.vocabulary_sizes]
    model = HistGradientBoostingClassifier(categorical_features=mask if any(mask) else None,
                                           random_state=seed)
    model.fit(features(labelled), _labels(labelled, prep))
    return _scores(model.predict_proba(features(test)), _labels(test, prep))


__all__ = ["TABULAR_ENCODER", "TABULAR_FINETUNE", "TABULAR_PRETRAIN", "fine_tune", "gradient_boosting",
           "label_subset", "logistic_regression", "pretrain_tabular", "probe", "tabular_encoder"]
