"""CIE Lab colour space in the graph, and the quantised ab gamut of colorization (Zhang et al., 2016).

sRGB (D65 white, IEC 61966-2-1 transfer curve) <-> CIE XYZ <-> CIE L*a*b*, the formulas of
scikit-image's ``rgb2lab``/``lab2rgb``: ``L`` in ``[0, 100]``, ``a`` and ``b`` roughly in
``[-110, 110]``. Shapes ``[..., 3]``; float32.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from keras_ssl.backend import tf

_RGB_TO_XYZ = np.array([[0.412453, 0.357580, 0.180423],
                        [0.212671, 0.715160, 0.072169],
                        [0.019334, 0.119193, 0.950227]], np.float64)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883], np.float64)
_EPSILON = 0.008856  # (6/29)^3: below it, Lab's cube root becomes a line
_KAPPA = 7.787


def rgb_to_lab(rgb) -> tf.Tensor:
    """sRGB in ``[0, 1]`` ``[..., 3]`` -> CIE Lab ``[..., 3]`` (``L`` in ``[0, 100]``)."""
    rgb = tf.clip_by_value(tf.cast(rgb, tf.float32), 0.0, 1.0)
    linear = tf.where(rgb > 0.04045, tf.pow((tf.maximum(rgb, 0.04045) + 0.055) / 1.055, 2.4), rgb / 12.92)
    xyz = tf.tensordot(linear, tf.constant(_RGB_TO_XYZ.T, tf.float32), axes=1)
    xyz = xyz / tf.constant(_WHITE_D65, tf.float32)
    f = tf.where(xyz > _EPSILON, tf.pow(tf.maximum(xyz, _EPSILON), 1.0 / 3.0), _KAPPA * xyz + 16.0 / 116.0)
    fx, fy, fz = tf.unstack(f, axis=-1)
    return tf.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_to_rgb(lab) -> tf.Tensor:
    """CIE Lab ``[..., 3]`` -> sRGB ``[..., 3]``, clipped to ``[0, 1]`` (out-of-gamut colours clip)."""
    L, a, b = tf.unstack(tf.cast(lab, tf.float32), axis=-1)
    fy = (L + 16.0) / 116.0
    f = tf.stack([fy + a / 500.0, fy, fy - b / 200.0], axis=-1)
    xyz = tf.where(f > 0.2068966, f ** 3, (f - 16.0 / 116.0) / _KAPPA) * tf.constant(_WHITE_D65, tf.float32)
    linear = tf.maximum(tf.tensordot(xyz, tf.constant(_XYZ_TO_RGB.T, tf.float32), axes=1), 0.0)
    rgb = tf.where(linear > 0.0031308, 1.055 * tf.pow(tf.maximum(linear, 0.0031308), 1.0 / 2.4) - 0.055,
                   12.92 * linear)
    return tf.clip_by_value(rgb, 0.0, 1.0)


@lru_cache(maxsize=4)
def ab_gamut(grid: int = 10) -> np.ndarray:
    """Centres ``float32 [Q, 2]`` of the ``grid`` x ``grid`` ab cells that sRGB colours reach.

    Zhang et al. quantise ab with grid 10 and keep the Q = 313 cells in gamut; here the cells are
    those hit by a dense sampling of the sRGB cube (65^3 colours), Q = 261 at grid 10: the same
    construction without ImageNet statistics.
    """
    axis = np.linspace(0.0, 1.0, 65, dtype=np.float32)
    cube = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    ab = rgb_to_lab(cube).numpy()[:, 1:]
    cells = np.unique(np.round(ab / grid).astype(np.int64), axis=0)
    return (cells * grid).astype(np.float32)


__all__ = ["ab_gamut", "lab_to_rgb", "rgb_to_lab"]
