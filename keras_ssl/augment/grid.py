"""Tile images into one picture: a batch and its augmented views, or any columns of images."""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import numpy as np

from keras_ssl.augment.multi_crop import MultiCrop
from keras_ssl.augment.ops import to_float_images
from keras_ssl.backend import tf

Augment = Union[Callable, Sequence[Callable]]


def render_views(images, augment: Augment, n_images: int = 8, n_views: int = 4,
                 path: Optional[str] = None) -> np.ndarray:
    """Grid of ``n_images`` rows: the original, then ``n_views`` augmented views.

    ``images``: ``[batch, H, W, C]`` (``uint8`` or float ``[0, 1]``, ``C`` 1 or 3); the first
    ``n_images`` are used. ``augment``: a callable (e.g. a preset), or a sequence of callables used
    in turn (e.g. BYOL's pair). Originals are resized (bilinear) to the views' size ``h x w``.
    A :class:`~keras_ssl.augment.MultiCrop` shows all its views instead of ``n_views``: the global
    crops, then the local crops at their own (smaller) size, centred in white cells of the global size.
    Returns ``uint8 [rows * h, (1 + n_views) * w, 3]``; writes it as PNG to ``path`` if given.
    """
    x, _ = to_float_images(images)
    x = x[:n_images]
    if isinstance(augment, MultiCrop):
        return image_grid(_multi_crop_columns(x, augment), path)
    augments = list(augment) if isinstance(augment, (list, tuple)) else [augment]
    views = [tf.convert_to_tensor(augments[k % len(augments)](x)) for k in range(n_views)]
    size = tuple(views[0].shape[1:3]) if views else tuple(x.shape[1:3])
    originals = x if tuple(x.shape[1:3]) == size else tf.image.resize(x, size, method="bilinear")
    return image_grid([originals] + views, path)


def _multi_crop_columns(x: tf.Tensor, multi_crop: MultiCrop) -> list:
    """The originals, the global views, and each local view padded (white, centred) to the global size."""
    views = [tf.convert_to_tensor(v) for v in multi_crop(x)]
    height, width = views[0].shape[1:3]
    columns = [x if tuple(x.shape[1:3]) == (height, width) else tf.image.resize(x, (height, width))]
    for view in views:
        top, left = (height - view.shape[1]) // 2, (width - view.shape[2]) // 2
        pad = [[0, 0], [top, height - view.shape[1] - top], [left, width - view.shape[2] - left], [0, 0]]
        columns.append(tf.pad(view, pad, constant_values=1.0))
    return columns


def image_grid(columns: Sequence, path: Optional[str] = None) -> np.ndarray:
    """Tile ``columns`` (each ``[rows, h, w, C]`` float in ``[0, 1]``, ``C`` 1 or 3, same size) side by side.

    Returns ``uint8 [rows * h, len(columns) * w, 3]`` (grayscale tiled to RGB); writes it as PNG to
    ``path`` if given.
    """
    columns = [tf.cast(tf.convert_to_tensor(c), tf.float32) for c in columns]
    if any(c.shape[-1] not in (1, 3) for c in columns):
        raise ValueError(f"image_grid needs 1 or 3 channels, got {[c.shape[-1] for c in columns]}.")
    columns = [tf.tile(c, [1, 1, 1, 3]) if c.shape[-1] == 1 else c for c in columns]
    grid = tf.concat([tf.concat(tf.unstack(c, axis=0), axis=0) for c in columns], axis=1)
    out = np.round(tf.clip_by_value(grid, 0.0, 1.0).numpy() * 255.0).astype(np.uint8)
    if path is not None:
        from PIL import Image  # installed with matplotlib

        Image.fromarray(out).save(path, format="PNG")
    return out
