"""ImageClassifier: linear probe, fine-tune, LP-FT and frozen batch norm on real digits; export; bad input."""

from __future__ import annotations

import numpy as np
import pytest
from numerics import assert_close_to_scale
from test_export import serve

from keras_ssl import datasets, export_saved_model
from keras_ssl.backend import keras, tf
from keras_ssl.vision import ImageClassifier, SimCLR
from keras_ssl.vision.backbones import small_cnn


@pytest.fixture(scope="module")
def digits():
    """scikit-learn digits at 16x16: 1,000 train / 797 test float images in [0, 1]."""
    return datasets.digits(size=16, n_train=1000)


def make_encoder(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return small_cnn((16, 16, 1), width=16, strides=(2, 2, 2))


def encoder_weights(model: keras.Model) -> list:
    return [w.copy() for w in model.get_weights()]


def bitwise_equal(a: list, b: list) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and x.tobytes() == y.tobytes() for x, y in zip(a, b))


def batchnorm_weights(encoder) -> list:
    return [w.numpy().copy() for layer in encoder.submodules
            if isinstance(layer, keras.layers.BatchNormalization) for w in layer.weights]


def accuracy(clf, x, y) -> float:
    return float(np.mean(clf.predict(x, verbose=0).argmax(axis=1) == y))


@pytest.fixture(scope="module")
def fine_tuned(digits):
    """A fully fine-tuned classifier (mlp head, dropout, class names), trained once for several tests."""
    clf = ImageClassifier(make_encoder(), 10, head="mlp", dropout=0.1, hidden_dim=32,
                          class_names=[f"digit {i}" for i in range(10)])
    clf.compile(keras.optimizers.Adam(3e-3))
    clf.fit(digits["train_x"], digits["train_y"], epochs=5, batch_size=64, verbose=0)
    return clf


