"""Unlabelled (and labelled) image datasets from arrays, ``tf.data``, folders or tensorflow-datasets."""

from __future__ import annotations

import os
import re
from typing import List, Optional, Tuple, Union

import numpy as np

from keras_ssl.backend import keras, tf

Source = Union[np.ndarray, tf.data.Dataset, str]
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")  # what image_dataset_from_directory reads


def _drop_labels(*element):
    element = element[0] if len(element) == 1 else element
    if isinstance(element, dict):
        if "image" not in element:
            raise ValueError(f"Dataset elements are dicts without an 'image' key: {sorted(element)}.")
        return element["image"]
    if isinstance(element, (tuple, list)):
        return element[0]
    return element


def _to_uint8(image: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def image_dataset(
    source: Source,
    batch_size: int = 256,
    image_size: Optional[Tuple[int, int]] = None,
    split: str = "train",
    shuffle: bool = True,
    seed: int = 0,
    drop_remainder: bool = True,
    labels: bool = False,
) -> tf.data.Dataset:
    """Batches of images (``labels=False``) or ``(images, labels)`` for pretraining and evaluation.

    ``source``: a NumPy array ``[n, H, W, C]`` (or a tuple ``(x, y)``), a ``tf.data.Dataset`` of
    images, ``(image, label)`` pairs or tfds-style dicts, a directory of images (read with
    ``keras.utils.image_dataset_from_directory``; subfolders are classes when ``labels=True``), or
    ``"tfds:NAME"`` (e.g. ``"tfds:cifar10"``, ``"tfds:stl10"`` with ``split="unlabelled"``; needs the
    data downloaded by tensorflow-datasets). Images keep their dtype (uint8 or float, both accepted
    by the vision methods; images read from a folder are uint8) and are resized to ``image_size``
    when given. ``drop_remainder`` defaults
    to True because a last batch of one image breaks contrastive losses.
    """
    if isinstance(source, tuple) and len(source) == 2:
        x, y = source
        ds = tf.data.Dataset.from_tensor_slices((x, y) if labels else x)
    elif isinstance(source, np.ndarray):
        if labels:
            raise ValueError("labels=True needs (images, labels); got images only.")
        ds = tf.data.Dataset.from_tensor_slices(source)
    elif isinstance(source, tf.data.Dataset):
        ds = source if labels else source.map(_drop_labels)
        if labels:
            ds = ds.map(lambda e: (e["image"], e["label"]) if isinstance(e, dict) else e)
    elif isinstance(source, str) and source.startswith("tfds:"):
        import tensorflow_datasets as tfds

        ds = tfds.load(source[len("tfds:"):], split=split, shuffle_files=shuffle)
        ds = ds.map(lambda e: (e["image"], e["label"])) if labels else ds.map(_drop_labels)
    elif isinstance(source, str):
        if not os.path.isdir(source):
            raise FileNotFoundError(
                f"No image folder at {source!r}. Pass a directory of images, a NumPy array, a "
                "tf.data.Dataset or 'tfds:NAME'."
            )
        ds = keras.utils.image_dataset_from_directory(
            source, labels="inferred" if labels else None, batch_size=None,
            image_size=image_size or (256, 256), shuffle=False,
        )
        # Keras decodes and resizes to float32 in [0, 255]; the vision methods read float images as
        # [0, 1], so hand them the uint8 pixels instead.
        ds = ds.map((lambda x, y: (_to_uint8(x), y)) if labels else _to_uint8)
        image_size = None  # already resized
    else:
        raise TypeError(f"Unsupported image source of type {type(source).__name__}.")
    if image_size is not None:
        def resize(image):
            return tf.cast(tf.image.resize(image, image_size), image.dtype)

        ds = ds.map((lambda x, y: (resize(x), y)) if labels else resize)
    if shuffle:
        ds = ds.shuffle(10_000, seed=seed)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def find_unreadable_images(folder: str) -> List[Tuple[str, str]]:
    """``(path, reason)`` for each image file under ``folder`` that TensorFlow cannot decode, sorted.

    :func:`image_dataset` reads a folder lazily, so a corrupt or truncated file (common in scraped
    data) fails only when its batch is drawn, deep inside ``fit``. This decodes every file with the
    same op the pipeline uses (``tf.io.decode_image``, 3 channels), so it names exactly those files;
    it costs one pass of decoding. Files without an image extension are not read by either.
    """
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"No image folder at {folder!r}.")
    bad = []
    for root, _, names in os.walk(folder, followlinks=True):
        for name in names:
            if not name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            path = os.path.join(root, name)
            try:
                tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
            except tf.errors.OpError as error:
                bad.append((path, _op_error_reason(error)))
    return sorted(bad)


def _op_error_reason(error: tf.errors.OpError) -> str:
    """TensorFlow's message without its op/device decorations: 'jpeg::Uncompress failed. ...'."""
    text = (error.message or type(error).__name__).splitlines()[0]
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", text)
    return re.sub(r"\s*\[Op:[^\]]*\].*$", "", text).strip() or type(error).__name__
