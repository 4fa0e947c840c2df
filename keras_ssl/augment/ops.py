"""Batched, in-graph image augmentations with per-sample randomness (SimCLR / MoCo / BYOL ops).

Every op is a callable ``op(images, training=True) -> images``:

* ``images``: ``[batch, H, W, C]`` (or one image ``[H, W, C]``), ``uint8`` in ``[0, 255]`` (divided
  by 255) or floating in ``[0, 1]``; ``C`` must be static. The result is always ``float32``, clipped
  to ``[0, 1]``. Colour ops (saturation, hue, grayscale) act only when ``C == 3`` and are the
  identity otherwise (e.g. ``C == 1``); brightness, contrast, blur, solarize work for any ``C``.
* ``training=False`` (a Python or tensor bool) skips the randomness: the identity, except that
  :class:`RandomResizedCrop` still resizes the whole image to its output size. ``None`` counts as
  ``True``.

Randomness. Each op draws counter-based uniforms (:mod:`keras_ssl.counter_random`, murmur3 in
``uint32``): a pure function of ``(seed, op kind, step, sample index, draw index)``. The ``step`` is
reserved atomically, once per call, from a small ``int64`` state variable that the op creates on its
first call (``RngReadAndSkip``, the op behind ``tf.random.Generator``). Hence:

* eager, ``tf.function`` (traced once, fresh draws every call), ``tf.data.Dataset.map`` (also with
  ``num_parallel_calls``: the reservation is atomic, so no two calls share a step) and
  ``tf.function(jit_compile=True)`` all work, and give the same draws for the same seed and step;
* every sample gets its own draws; ``seed=None`` picks a random seed, a fixed seed replays the same
  sequence of calls (sequential calls; a parallel ``map`` hands out steps in scheduling order);
* ``tf.distribute``: the state is created under the strategy active at the first call (also when
  that call is inside ``strategy.run``), so under ``MirroredStrategy`` it is a mirrored variable
  whose copies advance in lockstep. The sample index is global (``replica_id * local_batch + i``),
  so N replicas with equal local batches draw exactly what one replica draws for the global batch.
  An op first called outside any strategy keeps its plain state variable: still usable in replica
  context, each replica then reserves its own steps.

XLA has no kernel for ``CropAndResize`` and is slow on depthwise convolutions with many channels,
so under ``jit_compile`` the crop samples bilinearly with two gathers and the blur sums shifted
copies; outside XLA they use ``tf.image.crop_and_resize`` and ``tf.nn.depthwise_conv2d``. Both
formulations compute the same numbers (to float rounding); ``method=`` forces one.
"""

from __future__ import annotations

import math
import random
from typing import Dict, List, Optional, Sequence, Tuple, Union

from keras_ssl import counter_random as cr
from keras_ssl.backend import tf

Range = Union[float, Tuple[float, float]]

# ITU-R 601-2 luma, as torchvision's rgb_to_grayscale and tf.image.rgb_to_grayscale.
LUMA = (0.299, 0.587, 0.114)
_PHILOX = 1  # RngReadAndSkip's algorithm id; only the layout of the int64[3] state matters here


def to_float_images(images) -> Tuple[tf.Tensor, bool]:
    """``uint8 [0, 255]`` or float ``[0, 1]`` images -> (``float32 [batch, H, W, C]``, was one image)."""
    x = tf.convert_to_tensor(images)
    if x.dtype == tf.uint8:
        x = tf.cast(x, tf.float32) / 255.0
    elif x.dtype.is_floating:
        x = tf.cast(x, tf.float32)
    else:
        raise TypeError(f"Images must be uint8 in [0, 255] or floating in [0, 1], got {x.dtype.name}.")
    if x.shape.rank not in (3, 4):
        raise ValueError(f"Images must be [batch, H, W, C] or [H, W, C], got shape {x.shape}.")
    single = x.shape.rank == 3
    if single:
        x = x[None]
    if x.shape[-1] is None:
        raise ValueError("The channel count of the images must be static.")
    return x, single


def in_xla_context() -> bool:
    """Whether ops are being traced for XLA (inside ``tf.function(jit_compile=True)``)."""
    try:
        graph = tf.compat.v1.get_default_graph()
        while graph is not None:
            ctx = graph._get_control_flow_context()
            while ctx is not None:
                if ctx.IsXLAContext():
                    return True
                ctx = ctx.outer_context
            graph = getattr(graph, "outer_graph", None)
    except AttributeError:  # TF internals moved: the gather/shift paths work everywhere
        return True
    return False