def test_full_fine_tune_learns_digits_and_predicts_probabilities(fine_tuned, digits):
    acc = accuracy(fine_tuned, digits["test_x"], digits["test_y"])
    assert acc > 0.9, acc  # chance is 0.1
    probs = fine_tuned.predict(digits["test_x"][:50], verbose=0)
    assert probs.shape == (50, 10) and probs.dtype == np.float32 and (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # uint8 [0, 255] images are the same images as float [0, 1]
    as_uint8 = np.rint(digits["test_x"][:50] * 255).astype(np.uint8)
    np.testing.assert_allclose(fine_tuned.predict(as_uint8, verbose=0),
                               fine_tuned.predict(as_uint8.astype(np.float32) / 255, verbose=0), atol=1e-6)
    logs = fine_tuned.evaluate(digits["test_x"], digits["test_y"], verbose=0, return_dict=True)
    assert set(logs) == {"loss", "accuracy"} and abs(logs["accuracy"] - acc) < 1e-6


def test_linear_probe_leaves_the_encoder_bitwise_unchanged(digits):
    encoder = make_encoder()
    before = encoder_weights(encoder)
    clf = ImageClassifier(encoder, 10, freeze_encoder=True)
    head_before = encoder_weights(clf.head)
    clf.compile(keras.optimizers.Adam(1e-2))
    history = clf.fit(digits["train_x"], digits["train_y"], epochs=4, batch_size=64, verbose=0)
    assert bitwise_equal(encoder_weights(encoder), before)  # incl. batch-norm moving statistics
    assert not bitwise_equal(encoder_weights(clf.head), head_before)
    assert history.history["accuracy"][-1] > 0.5
    assert accuracy(clf, digits["test_x"], digits["test_y"]) > 0.5
    assert clf.encoder_frozen and not clf.encoder.trainable_weights


def test_lp_ft_probes_on_a_frozen_encoder_then_fine_tunes(digits):
    encoder = make_encoder(1)
    start = encoder_weights(encoder)
    snapshots = []
    record = keras.callbacks.LambdaCallback(
        on_train_end=lambda logs: snapshots.append(encoder_weights(encoder)))
    clf = ImageClassifier(encoder, 10)
    histories = clf.fit_lp_ft(digits["train_x"], digits["train_y"], probe_epochs=3, finetune_epochs=3,
                              probe_learning_rate=1e-2, finetune_learning_rate=2e-3, batch_size=64,
                              callbacks=[record], verbose=0)
    assert set(histories) == {"probe", "finetune"} and len(histories["finetune"].history["loss"]) == 3
    assert bitwise_equal(snapshots[0], start)  # the probe phase does not touch the encoder
    assert not bitwise_equal(snapshots[1], start)  # fine-tuning does
    assert not clf.encoder_frozen and clf.encoder.trainable_weights
    assert histories["finetune"].history["accuracy"][-1] > histories["probe"].history["accuracy"][-1]
    assert accuracy(clf, digits["test_x"], digits["test_y"]) > 0.9


def test_frozen_batchnorm_stays_frozen_through_fine_tuning_and_lp_ft(digits):
    encoder = make_encoder(2)
    bn_before, all_before = batchnorm_weights(encoder), encoder_weights(encoder)
    clf = ImageClassifier(encoder, 10, freeze_batchnorm=True)
    x, y = digits["train_x"][:256], digits["train_y"][:256]
    clf.fit_lp_ft(x, y, probe_epochs=1, finetune_epochs=2, batch_size=64, verbose=0)
    assert bitwise_equal(batchnorm_weights(encoder), bn_before)  # gamma, beta and moving statistics
    assert not bitwise_equal(encoder_weights(encoder), all_before)  # the convolutions trained
    bns = [layer for layer in encoder.submodules if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and not any(layer.trainable for layer in bns)
    # a frozen Keras BN runs in inference mode: training=True gives the same features
    np.testing.assert_allclose(encoder(x[:8], training=True).numpy(), encoder(x[:8], training=False).numpy(),
                               atol=1e-6)


def test_unfreezing_restores_the_layers_the_user_froze():
    encoder = make_encoder()
    first_conv = next(layer for layer in encoder.layers if isinstance(layer, keras.layers.Conv2D))
    first_conv.trainable = False
    trainable = len(encoder.trainable_weights)
    clf = ImageClassifier(encoder, 10)
    assert len(encoder.trainable_weights) == trainable  # construction keeps the user's choice
    clf.set_encoder_frozen(True)
    assert not encoder.trainable_weights
    clf.set_encoder_frozen(False)
    assert len(encoder.trainable_weights) == trainable and not first_conv.trainable


def test_weights_save_and_reload(fine_tuned, digits, tmp_path):
    path = str(tmp_path / "clf.weights.h5")
    fine_tuned.save_weights(path)
    other = ImageClassifier(make_encoder(5), 10, head="mlp", dropout=0.1, hidden_dim=32)
    assert not np.allclose(other.predict(digits["test_x"][:20], verbose=0),
                           fine_tuned.predict(digits["test_x"][:20], verbose=0))
    other.load_weights(path)
    np.testing.assert_allclose(other.predict(digits["test_x"][:20], verbose=0),
                               fine_tuned.predict(digits["test_x"][:20], verbose=0), atol=1e-6)


def test_export_serves_probabilities_and_labels_with_tensorflow_alone(fine_tuned, digits, tmp_path):
    path = export_saved_model(fine_tuned, str(tmp_path / "clf" / "1"))
    images = np.rint(digits["test_x"][:16] * 255).astype(np.uint8)
    bigger = np.rint(tf.image.resize(digits["test_x"][16:20], (40, 24)).numpy() * 255).astype(np.uint8)
    out = serve(path, [
        {"name": "u8", "signature": "serving_default", "inputs": ["images"]},
        {"name": "f32", "signature": "serve_float", "inputs": ["images"]},
        {"name": "big", "signature": "serving_default", "inputs": ["images"]},
    ], {"u8__images": images, "f32__images": images.astype(np.float32) / 255, "big__images": bigger},
        tmp_path)
    assert sorted(out["__signatures"]) == ["serve_float", "serving_default"]
    expected = fine_tuned.predict(images, verbose=0)
    np.testing.assert_allclose(out["u8__probabilities"], expected, atol=1e-5)
    np.testing.assert_allclose(out["f32__probabilities"], expected, atol=1e-5)
    np.testing.assert_array_equal(out["u8__label"], expected.argmax(axis=1))
    assert out["u8__label"].dtype == np.int64
    assert list(out["u8__class_name"]) == [f"digit {i}" for i in expected.argmax(axis=1)]
    resized = tf.image.resize(bigger.astype(np.float32) / 255, (16, 16)).numpy()
    np.testing.assert_allclose(out["big__probabilities"], fine_tuned.predict(resized, verbose=0), atol=1e-5)
    assert (out["u8__label"] == digits["test_y"][:16]).mean() > 0.8


def test_bad_labels_get_clear_errors(digits):
    clf = ImageClassifier(make_encoder(), 10)
    clf.compile("adam")
    x, y = digits["train_x"][:32], digits["train_y"][:32]
    with pytest.raises(ValueError, match=r"lie in \[0, 9\].*got values from 0 to 10"):
        clf.fit(x, np.where(y == 3, 10, y), verbose=0)
    with pytest.raises(ValueError, match=r"lie in \[0, 9\]"):
        clf.fit(x, y - 1, verbose=0)
    with pytest.raises(ValueError, match=r"got dtype float32.*astype\('int64'\)"):
        clf.fit(x, y.astype(np.float32), verbose=0)
    with pytest.raises(ValueError, match=r"dtype <U.*np\.unique\(y, return_inverse=True\)"):
        clf.fit(x, np.array([str(v) for v in y]), verbose=0)
    with pytest.raises(ValueError, match=r"one-hot.*argmax"):
        clf.fit(x, np.eye(10, dtype=np.int64)[y], verbose=0)
    with pytest.raises(ValueError, match="integer class ids"):  # tf.data labels: checked when traced
        clf.fit(tf.data.Dataset.from_tensor_slices((x, y.astype(np.float32))).batch(8), verbose=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="< num_classes=10"):  # checked in the graph
        clf.fit(tf.data.Dataset.from_tensor_slices((x, y + 5)).batch(8), verbose=0)
    fresh = ImageClassifier(make_encoder(), 10)
    fresh.compile("adam")
    with pytest.raises(ValueError, match="got images without labels"):
        fresh.fit(tf.data.Dataset.from_tensor_slices(x).batch(8), verbose=0)


def test_labels_missing_a_class_warn_but_train(digits):
    clf = ImageClassifier(make_encoder(), 10)
    clf.compile("adam")
    keep = digits["train_y"][:200] != 7
    with pytest.warns(UserWarning, match=r"no example of class\(es\) \[7\] of 10"):
        clf.fit(digits["train_x"][:200][keep], digits["train_y"][:200][keep], epochs=1, verbose=0)


def test_bad_encoders_and_arguments_get_clear_errors():
    inputs = keras.Input((16, 16, 1))
    maps = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))
    with pytest.raises(ValueError, match=r"output features \[batch, dim\].*pooling"):
        ImageClassifier(maps, 10)
    with pytest.raises(ValueError, match="built Keras model"):
        unbuilt = keras.Sequential([keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D()])
        ImageClassifier(unbuilt, 10)
    encoder = make_encoder()
    with pytest.raises(ValueError, match="num_classes must be at least 2"):
        ImageClassifier(encoder, 1)
    with pytest.raises(ValueError, match="head must be"):
        ImageClassifier(encoder, 3, head="transformer")
    with pytest.raises(ValueError, match="class_names has 2 names for 3 classes"):
        ImageClassifier(encoder, 3, class_names=["a", "b"])
    clf = ImageClassifier(encoder, 3)
    with pytest.raises(ValueError, match=r"3 channels but the encoder takes 1"):
        clf.predict(np.zeros((2, 16, 16, 3), np.uint8), verbose=0)
    with pytest.raises(ValueError, match=r"\[batch, height, width, channels\]"):
        clf(np.zeros((16, 16, 1), np.float32))


