"""Images in from arrays, tf.data, folders and tensorflow-datasets (offline via tfds mock data)."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from keras_ssl.backend import tf
from keras_ssl.vision.data import image_dataset

IMAGES = (np.random.default_rng(0).random((10, 8, 8, 3)) * 255).astype(np.uint8)
LABELS = np.arange(10) % 3


def test_arrays_and_datasets_give_image_batches():
    batches = list(image_dataset(IMAGES, batch_size=4, shuffle=False))
    assert [b.shape[0] for b in batches] == [4, 4]  # last partial batch dropped by default
    np.testing.assert_array_equal(np.concatenate([b.numpy() for b in batches]), IMAGES[:8])
    pairs = tf.data.Dataset.from_tensor_slices((IMAGES, LABELS))
    unlabelled = next(iter(image_dataset(pairs, batch_size=10, shuffle=False)))
    np.testing.assert_array_equal(unlabelled.numpy(), IMAGES)
    x, y = next(iter(image_dataset((IMAGES, LABELS), batch_size=10, shuffle=False, labels=True)))
    np.testing.assert_array_equal(y.numpy(), LABELS)
    resized = next(iter(image_dataset(IMAGES, batch_size=2, image_size=(16, 16))))
    assert resized.shape == (2, 16, 16, 3) and resized.dtype == tf.uint8


def test_image_folder(tmp_path):
    from PIL import Image

    for i, image in enumerate(IMAGES):
        folder = tmp_path / f"class{LABELS[i]}"
        folder.mkdir(exist_ok=True)
        Image.fromarray(image).save(folder / f"{i}.png")
    images = list(image_dataset(str(tmp_path), batch_size=5, image_size=(8, 8), shuffle=False))
    assert len(images) == 2 and images[0].shape == (5, 8, 8, 3)
    # Folder images come as uint8 pixels (the vision methods read float images as [0, 1]).
    assert images[0].dtype == tf.uint8
    read = np.concatenate([b.numpy() for b in images])
    assert sorted(int(v) for v in read.reshape(10, -1).sum(1)) == sorted(int(v) for v in
                                                                           IMAGES.reshape(10, -1).sum(1))
    x, y = next(iter(image_dataset(str(tmp_path), batch_size=10, image_size=(8, 8), labels=True)))
    assert x.dtype == tf.uint8
    assert sorted(y.numpy().tolist()) == sorted(LABELS.tolist())
    with pytest.raises(FileNotFoundError, match="No image folder"):
        image_dataset(str(tmp_path / "missing"))


def test_tensorflow_datasets_names_offline_with_mock_data():
    with tfds.testing.mock_data(num_examples=12):
        images = next(iter(image_dataset("tfds:cifar10", batch_size=6)))
        x, y = next(iter(image_dataset("tfds:cifar10", batch_size=6, labels=True)))
    assert images.shape == (6, 32, 32, 3) and images.dtype == tf.uint8
    assert y.shape == (6,)