def grayscale(x: tf.Tensor) -> tf.Tensor:
    """Luma ``0.299 R + 0.587 G + 0.114 B`` of ``[..., 3]`` images -> ``[..., 1]``."""
    return tf.reduce_sum(x * tf.constant(LUMA, x.dtype), axis=-1, keepdims=True)


def _per_sample(values: tf.Tensor) -> tf.Tensor:
    """``[batch]`` -> ``[batch, 1, 1, 1]`` for broadcasting against images."""
    return values[:, None, None, None]


def _where(mask: tf.Tensor, a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Per-sample choice: ``a[i]`` where ``mask[i]`` (``bool [batch]``) else ``b[i]``."""
    return tf.where(_per_sample(mask), a, b)


def _check_probability(p: float, what: str = "p") -> float:
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{what} must be in [0, 1], got {p}.")
    return float(p)


def _check_range(value, what: str, lo: float = 0.0) -> Tuple[float, float]:
    a, b = (float(value[0]), float(value[1])) if isinstance(value, (tuple, list)) else (value, value)
    if not lo <= a <= b:
        raise ValueError(f"{what} must satisfy {lo} <= min <= max, got {value}.")
    return a, b


class Augmentation(tf.Module):
    """Base of the random ops: seed, lazily created step state, per-sample uniforms, ``__call__``.

    Subclasses set a distinct ``stream`` (so ops of different kinds draw independently; two ops of
    one kind with one seed draw alike, so give them different seeds) and implement
    :meth:`augment`, a pure function of ``(images, step)``: the same images and step give the same
    output in every execution mode.
    """

    stream = 0

    def __init__(self, seed: Optional[int] = None, name: Optional[str] = None):
        super().__init__(name=name)
        self.seed = random.SystemRandom().getrandbits(32) if seed is None else int(seed) & 0xFFFFFFFF
        self.rng_state = None  # int64 [3] variable, created on the first call

    def get_config(self) -> dict:
        return {"seed": self.seed}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    @tf.autograph.experimental.do_not_convert
    def __call__(self, images, training=True) -> tf.Tensor:
        x, single = to_float_images(images)
        if training is None or isinstance(training, bool):
            out = self.augment(x, self.next_step()) if training is not False else self.inference(x)
        else:
            out = tf.cond(
                tf.cast(training, tf.bool),
                lambda: self.augment(x, self.next_step()),
                lambda: self.inference(x),
            )
        out = tf.clip_by_value(out, 0.0, 1.0)
        return out[0] if single else out

    def augment(self, images: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
        """Augment ``float32 [batch, H, W, C]`` with the draws of ``step``; deterministic."""
        raise NotImplementedError

    def inference(self, images: tf.Tensor) -> tf.Tensor:
        """The ``training=False`` output: the images unchanged."""
        return images

    def build_state(self) -> None:
        """Create the step state now (under the active strategy, if any) instead of at the first call,
        e.g. so that a model's weights are the same list before and after its first step."""
        if self.rng_state is None:
            with tf.init_scope():  # out of any tf.function; under the active strategy, if any
                self.rng_state = tf.Variable(tf.zeros([3], tf.int64), trainable=False, name="rng_state")

    def next_step(self) -> tf.Tensor:
        """Reserve a fresh step (``int64 [3]``, atomically) from this op's state variable."""
        self.build_state()
        return tf.raw_ops.RngReadAndSkip(
            resource=self.rng_state.handle, alg=_PHILOX, delta=tf.constant(1, tf.uint64)
        )

    def uniform(self, batch_size, step: tf.Tensor, n: int) -> tf.Tensor:
        """``float32 [batch, n]`` uniforms in ``[0, 1)``: ``n`` independent draws per sample."""
        count = tf.convert_to_tensor(step)[0]
        lo = cr.to_u32(count)
        hi = cr.to_u32(tf.bitwise.right_shift(count, tf.constant(32, tf.int64)))
        step_key = tf.bitwise.bitwise_xor(lo, cr.fmix32(hi + tf.constant(0x68E31DA4, tf.uint32)))
        ctx = tf.distribute.get_replica_context()
        replica = 0 if ctx is None else ctx.replica_id_in_sync_group
        batch_size = tf.cast(batch_size, tf.int64)
        rows = tf.range(batch_size, dtype=tf.int64) + tf.cast(replica, tf.int64) * batch_size
        return cr.uniform(self.seed, self.stream, step_key, cr.to_u32(rows)[:, None], tf.range(n)[None, :])


# --------------------------------------------------------------------------------------------
# Geometry


def _crop_resize_gather(images: tf.Tensor, crops: tf.Tensor, size: Tuple[int, int]) -> tf.Tensor:
    """Bilinear crop-and-resize with two batched gathers per axis (XLA-friendly).

    Same sampling grid as ``tf.image.crop_and_resize`` on :func:`crops_to_boxes` boxes: output row
    ``i`` samples input row ``top + i (h - 1) / (out_h - 1)`` (pixel centres), clamped to the image.
    """
    height, width = tf.shape(images)[1], tf.shape(images)[2]

    def coords(start, extent, n, limit):
        if n == 1:
            grid = start + 0.5 * (extent - 1.0)
        else:
            grid = start + tf.range(n, dtype=tf.float32)[None, :] * ((extent - 1.0) / (n - 1))
        grid = tf.clip_by_value(grid, 0.0, tf.cast(limit - 1, tf.float32))
        floor = tf.floor(grid)
        i0 = tf.cast(floor, tf.int32)
        return i0, tf.minimum(i0 + 1, limit - 1), grid - floor

    y0, y1, fy = coords(crops[:, 0:1], crops[:, 2:3], size[0], height)
    x0, x1, fx = coords(crops[:, 1:2], crops[:, 3:4], size[1], width)
    top = tf.gather(images, y0, axis=1, batch_dims=1)
    bottom = tf.gather(images, y1, axis=1, batch_dims=1)
    rows = top + (bottom - top) * fy[:, :, None, None]
    left = tf.gather(rows, x0, axis=2, batch_dims=1)
    right = tf.gather(rows, x1, axis=2, batch_dims=1)
    return left + (right - left) * fx[:, None, :, None]


def crops_to_boxes(crops: tf.Tensor, height, width) -> tf.Tensor:
    """Pixel crops ``(top, left, h, w)`` ``[batch, 4]`` -> ``tf.image.crop_and_resize`` boxes.

    A crop covers pixels ``top .. top + h`` (continuous); its sample points run from the centre of
    its first pixel to that of its last, ``y1 = top / (H - 1)``, ``y2 = (top + h - 1) / (H - 1)``.
    """
    h1 = tf.cast(tf.maximum(height - 1, 1), tf.float32)
    w1 = tf.cast(tf.maximum(width - 1, 1), tf.float32)
    top, left, h, w = tf.unstack(crops, axis=1)
    boxes = tf.stack([top / h1, left / w1, (top + h - 1.0) / h1, (left + w - 1.0) / w1], axis=1)
    return tf.clip_by_value(boxes, 0.0, 1.0)


def crop_and_resize(images: tf.Tensor, crops: tf.Tensor, size: Tuple[int, int], method: str = "auto"):
    """Bilinearly resample pixel crops ``(top, left, h, w)`` ``[batch, 4]`` of ``images`` to ``size``.

    ``method``: ``"crop_and_resize"`` (``tf.image.crop_and_resize``, no XLA kernel), ``"gather"``
    (XLA-friendly) or ``"auto"`` (gather under XLA, crop_and_resize otherwise).
    """
    if method == "auto":
        method = "gather" if in_xla_context() else "crop_and_resize"
    if method == "gather":
        return _crop_resize_gather(images, crops, size)
    if method != "crop_and_resize":
        raise ValueError(f"method must be 'auto', 'gather' or 'crop_and_resize', got {method!r}.")
    boxes = crops_to_boxes(crops, tf.shape(images)[1], tf.shape(images)[2])
    index = tf.range(tf.shape(images)[0])
    return tf.image.crop_and_resize(images, boxes, index, size, method="bilinear")


class RandomResizedCrop(Augmentation):
    """Inception-style random crop, resized to ``size`` (torchvision's ``RandomResizedCrop``).

    Per sample: up to 10 attempts draw an area fraction ``s ~ U(scale)`` and an aspect ratio
    ``r = w / h`` log-uniform in ``ratio``; the first crop that fits in the image is taken,
    placed uniformly; if none fits, the centre crop of the whole image with the ratio clamped
    into ``ratio``. Crops are continuous (sub-pixel), so areas and ratios lie exactly in range.
    Paper defaults (SimCLR, BYOL): ``scale=(0.08, 1.0)``, ``ratio=(3/4, 4/3)``.

    ``[batch, H, W, C] -> [batch, size_h, size_w, C]``; ``training=False`` resizes the whole image.
    """

    stream = 101
    attempts = 10

    def __init__(
        self,
        size: Union[int, Tuple[int, int]],
        scale: Tuple[float, float] = (0.08, 1.0),
        ratio: Tuple[float, float] = (3 / 4, 4 / 3),
        seed: Optional[int] = None,
        method: str = "auto",
        name: Optional[str] = None,
    ):
        super().__init__(seed, name)
        self.size = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
        if min(self.size) < 1:
            raise ValueError(f"size must be positive, got {size}.")
        self.scale = _check_range(scale, "scale")
        if not 0.0 < self.scale[0] <= self.scale[1] <= 1.0:
            raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {scale}.")
        self.ratio = _check_range(ratio, "ratio")
        if self.ratio[0] <= 0:
            raise ValueError(f"ratio must be positive, got {ratio}.")
        if method not in ("auto", "gather", "crop_and_resize"):
            raise ValueError(f"method must be 'auto', 'gather' or 'crop_and_resize', got {method!r}.")
        self.method = method

    def get_config(self) -> dict:
        return {"size": self.size, "scale": self.scale, "ratio": self.ratio, "method": self.method,
                **super().get_config()}

    def sample_crops(self, batch_size, height, width, step: Optional[tf.Tensor] = None) -> tf.Tensor:
        """Pixel crops ``float32 [batch, 4]``: ``(top, left, h, w)``, with ``h w / (H W)`` in ``scale``."""
        step = self.next_step() if step is None else step
        n = self.attempts
        u = self.uniform(batch_size, step, 2 * n + 2)
        height, width = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
        area = height * width
        s = self.scale[0] + (self.scale[1] - self.scale[0]) * u[:, :n]
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        r = tf.exp(log_lo + (log_hi - log_lo) * u[:, n : 2 * n])
        w = tf.sqrt(s * area * r)
        h = tf.sqrt(s * area / r)
        fits = (w <= width) & (h <= height)
        first = tf.argmax(tf.cast(fits, tf.int32), axis=1, output_type=tf.int32)
        w = tf.gather(w, first, axis=1, batch_dims=1)
        h = tf.gather(h, first, axis=1, batch_dims=1)
        # Fallback (no attempt fits): torchvision's centre crop with the ratio clamped into range.
        in_ratio = width / height
        fw = tf.where(in_ratio > self.ratio[1], height * self.ratio[1], width)
        fh = tf.where(in_ratio < self.ratio[0], width / self.ratio[0], height)
        any_fit = tf.reduce_any(fits, axis=1)
        h = tf.clip_by_value(tf.where(any_fit, h, fh), 1.0, height)
        w = tf.clip_by_value(tf.where(any_fit, w, fw), 1.0, width)
        top = tf.where(any_fit, u[:, 2 * n] * (height - h), (height - h) / 2)
        left = tf.where(any_fit, u[:, 2 * n + 1] * (width - w), (width - w) / 2)
        return tf.stack([top, left, h, w], axis=1)

    def augment(self, images: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
        shape = tf.shape(images)
        crops = self.sample_crops(shape[0], shape[1], shape[2], step)
        return crop_and_resize(images, crops, self.size, self.method)

    def inference(self, images: tf.Tensor) -> tf.Tensor:
        shape = tf.shape(images)
        full = tf.cast(tf.stack([0, 0, shape[1], shape[2]]), tf.float32)
        crops = tf.tile(full[None], [shape[0], 1])
        return crop_and_resize(images, crops, self.size, self.method)


class RandomFlip(Augmentation):
    """Flip each image left-right (``horizontal``) and/or up-down (``vertical``) with probability ``p``.

    Paper default (SimCLR, MoCo, BYOL): horizontal, ``p=0.5``. Shape-preserving.
    """

    stream = 102

    def __init__(self, horizontal: bool = True, vertical: bool = False, p: float = 0.5,
                 seed: Optional[int] = None, name: Optional[str] = None):
        super().__init__(seed, name)
        self.horizontal, self.vertical = bool(horizontal), bool(vertical)
        self.p = _check_probability(p)

    def get_config(self) -> dict:
        return {"horizontal": self.horizontal, "vertical": self.vertical, "p": self.p,
                **super().get_config()}

    def augment(self, images: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
        u = self.uniform(tf.shape(images)[0], step, 2)
        if self.horizontal:
            images = _where(u[:, 0] < self.p, tf.reverse(images, axis=[2]), images)
        if self.vertical:
            images = _where(u[:, 1] < self.p, tf.reverse(images, axis=[1]), images)
        return images


# --------------------------------------------------------------------------------------------
# Colour


def adjust_brightness(x: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """``clip(f x)``, ``factor`` ``[batch]`` (torchvision: blend with black)."""
    return tf.clip_by_value(x * _per_sample(factor), 0.0, 1.0)


def adjust_contrast(x: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """``clip(f x + (1 - f) m)``, ``m`` the image's mean luma (mean of all values unless ``C == 3``)."""
    ref = grayscale(x) if x.shape[-1] == 3 else x
    mean = tf.reduce_mean(ref, axis=[1, 2, 3], keepdims=True)
    f = _per_sample(factor)
    return tf.clip_by_value(f * x + (1.0 - f) * mean, 0.0, 1.0)


def adjust_saturation(x: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """``clip(f x + (1 - f) gray(x))`` for RGB (torchvision); identity unless ``C == 3``."""
    if x.shape[-1] != 3:
        return x
    f = _per_sample(factor)
    return tf.clip_by_value(f * x + (1.0 - f) * grayscale(x), 0.0, 1.0)


def adjust_hue(x: tf.Tensor, delta: tf.Tensor) -> tf.Tensor:
    """Rotate the HSV hue by ``delta`` ``[batch]`` turns (``[-0.5, 0.5]``); identity unless ``C == 3``.

    Same numbers as ``rgb_to_hsv`` -> shift -> ``hsv_to_rgb`` (torchvision, ``tf.image``), but
    branch-free with the sector picked by ``argmax``: ``tf.image.rgb_to_hsv`` picks it by float
    equality, which XLA's CPU fusions can break (recomputed maxima round differently).
    """
    if x.shape[-1] != 3:
        return x
    r, g, b = tf.unstack(x, axis=-1)
    value = tf.reduce_max(x, axis=-1)
    chroma = value - tf.reduce_min(x, axis=-1)
    safe = tf.where(chroma > 0, chroma, 1.0)
    arg = tf.argmax(x, axis=-1, output_type=tf.int32)
    h6 = tf.where(arg == 0, (g - b) / safe, tf.where(arg == 1, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    h6 = h6 + 6.0 * delta[:, None, None]  # hue in sixths of a turn

    def channel(n: float) -> tf.Tensor:
        k = tf.math.floormod(n + h6, 6.0)
        return value - chroma * tf.clip_by_value(tf.minimum(k, 4.0 - k), 0.0, 1.0)

    return tf.clip_by_value(tf.stack([channel(5.0), channel(3.0), channel(1.0)], axis=-1), 0.0, 1.0)


_ADJUST = {"brightness": adjust_brightness, "contrast": adjust_contrast, "saturation": adjust_saturation,
           "hue": adjust_hue}


def _adjust_one_of(x: tf.Tensor, kinds: List[str], params: List[tf.Tensor], which: tf.Tensor,
                   partition: Optional[bool] = None) -> tf.Tensor:
    """Apply ``kinds[which[i]]`` (with ``params[which[i]][i]``) to image ``i``.

    ``partition=True`` (default outside XLA) splits the batch by kind with ``dynamic_partition``, so
    each image pays for one adjustment; ``False`` (XLA needs static shapes) computes every kind for
    the whole batch and selects. Both give the same numbers.
    """
    partition = not in_xla_context() if partition is None else partition
    if partition:
        n = len(kinds)
        index = tf.dynamic_partition(tf.range(tf.shape(x)[0]), which, n)
        images = tf.dynamic_partition(x, which, n)
        outs = [_ADJUST[kind](images[j], tf.dynamic_partition(params[j], which, n)[j])
                for j, kind in enumerate(kinds)]
        out = tf.dynamic_stitch(index, outs)
        out.set_shape(x.shape)
        return out
    # Brightness, contrast and saturation are all clip(f x + (1 - f) ref), ref black, the mean luma
    # or the luma: one blend per slot (and one hue rotation), not one of each kind.
    factor = _per_sample(tf.gather(tf.stack(params, axis=1), which, axis=1, batch_dims=1))
    luma = grayscale(x) if x.shape[-1] == 3 else x
    refs = {"brightness": tf.zeros_like(luma[:, :1, :1, :1]),
            "contrast": tf.reduce_mean(luma, axis=[1, 2, 3], keepdims=True)}
    if x.shape[-1] == 3:
        refs["saturation"] = luma
    ref = None
    for j, kind in enumerate(kinds):
        if kind in refs:
            ref = refs[kind] if ref is None else tf.where(_per_sample(tf.equal(which, j)), refs[kind], ref)
    out = tf.clip_by_value(factor * x + (1.0 - factor) * ref, 0.0, 1.0)
    if "hue" in kinds:
        j = kinds.index("hue")
        out = _where(tf.equal(which, j), adjust_hue(x, params[j]), out)
    return out


class ColorJitter(Augmentation):
    """torchvision's ``ColorJitter`` applied with probability ``p``, in a random order per image.

    Factors ``~ U(max(0, 1 - v), 1 + v)`` for brightness, contrast and saturation, hue shift
    ``~ U(-hue, hue)`` turns (each may also be a ``(min, max)`` range; ``0`` disables it).
    SimCLR scales all with the strength ``s``: ``(0.8 s, 0.8 s, 0.8 s, 0.2 s)``, ``p=0.8``;
    MoCo v2 ``(0.4, 0.4, 0.4, 0.1)``; BYOL ``(0.4, 0.4, 0.2, 0.1)``, both ``p=0.8``.
    Saturation and hue act only on RGB (``C == 3``). Shape-preserving.
    """

    stream = 103
    _KINDS = ("brightness", "contrast", "saturation", "hue")

    def __init__(self, brightness: Range = 0.4, contrast: Range = 0.4, saturation: Range = 0.4,
                 hue: Range = 0.1, p: float = 0.8, random_order: bool = True,
                 seed: Optional[int] = None, name: Optional[str] = None):
        super().__init__(seed, name)
        self.brightness, self.contrast, self.saturation = (brightness, contrast, saturation)
        self.hue = hue
        self._ranges: Dict[str, Tuple[float, float]] = {}
        for kind, value in zip(self._KINDS[:3], (brightness, contrast, saturation)):
            if isinstance(value, (tuple, list)):
                self._ranges[kind] = _check_range(value, kind)
            elif value:
                if value < 0:
                    raise ValueError(f"{kind} must be >= 0, got {value}.")
                self._ranges[kind] = (max(0.0, 1.0 - value), 1.0 + value)
        if isinstance(hue, (tuple, list)) or hue:
            lo, hi = _check_range(hue, "hue", lo=-0.5) if isinstance(hue, (tuple, list)) else (-hue, hue)
            if not -0.5 <= lo <= hi <= 0.5:
                raise ValueError(f"hue must lie in [-0.5, 0.5], got {hue}.")
            self._ranges["hue"] = (lo, hi)
        self.p = _check_probability(p)
        self.random_order = bool(random_order)

    def get_config(self) -> dict:
        return {"brightness": self.brightness, "contrast": self.contrast, "saturation": self.saturation,
                "hue": self.hue, "p": self.p, "random_order": self.random_order, **super().get_config()}

    def augment(self, images: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
        rgb = images.shape[-1] == 3
        kinds = [k for k in self._KINDS if k in self._ranges and (rgb or k in ("brightness", "contrast"))]
        if not kinds:
            return images
        u = self.uniform(tf.shape(images)[0], step, 1 + 2 * len(self._KINDS))
        apply = u[:, 0] < self.p
        params = []
        for kind in kinds:
            lo, hi = self._ranges[kind]
            params.append(lo + (hi - lo) * u[:, 1 + self._KINDS.index(kind)])
        x = images
        if self.random_order and len(kinds) > 1:
            keys = tf.stack([u[:, 5 + self._KINDS.index(k)] for k in kinds], axis=1)
            order = tf.argsort(keys, axis=1)  # int32: a uniform random permutation
            for slot in range(len(kinds)):
                x = _adjust_one_of(x, kinds, params, order[:, slot])
        else:
            for kind, param in zip(kinds, params):
                x = _ADJUST[kind](x, param)
        return _where(apply, x, images)


class RandomGrayscale(Augmentation):
    """Replace each RGB image by its luma (on all 3 channels) with probability ``p``.

    Paper default (SimCLR, MoCo v2, BYOL): ``p=0.2``. Identity unless ``C == 3``.
    """

    stream = 104

    def __init__(self, p: float = 0.2, seed: Optional[int] = None, name: Optional[str] = None):
        super().__init__(seed, name)
        self.p = _check_probability(p)

    def get_config(self) -> dict:
        return {"p": self.p, **super().get_config()}

    def augment(self, images: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
        if images.shape[-1] != 3:
            return images
        u = self.uniform(tf.shape(images)[0], step, 1)
        gray = tf.tile(grayscale(images), [1, 1, 1, 3])
        return _where(u[:, 0] < self.p, gray, images)


# --------------------------------------------------------------------------------------------
# Filters


def gaussian_kernels(sigma: tf.Tensor, radius: int) -> tf.Tensor:
    """Normalised 1-D Gaussian taps ``float32 [batch, 2 radius + 1]`` for ``sigma`` ``[batch]``."""
    t = tf.range(-radius, radius + 1, dtype=tf.float32)[None, :]
    logits = -tf.square(t) / (2.0 * tf.square(sigma[:, None]))
    return tf.nn.softmax(logits, axis=1)  # exp(-t^2 / 2 sigma^2) / sum, overflow-free


def _blur_shifts(padded: tf.Tensor, taps: tf.Tensor, height, width) -> tf.Tensor:
    k = taps.shape[1]
    rows = 0.0
    for t in range(k):
        rows += _per_sample(taps[:, t]) * padded[:, t : t + height]
    out = 0.0
    for t in range(k):
        out += _per_sample(taps[:, t]) * rows[:, :, t : t + width]
    return out


def _blur_depthwise(padded: tf.Tensor, taps: tf.Tensor, height, width) -> tf.Tensor:
    """Per-sample separable blur as one depthwise conv: the batch is folded into the channels."""
    batch, channels = tf.shape(padded)[0], padded.shape[-1]
    k = taps.shape[1]
    folded = tf.reshape(tf.transpose(padded, [1, 2, 0, 3]), [1, height + k - 1, width + k - 1, -1])
    per_channel = tf.transpose(tf.repeat(taps, channels, axis=0))  # [k, batch * C]
    out = tf.nn.depthwise_conv2d(folded, per_channel[:, None, :, None], [1, 1, 1, 1], "VALID")
    out = tf.nn.depthwise_conv2d(out, per_channel[None, :, :, None], [1, 1, 1, 1], "VALID")
    return tf.transpose(tf.reshape(out, [height, width, batch, channels]), [2, 0, 1, 3])


def gaussian_blur(images: tf.Tensor, sigma: tf.Tensor, radius: int, method: str = "auto") -> tf.Tensor:
    """Separable Gaussian blur with per-sample ``sigma`` ``[batch]``, reflect padding.

    ``method``: ``"depthwise"`` (``tf.nn.depthwise_conv2d``), ``"shifts"`` (sum of shifted copies,
    fast under XLA) or ``"auto"`` (shifts under XLA, depthwise otherwise).
    """
    if method == "auto":
        method = "shifts" if in_xla_context() else "depthwise"
    if method not in ("shifts", "depthwise"):
        raise ValueError(f"method must be 'auto', 'shifts' or 'depthwise', got {method!r}.")
    if radius < 1:
        return images
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    taps = gaussian_kernels(sigma, radius)
    padded = tf.pad(images, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    blur = _blur_shifts if method == "shifts" else _blur_depthwise
    return blur(padded, taps, height, width)


class GaussianBlur(Augmentation):
    """Gaussian blur with probability ``p``, ``sigma ~ U(sigma)`` per image, reflect padding.

    ``kernel_size`` (default: a tenth of the image height, as SimCLR) gives ``radius =
    kernel_size // 2`` and ``2 radius + 1`` taps (23 for 224 px). Paper defaults: ``sigma=(0.1,
    2.0)``; ``p=0.5`` (SimCLR on ImageNet, MoCo v2), ``1.0`` / ``0.1`` (BYOL's two views). The
    radius must be smaller than the image sides. Shape-preserving.
    """

    stream = 105

    def __init__(self, p: float = 0.5, sigma: Tuple[float, float] = (0.1, 2.0),
                 kernel_size: Optional[int] = None, seed: Optional[int] = None,
                 method: str = "auto", name: Optional[str] = None):
        super().__init__(seed, name)
        self.p = _check_probability(p)
        self.sigma = _check_range(sigma, "sigma")
        if self.sigma[0] <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}.")
        self.kernel_size = None if kernel_size is None else int(kernel_size)
        if method not in ("auto", "shifts", "depthwise"):
            raise ValueError(f"method must be 'auto', 'shifts' or 'depthwise', got {method!r}.")
        self.method = method

    def get_config(self) -> dict:
        return {"p": self.p, "sigma": self.sigma, "kernel_size": self.kernel_size, "method": self.method,
                **super().get_config()}

    def radius(self, height: Optional[int]) -> int:
        if self.kernel_size is not None:
            return self.kernel_size // 2
        if height is None:
            raise ValueError("GaussianBlur needs a static image height, or an explicit kernel_size.")
        return (height // 10) // 2

    def augment(self, images: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
        u = self.uniform(tf.shape(images)[0], step, 2)
        sigma = self.sigma[0] + (self.sigma[1] - self.sigma[0]) * u[:, 1]
        blurred = gaussian_blur(images, sigma, self.radius(images.shape[1]), self.method)
        return _where(u[:, 0] < self.p, blurred, images)


class Solarize(Augmentation):
    """Invert every value ``>= threshold`` (``x -> 1 - x``) with probability ``p``.

    Paper defaults (BYOL): ``threshold=0.5``, ``p=0.0`` / ``0.2`` for the two views.
    """

    stream = 106

    def __init__(self, p: float = 0.2, threshold: float = 0.5, seed: Optional[int] = None,
                 name: Optional[str] = None):
        super().__init__(seed, name)
        self.p = _check_probability(p)
        self.threshold = float(threshold)

    def get_config(self) -> dict:
        return {"p": self.p, "threshold": self.threshold, **super().get_config()}

    def augment(self, images: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
        u = self.uniform(tf.shape(images)[0], step, 1)
        solarized = tf.where(images >= self.threshold, 1.0 - images, images)
        return _where(u[:, 0] < self.p, solarized, images)


# --------------------------------------------------------------------------------------------
# Geometry and stroke ops for small grayscale images (the digits preset)


class RandomTranslate(Augmentation):
    """Shift each image by a random whole number of pixels in ``[-max_shift, max_shift]`` on each axis.

    Uncovered pixels are zero (black), as in :func:`keras_ssl.datasets.shift_images`; the shift is
    exact (no resampling). Shape-preserving; needs a static height and width.
    """

    stream = 107

    def __init__(self, max_shift: int = 4, seed: Optional[int] = None, name: Optional[str] = None):
        super().__init__(seed, name)
        if int(max_shift) < 0:
            raise ValueError(f"max_shift must be >= 0, got {max_shift}.")
        self.max_shift = int(max_shift)

    def get_config(self) -> dict:
        return {"max_shift": self.max_shift, **super().get_config()}

    def augment(self, images: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
        m = self.max_shift
        batch = tf.shape(images)[0]
        height, width = images.shape[1], images.shape[2]
        if height is None or width is None:
            raise ValueError("RandomTranslate needs images with a static height and width.")
        # Window offset o in [0, 2m] into the zero-padded image: the content moves by m - o pixels.
        offsets = tf.minimum(tf.floor(self.uniform(batch, step, 2) * (2 * m + 1)), 2.0 * m)
        padded = tf.pad(images, [[0, 0], [m, m], [m, m], [0, 0]])
        size = tf.fill([batch], 1.0)
        crops = tf.stack([offsets[:, 0], offsets[:, 1], height * size, width * size], axis=1)
        return crop_and_resize(padded, crops, (height, width))


class RandomStroke(Augmentation):
    """Thicken strokes (3x3 max filter) with probability ``p``, or thin them (3x3 min filter) with
    probability ``p``; otherwise leave the image as it is. For bright strokes on a dark background.
    """

    stream = 109

    def __init__(self, p: float = 0.3, seed: Optional[int] = None, name: Optional[str] = None):
        super().__init__(seed, name)
        self.p = float(p)
        if not 0.0 <= self.p <= 0.5:
            raise ValueError(f"p must lie in [0, 0.5] (thicken and thin are exclusive), got {p}.")

    def get_config(self) -> dict:
        return {"p": self.p, **super().get_config()}

    def augment(self, images: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
        u = self.uniform(tf.shape(images)[0], step, 1)[:, 0][:, None, None, None]
        thick = tf.nn.max_pool2d(images, 3, 1, "SAME")
        thin = -tf.nn.max_pool2d(-images, 3, 1, "SAME")
        return tf.where(u < self.p, thick, tf.where(u >= 1.0 - self.p, thin, images))


# --------------------------------------------------------------------------------------------
# Composition


class Compose(tf.Module):
    """Apply ``ops`` in order; each keeps its own seed and state. Same call contract as the ops."""

    def __init__(self, ops: Sequence, name: Optional[str] = None):
        super().__init__(name=name)
        self.ops: List = list(ops)

    def get_config(self) -> dict:
        return {"ops": [{"class_name": type(op).__name__, "config": op.get_config()} for op in self.ops]}

    @classmethod
    def from_config(cls, config: dict) -> Compose:
        return cls([OPS[item["class_name"]].from_config(item["config"]) for item in config["ops"]])

    def __repr__(self) -> str:
        return f"Compose({list(self.ops)!r})"

    @tf.autograph.experimental.do_not_convert
    def __call__(self, images, training=True) -> tf.Tensor:
        x, single = to_float_images(images)
        for op in self.ops:
            x = op(x, training=training)
        x = tf.clip_by_value(x, 0.0, 1.0)
        return x[0] if single else x


OPS = {cls.__name__: cls for cls in (RandomResizedCrop, RandomFlip, ColorJitter, RandomGrayscale,
                                     GaussianBlur, Solarize, RandomTranslate, RandomStroke, Compose)}
