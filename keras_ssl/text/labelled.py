"""Labelled texts -> a tokenized ``tf.data`` pipeline for :class:`keras_ssl.text.TextClassifier`.

:func:`labelled_text_dataset` checks texts and labels (clear errors for empty or blank texts,
non-integer labels, labels out of range; a warning for classes with no example), tokenizes all
texts once with a Hugging Face fast tokenizer and yields Keras-style ``(features, labels)`` batches.
"""

from __future__ import annotations

import warnings
from typing import Optional, Sequence

import numpy as np

from keras_ssl.backend import tf
from keras_ssl.text.data import _check_tokenizer, _position_limit


def check_texts(texts: Sequence[str], what: str = "texts") -> list:
    """``texts`` as a list of ``str``; raises on a bare string, non-strings, an empty list or blank texts."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"{what} must be a list of strings, got a single string. Fix: wrap it, [text].")
    texts = list(texts)
    if not texts:
        raise ValueError(f"{what} is empty: there is nothing to classify. Pass at least one text.")
    wrong = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if wrong:
        raise TypeError(f"{what} must all be str; items {wrong[:5]} are {type(texts[wrong[0]]).__name__}.")
    blank = [i for i, t in enumerate(texts) if not t.strip()]
    if blank:
        raise ValueError(
            f"{len(blank)} of the {what} are empty or blank (first indices {blank[:5]}): they carry no "
            "evidence for any label. Fix: drop them (and their labels) or give them text."
        )
    return texts


def check_labels(labels, num_labels: Optional[int], count: int) -> np.ndarray:
    """``labels`` as ``int32 [count]`` class ids in ``[0, num_labels)``; raises on anything else.

    Warns when ``num_labels`` is given and some class has no example (training can then only push
    that class's scores down; its F1 stays 0).
    """
    array = np.asarray(labels)
    if array.dtype.kind in "USO":
        raise TypeError(
            f"labels must be integer class ids 0..num_labels-1, got {array.dtype} values such as "
            f"{array.ravel()[:3].tolist()}. Fix: map names to ids, e.g. names = sorted(set(labels)); "
            "ids = [names.index(x) for x in labels], and pass labels=names to TextClassifier."
        )
    if array.dtype.kind == "f":
        raise TypeError(
            f"labels must be integer class ids, got {array.dtype}. Fix: np.asarray(labels).astype(int) "
            "if they are whole numbers; soft or regression targets are not supported."
        )
    if array.dtype.kind not in "iub":
        raise TypeError(f"labels must be integer class ids, got dtype {array.dtype}.")
    if array.ndim != 1 or len(array) != count:
        raise ValueError(f"Expected one label per text ({count}), got labels of shape {array.shape}.")
    array = array.astype(np.int64)
    upper = f"{num_labels - 1}" if num_labels else "num_labels-1"
    bad = np.flatnonzero((array < 0) | ((array >= num_labels) if num_labels else False))
    if len(bad):
        raise ValueError(
            f"Label {int(array[bad[0]])} (index {int(bad[0])}) is outside 0..{upper}. Fix: "
            "renumber the classes from 0, or raise num_labels."
        )
    if num_labels:
        missing = sorted(set(range(num_labels)) - set(array.tolist()))
        if missing:
            warnings.warn(
                f"Classes {missing} of 0..{num_labels - 1} have no example in these labels: the model "
                "cannot learn them and their F1 stays 0. Add examples, or drop the classes and lower "
                "num_labels.",
                UserWarning,
                stacklevel=3,
            )
    return array.astype(np.int32)


def tokenize(tokenizer, texts: Sequence[str], max_length: int, pad_to_longest: bool = True) -> dict:
    """``{"input_ids", "attention_mask"}``: int32 ``[n, length]``, length the longest text (<= max_length)."""
    enc = tokenizer(list(texts), padding=True if pad_to_longest else "max_length", truncation=True,
                    max_length=max_length, return_tensors="np")
    return {"input_ids": enc["input_ids"].astype(np.int32),
            "attention_mask": enc["attention_mask"].astype(np.int32)}


def labelled_text_dataset(
    texts: Sequence[str],
    labels,
    tokenizer,
    max_length: int = 128,
    batch_size: int = 32,
    num_labels: Optional[int] = None,
    shuffle: bool = False,
    seed: Optional[int] = None,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Batches ``({"input_ids", "attention_mask"}: int32 [batch, length], labels: int32 [batch])``.

    ``length`` is the batch's longest tokenized text rounded up to a multiple of 8, at most
    ``max_length`` (longer texts are truncated): batches of short texts carry little padding (review
    snippets of ~27 tokens cut to 64 otherwise run 2x the tokens), and at most ``max_length / 8``
    distinct shapes reach the model (one trace; a few XLA compilations).
    ``labels``: integer class ids, one per text. ``num_labels`` (optional) bounds them and warns about
    classes without examples. ``shuffle``: reshuffle every epoch (use it for training data), with
    ``seed`` for a reproducible order.
    """
    _check_tokenizer(tokenizer)
    texts = check_texts(texts)
    label_ids = check_labels(labels, num_labels, len(texts))
    if batch_size < 1 or max_length < 3:
        raise ValueError(f"Need batch_size >= 1 and max_length >= 3; got {batch_size} and {max_length}.")
    limit = _position_limit(tokenizer, None)
    if limit is not None and max_length > limit:
        raise ValueError(f"max_length={max_length} exceeds the tokenizer's limit of {limit} tokens. "
                         f"Use max_length <= {limit}.")
    features = tokenize(tokenizer, texts, max_length)
    data = tf.data.Dataset.from_tensor_slices((features, label_ids))
    if shuffle:
        data = data.shuffle(len(texts), seed=seed, reshuffle_each_iteration=True)
    data = data.batch(batch_size, drop_remainder=drop_remainder)
    trim = _trim_padding(features["input_ids"].shape[1], getattr(tokenizer, "padding_side", "right"))
    return data.map(trim, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)


def _trim_padding(width: int, side: str, multiple: int = 8):
    """A batch map: cut the padding columns beyond the batch's longest text (rounded up to ``multiple``)."""

    def trim(features, labels):
        longest = tf.reduce_max(tf.reduce_sum(features["attention_mask"], axis=1))
        keep = tf.minimum((longest + multiple - 1) // multiple * multiple, width)
        if side == "left":
            trimmed = {k: v[:, tf.shape(v)[1] - keep:] for k, v in features.items()}
        else:
            trimmed = {k: v[:, :keep] for k, v in features.items()}
        return trimmed, labels

    return trim
