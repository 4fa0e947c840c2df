"""In-graph, batched image augmentations for vision SSL (SimCLR, MoCo v2, BYOL presets; digits),
multi-crop views (SwAV, DINO: :mod:`keras_ssl.augment.multi_crop`) and
the corruptions of denoising pretext tasks (:mod:`keras_ssl.augment.corruption`).

Every op and preset is ``f(images, training=True) -> float32 images in [0, 1]`` with per-sample
randomness that works eagerly, in ``tf.function``, in ``tf.data`` and under ``jit_compile``; see
:mod:`keras_ssl.augment.ops` for the contract and the randomness design.
"""

from keras_ssl.augment.corruption import (
    CORRUPTIONS,
    GaussianNoise,
    PatchMasking,
    RandomErasing,
    SaltAndPepper,
    corruption,
)
from keras_ssl.augment.grid import image_grid, render_views
from keras_ssl.augment.multi_crop import MultiCrop, multi_crop
from keras_ssl.augment.ops import (
    Augmentation,
    ColorJitter,
    Compose,
    GaussianBlur,
    RandomFlip,
    RandomGrayscale,
    RandomResizedCrop,
    RandomStroke,
    RandomTranslate,
    Solarize,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    crop_and_resize,
    gaussian_blur,
    grayscale,
    to_float_images,
)
from keras_ssl.augment.presets import byol, digits, moco_v2, simclr

__all__ = [
    "Augmentation",
    "CORRUPTIONS",
    "ColorJitter",
    "Compose",
    "GaussianNoise",
    "MultiCrop",
    "PatchMasking",
    "RandomErasing",
    "GaussianBlur",
    "RandomFlip",
    "RandomGrayscale",
    "RandomResizedCrop",
    "RandomStroke",
    "RandomTranslate",
    "SaltAndPepper",
    "Solarize",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "byol",
    "corruption",
    "crop_and_resize",
    "digits",
    "gaussian_blur",
    "grayscale",
    "image_grid",
    "moco_v2",
    "multi_crop",
    "render_views",
    "simclr",
    "to_float_images",
]