def test_images_that_cannot_feed_the_encoder_are_named_before_tracing():
    """Arrays and datasets are checked eagerly: one plain ValueError with the fix, not Keras's
    'in user code' trace of the graph."""
    clf = ImageClassifier(make_encoder(), 3)
    clf.compile(keras.optimizers.Adam(1e-3))
    y = np.array([0, 1, 2, 0])
    cases = [
        (np.zeros((4, 20, 20, 1), np.uint8), r"Images are 20x20 but the encoder takes 16x16.*resize"),
        (np.zeros((4, 16, 16, 3), np.uint8), r"3 channels but the encoder takes 1.*rgb_to_grayscale"),
        (np.zeros((4, 16, 16), np.uint8), r"\[batch, height.*shape \(4, 16, 16\).*x\[\.\.\., None\]"),
        (tf.data.Dataset.from_tensor_slices((np.zeros((4, 16, 16, 1), np.uint8), y)), r"dataset.batch\(32\)"),
        (tf.data.Dataset.from_tensor_slices((np.zeros((4, 20, 20, 1), np.uint8), y)).batch(2),
         "Images are 20x20"),
    ]
    for images, match in cases:
        labels = y if not isinstance(images, tf.data.Dataset) else None
        for method, arguments in (("fit", (images, labels)), ("predict", (images,)),
                                  ("evaluate", (images, labels))):
            with pytest.raises(ValueError, match=match) as caught:
                getattr(clf, method)(*arguments, verbose=0)
            assert "in user code" not in str(caught.value)
    rgb = ImageClassifier(small_cnn((16, 16, 3), width=4), 3)
    with pytest.raises(ValueError, match=r"np.repeat\(x, 3, axis=-1\)"):
        rgb.predict(np.zeros((2, 16, 16, 1), np.uint8), verbose=0)


