"""The augmentation recipes of SimCLR, MoCo v2 and BYOL, as :class:`~keras_ssl.augment.ops.Compose`,
and :func:`digits` for small grayscale digits.

Each preset maps ``[batch, H, W, C]`` images (``uint8`` or float ``[0, 1]``) to ``float32 [batch,
image_size, image_size, C]`` in ``[0, 1]``; call it twice on a batch for two views. ``seed`` makes
the whole pipeline reproducible (each op gets its own seed derived from it).
"""

from __future__ import annotations

from typing import Optional, Tuple

from keras_ssl.augment.ops import (
    ColorJitter,
    Compose,
    GaussianBlur,
    RandomFlip,
    RandomGrayscale,
    RandomResizedCrop,
    RandomStroke,
    RandomTranslate,
    Solarize,
)


def _seeds(seed: Optional[int], n: int, offset: int = 0) -> list:
    """``n`` distinct per-op seeds derived from ``seed`` (all ``None`` when ``seed`` is ``None``)."""
    if seed is None:
        return [None] * n
    return [(int(seed) * 1_000_003 + 7_919 * (offset + i + 1)) & 0xFFFFFFFF for i in range(n)]


def simclr(image_size: int, strength: float = 1.0, blur: Optional[bool] = None,
           seed: Optional[int] = None) -> Compose:
    """SimCLR's augmentation (Chen et al. 2020, appendix A).

    Random resized crop (scale 0.08-1, ratio 3/4-4/3) to ``image_size``, horizontal flip (p=0.5),
    colour jitter ``(0.8 s, 0.8 s, 0.8 s, 0.2 s)`` applied with p=0.8 (random order), grayscale
    (p=0.2), and Gaussian blur (p=0.5, sigma 0.1-2.0, kernel 10% of the side). The paper drops the
    blur on CIFAR-10 (32 px); ``blur=None`` blurs when ``image_size >= 64``.
    """
    s = float(strength)
    blur = image_size >= 64 if blur is None else bool(blur)
    seeds = _seeds(seed, 5)
    ops = [
        RandomResizedCrop(image_size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), seed=seeds[0]),
        RandomFlip(horizontal=True, p=0.5, seed=seeds[1]),
        ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s, p=0.8, seed=seeds[2]),
        RandomGrayscale(p=0.2, seed=seeds[3]),
    ]
    if blur:
        ops.append(GaussianBlur(p=0.5, sigma=(0.1, 2.0), seed=seeds[4]))
    return Compose(ops, name="simclr")


def moco_v2(image_size: int, seed: Optional[int] = None) -> Compose:
    """MoCo v2's augmentation (Chen et al. 2020, "Improved baselines", official ``main_moco.py``).

    Random resized crop (scale 0.2-1), colour jitter ``(0.4, 0.4, 0.4, 0.1)`` with p=0.8,
    grayscale (p=0.2), Gaussian blur (p=0.5, sigma 0.1-2.0, kernel 10% of the side) and
    horizontal flip (p=0.5): SimCLR's recipe at strength 0.5 with MoCo's milder crop.
    """
    seeds = _seeds(seed, 5)
    return Compose([
        RandomResizedCrop(image_size, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3), seed=seeds[0]),
        ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8, seed=seeds[1]),
        RandomGrayscale(p=0.2, seed=seeds[2]),
        GaussianBlur(p=0.5, sigma=(0.1, 2.0), seed=seeds[3]),
        RandomFlip(horizontal=True, p=0.5, seed=seeds[4]),
    ], name="moco_v2")


def byol(image_size: int, seed: Optional[int] = None) -> Tuple[Compose, Compose]:
    """BYOL's two asymmetric views (Grill et al. 2020, table 6): ``(view1, view2)``.

    Both: random resized crop (scale 0.08-1, ratio 3/4-4/3), horizontal flip (p=0.5), colour
    jitter (brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1) with p=0.8, grayscale (p=0.2),
    Gaussian blur (sigma 0.1-2.0, kernel 10% of the side) and solarization (threshold 0.5).
    Blur p = 1.0 / 0.1, solarization p = 0.0 / 0.2 for view 1 / view 2.
    """

    def view(blur_p: float, solarize_p: float, offset: int, name: str) -> Compose:
        seeds = _seeds(seed, 6, offset)
        ops = [
            RandomResizedCrop(image_size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), seed=seeds[0]),
            RandomFlip(horizontal=True, p=0.5, seed=seeds[1]),
            ColorJitter(0.4, 0.4, 0.2, 0.1, p=0.8, seed=seeds[2]),
            RandomGrayscale(p=0.2, seed=seeds[3]),
            GaussianBlur(p=blur_p, sigma=(0.1, 2.0), seed=seeds[4]),
        ]
        if solarize_p > 0:
            ops.append(Solarize(p=solarize_p, threshold=0.5, seed=seeds[5]))
        return Compose(ops, name=name)

    return view(1.0, 0.0, 0, "byol_view1"), view(0.1, 0.2, 100, "byol_view2")


def digits(image_size: int = 32, scale: Tuple[float, float] = (0.5, 1.0), max_shift: int = 4,
           stroke_p: float = 0.3, jitter: float = 0.4, blur_p: float = 0.5,
           seed: Optional[int] = None) -> Compose:
    """Views of small grayscale digits (e.g. :func:`keras_ssl.datasets.digits`, 32x32).

    Random resized crop (``scale``, ratio 3/4-4/3) to ``image_size``, stroke thickening/thinning
    (:class:`RandomStroke`, ``stroke_p`` each), a random shift of up to ``max_shift`` pixels with
    zero fill (:class:`RandomTranslate`), brightness and contrast jitter ``jitter`` with p=0.8, and
    Gaussian blur (p=``blur_p``, sigma 0.1-1.5, 5x5 kernel). No flips: a mirrored digit is another
    symbol. The crop and shift teach position and scale invariance; the stroke, intensity and blur
    changes hide the writer's pen, which instance discrimination would otherwise latch onto.
    """
    seeds = _seeds(seed, 5, offset=200)
    ops = [RandomResizedCrop(image_size, scale=scale, ratio=(3 / 4, 4 / 3), seed=seeds[0])]
    if stroke_p:
        ops.append(RandomStroke(stroke_p, seed=seeds[1]))
    if max_shift:
        ops.append(RandomTranslate(max_shift, seed=seeds[2]))
    if jitter:
        ops.append(ColorJitter(jitter, jitter, 0.0, 0.0, p=0.8, seed=seeds[3]))
    if blur_p:
        ops.append(GaussianBlur(p=blur_p, sigma=(0.1, 1.5), kernel_size=5, seed=seeds[4]))
    return Compose(ops, name="digits")
