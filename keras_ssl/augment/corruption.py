"""Corruptions for denoising pretext tasks: fresh, per-sample, in the graph, every step.

Same contract and randomness as :mod:`keras_ssl.augment.ops` (counter-based draws, replica-consistent,
XLA-compatible): ``op(images, training=True) -> float32 [batch, H, W, C]`` in ``[0, 1]``;
``training=False`` is the identity. A denoising model corrupts each batch as it trains, so every
epoch sees new noise: not a corrupted copy of the data made once, which a network memorises.

* :class:`GaussianNoise`: ``x + N(0, stddev^2)`` per pixel and channel, clipped to ``[0, 1]``;
* :class:`SaltAndPepper`: a fraction ``amount`` of pixel positions set to 0 or 1 (all channels);
* :class:`RandomErasing`: one random rectangle per image erased (Zhong et al., 2020);
* :class:`PatchMasking`: exactly ``round(mask_ratio * patches)`` square patches per image blanked.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple, Union

from keras_ssl.augment.ops import OPS, Augmentation, _check_probability, _check_range
from keras_ssl.backend import tf


def _static_hwc(images: tf.Tensor, what: str) -> Tuple[int, int, int]:
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    if height is None or width is None:
        raise ValueError(f"{what} needs images with a static height and width.")
    return int(height), int(width), int(channels)


class GaussianNoise(Augmentation):
    """Add ``N(0, stddev^2)`` noise to every pixel and channel (Box-Muller from counter uniforms).

    Default ``stddev=0.1`` (images in ``[0, 1]``); the result is clipped to ``[0, 1]``.
    """

    stream = 201

    def __init__(self, stddev: float = 0.1, seed: Optional[int] = None, name: Optional[str] = None):
        super().__init__(seed, name)
        if not float(stddev) >= 0.0:
            raise ValueError(f"stddev must be >= 0, got {stddev}.")
        self.stddev = float(stddev)

    def get_config(self) -> dict:
        return {"stddev": self.stddev, **super().get_config()}

    def augment(self, images: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
        height, width, channels = _static_hwc(images, "GaussianNoise")
        n = height * width * channels
        u = self.uniform(tf.shape(images)[0], step, 2 * n)
        radius = tf.sqrt(-2.0 * tf.math.log(1.0 - u[:, :n]))  # 1 - u in (0, 1]: log is finite
        normal = radius * tf.cos((2.0 * math.pi) * u[:, n:])
        return images + self.stddev * tf.reshape(normal, [-1, height, width, channels])


class SaltAndPepper(Augmentation):
    """Set a fraction ``amount`` of pixel positions to white (salt) or black (pepper), half each.

    Each position is hit independently with probability ``amount`` (default 0.1), all channels alike.
    """

    stream = 202

    def __init__(self, amount: float = 0.1, seed: Optional[int] = None, name: Optional[str] = None):
        super().__init__(seed, name)
        self.amount = _check_probability(amount, "amount")

    def get_config(self) -> dict:
        return {"amount": self.amount, **super().get_config()}

    def augment(self, images: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
        height, width, _ = _static_hwc(images, "SaltAndPepper")
        n = height * width
        u = self.uniform(tf.shape(images)[0], step, 2 * n)
        hit = tf.reshape(u[:, :n] < self.amount, [-1, height, width, 1])
        salt = tf.reshape(tf.cast(u[:, n:] < 0.5, images.dtype), [-1, height, width, 1])
        return tf.where(hit, salt * tf.ones_like(images), images)


class RandomErasing(Augmentation):
    """Erase one rectangle per image with probability ``p`` (Zhong et al., 2020).

    The rectangle's area fraction ``s ~ U(scale)`` and aspect ratio ``h / w`` log-uniform in ``ratio``
    (clipped to the image), placed uniformly. ``value``: ``"random"`` (uniform noise per pixel, the
    paper's best) or a number in ``[0, 1]``. Paper defaults: ``p=0.5``, ``scale=(0.02, 0.4)``,
    ``ratio=(0.3, 3.3)``.
    """

    stream = 203

    def __init__(self, p: float = 0.5, scale: Tuple[float, float] = (0.02, 0.4),
                 ratio: Tuple[float, float] = (0.3, 3.3), value: Union[str, float] = "random",
                 seed: Optional[int] = None, name: Optional[str] = None):
        super().__init__(seed, name)
        self.p = _check_probability(p)
        self.scale = _check_range(scale, "scale")
        if self.scale[1] > 1.0:
            raise ValueError(f"scale is a fraction of the image area, at most 1; got {scale}.")
        self.ratio = _check_range(ratio, "ratio", lo=1e-6)
        if value != "random" and not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"value must be 'random' or a number in [0, 1], got {value!r}.")
        self.value = value if value == "random" else float(value)

    def get_config(self) -> dict:
        return {"p": self.p, "scale": list(self.scale), "ratio": list(self.ratio), "value": self.value,
                **super().get_config()}

    def augment(self, images: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
        height, width, channels = _static_hwc(images, "RandomErasing")
        batch = tf.shape(images)[0]
        n = height * width * channels
        u = self.uniform(batch, step, 5 + (n if self.value == "random" else 0))
        area = (self.scale[0] + (self.scale[1] - self.scale[0]) * u[:, 1]) * (height * width)
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = tf.exp(log_lo + (log_hi - log_lo) * u[:, 2])  # h / w
        h = tf.clip_by_value(tf.round(tf.sqrt(area * aspect)), 1.0, float(height))
        w = tf.clip_by_value(tf.round(tf.sqrt(area / aspect)), 1.0, float(width))
        top = tf.floor(u[:, 3] * (height - h + 1.0))
        left = tf.floor(u[:, 4] * (width - w + 1.0))
        rows = tf.range(height, dtype=tf.float32)[None, :]
        cols = tf.range(width, dtype=tf.float32)[None, :]
        in_rows = (rows >= top[:, None]) & (rows < (top + h)[:, None])  # [batch, H]
        in_cols = (cols >= left[:, None]) & (cols < (left + w)[:, None])  # [batch, W]
        box = in_rows[:, :, None] & in_cols[:, None, :] & (u[:, 0] < self.p)[:, None, None]
        if self.value == "random":
            fill = tf.reshape(u[:, 5:], [-1, height, width, channels])
        else:
            fill = tf.fill(tf.shape(images), self.value)
        return tf.where(box[..., None], fill, images)


class PatchMasking(Augmentation):
    """Blank exactly ``round(mask_ratio * num_patches)`` of each image's square patches.

    The image is cut into ``patch_size`` x ``patch_size`` patches (height and width must be multiples);
    the masked ones, chosen uniformly without replacement per image, are set to ``value`` (default 0).
    """

    stream = 204

    def __init__(self, patch_size: int = 4, mask_ratio: float = 0.5, value: float = 0.0,
                 seed: Optional[int] = None, name: Optional[str] = None):
        super().__init__(seed, name)
        if int(patch_size) < 1:
            raise ValueError(f"patch_size must be >= 1, got {patch_size}.")
        if not 0.0 < float(mask_ratio) < 1.0:
            raise ValueError(f"mask_ratio must lie in (0, 1), got {mask_ratio}.")
        self.patch_size, self.mask_ratio, self.value = int(patch_size), float(mask_ratio), float(value)

    def get_config(self) -> dict:
        return {"patch_size": self.patch_size, "mask_ratio": self.mask_ratio, "value": self.value,
                **super().get_config()}

    def masked_count(self, height: int, width: int) -> int:
        """How many patches of a ``height`` x ``width`` image are masked."""
        return int(round(self.mask_ratio * (height // self.patch_size) * (width // self.patch_size)))

    def augment(self, images: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
        height, width, _ = _static_hwc(images, "PatchMasking")
        p = self.patch_size
        if height % p or width % p:
            raise ValueError(f"PatchMasking: image size {height}x{width} is not a multiple of patch_size "
                             f"{p}; choose a patch size that divides both sides or resize the images.")
        grid_h, grid_w = height // p, width // p
        u = self.uniform(tf.shape(images)[0], step, grid_h * grid_w)
        ranks = tf.argsort(tf.argsort(u, axis=1), axis=1)  # each patch's rank among its image's draws
        masked = tf.reshape(ranks < self.masked_count(height, width), [-1, grid_h, 1, grid_w, 1])
        masked = tf.reshape(tf.tile(masked, [1, 1, p, 1, p]), [-1, height, width, 1])
        return tf.where(masked, tf.fill(tf.shape(images), self.value), images)


CORRUPTIONS = {"gaussian": GaussianNoise, "salt_and_pepper": SaltAndPepper, "erasing": RandomErasing,
               "patches": PatchMasking}
OPS.update({cls.__name__: cls for cls in CORRUPTIONS.values()})


def corruption(name_or_op, seed: Optional[int] = None):
    """``None``, a corruption op (any callable ``f(images, training)``) or one of the names
    ``"gaussian"``, ``"salt_and_pepper"``, ``"erasing"``, ``"patches"`` (default settings)."""
    if name_or_op is None or callable(name_or_op):
        return name_or_op
    if name_or_op not in CORRUPTIONS:
        raise ValueError(f"Unknown corruption {name_or_op!r}; choose one of {sorted(CORRUPTIONS)}, "
                         "pass an op such as augment.GaussianNoise(stddev=0.2), or None.")
    return CORRUPTIONS[name_or_op](seed=seed)


__all__ = ["CORRUPTIONS", "GaussianNoise", "PatchMasking", "RandomErasing", "SaltAndPepper", "corruption"]
