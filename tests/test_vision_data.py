"""Images in from arrays, tf.data, folders and tensorflow-datasets (offline via tfds mock data)."""

import os

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


def test_find_unreadable_images_names_the_files_the_pipeline_would_fail_on(tmp_path):
    from PIL import Image

    from keras_ssl.vision import find_unreadable_images

    (tmp_path / "sub").mkdir()
    Image.fromarray(IMAGES[0]).save(tmp_path / "good.png")
    Image.fromarray(IMAGES[1][..., 0]).save(tmp_path / "sub" / "gray.jpg")  # any channels: decoded to 3
    whole = (tmp_path / "good.png").read_bytes()
    (tmp_path / "sub" / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "text.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    (tmp_path / "notes.txt").write_text("not an image, and not read as one")
    bad = find_unreadable_images(str(tmp_path))
    assert [os.path.relpath(path, tmp_path) for path, _ in bad] == [os.path.join("sub", "truncated.png"),
                                                                     "text.jpg"]
    assert all(reason and "{{" not in reason and "[Op:" not in reason for _, reason in bad), bad
    # the same files break the lazy folder pipeline; the readable ones alone do not
    with pytest.raises(tf.errors.InvalidArgumentError):
        list(image_dataset(str(tmp_path), batch_size=1, image_size=(8, 8), shuffle=False))
    for path, _ in bad:
        os.remove(path)
    assert find_unreadable_images(str(tmp_path)) == []
    assert len(list(image_dataset(str(tmp_path), batch_size=1, image_size=(8, 8), shuffle=False))) == 2
    with pytest.raises(FileNotFoundError, match="No image folder"):
        find_unreadable_images(str(tmp_path / "missing"))


def test_tensorflow_datasets_names_offline_with_mock_data():
    with tfds.testing.mock_data(num_examples=12):
        images = next(iter(image_dataset("tfds:cifar10", batch_size=6)))
        x, y = next(iter(image_dataset("tfds:cifar10", batch_size=6, labels=True)))
    assert images.shape == (6, 32, 32, 3) and images.dtype == tf.uint8
    assert y.shape == (6,)
