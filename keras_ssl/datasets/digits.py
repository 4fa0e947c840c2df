"""scikit-learn's handwritten digits (bundled with scikit-learn, offline)."""

from __future__ import annotations

from typing import Dict

import numpy as np


def digits(size: int = 32, n_train: int = 1000, seed: int = 0) -> Dict[str, np.ndarray]:
    """scikit-learn's bundled handwritten digits (1,797 8x8 images), upsampled to ``size`` x ``size``.

    Returns float32 images in ``[0, 1]`` ``[n, size, size, 1]`` and int64 labels, split at random
    (``seed``) into ``n_train`` training and the rest test images: keys ``train_x``, ``train_y``,
    ``test_x``, ``test_y``.
    """
    from sklearn.datasets import load_digits

    from keras_ssl.backend import tf

    data = load_digits()
    images = (data.images.astype(np.float32) / 16.0)[..., None]
    if size != 8:
        images = tf.image.resize(images, (size, size), method="bilinear").numpy().clip(0, 1)
    order = np.random.default_rng(seed).permutation(len(images))
    train, test = order[:n_train], order[n_train:]
    labels = data.target.astype(np.int64)
    return {"train_x": images[train], "train_y": labels[train],
            "test_x": images[test], "test_y": labels[test]}


def shift_images(images: np.ndarray, max_shift: int = 4, seed: int = 0) -> np.ndarray:
    """Shift each image by a random integer offset in ``[-max_shift, max_shift]`` (both axes), zero fill."""
    rng = np.random.default_rng(seed)
    out = np.zeros_like(images)
    h, w = images.shape[1:3]
    for i, image in enumerate(images):
        dy, dx = rng.integers(-max_shift, max_shift + 1, size=2)
        ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
        xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
        out[i, yd, xd] = image[ys, xs]
    return out
