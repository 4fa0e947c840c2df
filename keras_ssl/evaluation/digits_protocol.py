"""The digits protocol: measures where learned representations matter, not where pixels suffice.

A random-init CNN already reaches ~98 % with a 1,000-label linear probe on digits, so that number
alone cannot show learning. :func:`digits_report` adds two harder measures: 1-NN (cosine) with 5
labels per class, and the 1,000-label probe evaluated on test digits shifted by up to 4 pixels.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional

import numpy as np

from keras_ssl.datasets import few_labels, shift_images
from keras_ssl.evaluation.features import extract_features
from keras_ssl.evaluation.knn import knn_accuracy_from_features
from keras_ssl.evaluation.linear_probe import linear_probe


def digits_report(encoder: Optional[Callable], data: Dict[str, np.ndarray], shots: int = 5,
                  max_shift: int = 4, seed: int = 0) -> Dict[str, float]:
    """``probe``, ``probe_shifted`` and ``nn_{shots}shot`` accuracies of ``encoder`` on :func:`digits` data.

    ``encoder=None`` measures raw pixels.
    """
    def features(x):
        if encoder is None:
            return x.reshape(len(x), -1).astype(np.float32)
        return extract_features(encoder, (x, np.zeros(len(x), np.int64)))[0]

    train_f, test_f = features(data["train_x"]), features(data["test_x"])
    shifted_f = features(shift_images(data["test_x"], max_shift, seed=seed))
    ytr, yte = data["train_y"], data["test_y"]
    probe = linear_probe(None, (train_f, ytr), (test_f, yte), max_iter=2000)["accuracy"]
    probe_shifted = linear_probe(None, (train_f, ytr), (shifted_f, yte), max_iter=2000)["accuracy"]
    few_x, few_y = few_labels(train_f, ytr, shots, seed=seed)
    nn = knn_accuracy_from_features(few_x, few_y, test_f, yte, k=1)
    return {"probe": probe, "probe_shifted": probe_shifted, f"nn_{shots}shot": nn}