def test_float_images_in_0_255_warn():
    clf = ImageClassifier(make_encoder(), 3)
    clf.compile(keras.optimizers.Adam(1e-3))
    pixels = np.full((4, 16, 16, 1), 200.0, np.float32)
    with pytest.warns(UserWarning, match=r"Float images reach 200.*uint8"):
        clf.fit(pixels, np.array([0, 1, 2, 0]), verbose=0)
    simclr = SimCLR(make_encoder(), augment=None)
    simclr.compile(keras.optimizers.SGD(0.01))
    with pytest.warns(UserWarning, match="Float images reach 200"):
        simclr.fit(pixels, batch_size=4, verbose=0)


def test_a_vision_ssl_method_is_accepted_and_its_encoder_shared():
    encoder = make_encoder()
    simclr = SimCLR(encoder)
    clf = ImageClassifier(simclr, 4, freeze_encoder=True)
    assert clf.encoder is encoder
    images = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 1)).astype(np.uint8)
    assert_close_to_scale(clf.features(images).numpy(), simclr.predict(images, verbose=0), what="features")


@pytest.mark.parametrize("kind", ["vit", "cnn"])
def test_layerwise_lr_decay_gives_each_encoder_variable_its_own_learning_rate(kind, tmp_path):
    """One SGD step: every encoder variable moves by lr * decay ** k * gradient, the head by lr * gradient."""
    from tiny_vision import tiny_mae

    if kind == "vit":  # the MAE encoder: 2 transformer blocks
        keras.utils.set_random_seed(0)
        encoder = tiny_mae(8).encoder
    else:
        encoder = small_cnn((8, 8, 1), width=4, strides=(2, 2))
    images = np.random.default_rng(0).random((8, 8, 8, 1)).astype(np.float32)
    labels = np.arange(8) % 2
    clf = ImageClassifier(encoder, 2, layerwise_lr_decay=0.5)
    multipliers = {v.ref(): m for v, m in clf.layerwise_multipliers(0.5)}
    names = {v.name: m for v, m in clf.layerwise_multipliers(0.5)}
    if kind == "vit":
        assert all(m == 0.5 ** 3 for n, m in names.items() if "embeddings" in n)  # below block 0
        assert all(m == 0.5 ** 2 for n, m in names.items() if "layer_._0/" in n)
        assert all(m == 0.5 for n, m in names.items() if "layer_._1/" in n)
        assert all(m == 1.0 for n, m in names.items() if "vit/layernorm" in n)  # after the blocks
    else:
        assert sorted(set(names.values())) == [0.5 ** k for k in (3, 2, 1, 0)]  # conv, bn, conv, bn
    variables = clf.trainable_variables
    with tf.GradientTape() as tape:
        logits = clf(images, training=True)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
    gradients = dict(zip([v.ref() for v in variables], tape.gradient(loss, variables)))
    before = {v.ref(): v.numpy().copy() for v in variables}
    clf.compile(keras.optimizers.SGD(0.1))
    clf.train_on_batch(images, labels)
    checked = 0
    for v in clf.trainable_variables:
        g = tf.convert_to_tensor(gradients[v.ref()]).numpy()
        if np.abs(g).max() < 1e-6:
            continue
        step = before[v.ref()] - v.numpy()
        expected = 0.1 * multipliers.get(v.ref(), 1.0) * g
        # float32 rounding of before - after scales with the weights themselves (gamma ~ 1)
        tolerance = 1e-3 * np.abs(expected).max() + 4e-7 * np.abs(before[v.ref()]).max()
        np.testing.assert_allclose(step, expected, atol=tolerance, err_msg=v.name)
        checked += 1
    assert checked > 6
    if kind == "vit":  # the fine-tuned MAE encoder exports like any classifier
        path = export_saved_model(clf, str(tmp_path / "vit" / "1"))
        served = tf.saved_model.load(path).signatures["serve_float"](images=tf.constant(images))
        np.testing.assert_allclose(served["probabilities"].numpy(), clf.predict(images, verbose=0), atol=1e-5)
    with pytest.raises(ValueError, match=r"layerwise_lr_decay must be in \(0, 1\]"):
        ImageClassifier(encoder, 2, layerwise_lr_decay=1.5)
