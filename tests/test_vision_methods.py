"""Vision methods: the shared step wires losses, stop-gradients, EMA and queues as the papers say."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from numerics import assert_close_to_scale, relative_difference
from tiny_vision import TINY_HEADS

from keras_ssl import losses, vision
from keras_ssl.backend import keras, tf
from keras_ssl.training.base import NonFiniteLossError
from keras_ssl.vision.backbones import small_cnn

IMAGES = np.random.default_rng(0).random((16, 12, 12, 1)).astype(np.float32)


def make(name: str, **overrides):
    keras.utils.set_random_seed(0)
    return getattr(vision, name)(small_cnn((12, 12, 1), width=4), **{**TINY_HEADS[name](), **overrides})


METHODS = ["SimCLR", "MoCo", "BYOL", "SimSiam", "BarlowTwins", "VICReg"]


@pytest.mark.parametrize("name", METHODS)
def test_fit_reports_loss_and_health_and_predict_returns_features(name):
    model = make(name)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    labelled = tf.data.Dataset.from_tensor_slices((IMAGES, np.arange(16))).batch(8)  # labels ignored
    history = model.fit(labelled, epochs=2, verbose=0).history
    assert np.isfinite(history["loss"]).all() and "embedding_std" in history
    assert model.predict(IMAGES, verbose=0).shape == (16, model.feature_dim)
    uint8 = (IMAGES * 255).astype(np.uint8)  # uint8 [0, 255] means the same images
    np.testing.assert_allclose(model(uint8).numpy(), model(IMAGES).numpy(), atol=2e-2)


def test_simclr_loss_is_nt_xent_of_projections():
    model = make("SimCLR", temperature=0.3)
    loss, stats = model.compute_loss_and_stats((IMAGES, IMAGES[::-1]), training=False)
    z1 = model.projection(model.encoder(IMAGES, training=False), training=False)
    z2 = model.projection(model.encoder(IMAGES[::-1], training=False), training=False)
    expected, accuracy = losses.nt_xent(z1, z2, temperature=0.3)
    np.testing.assert_allclose(loss.numpy(), expected.numpy(), rtol=1e-5)
    np.testing.assert_allclose(stats["contrastive_accuracy"][0].numpy(), accuracy.numpy())


def _grads(model, loss_fn):
    with tf.GradientTape() as tape:
        loss = loss_fn()
    return [tf.convert_to_tensor(g).numpy() if g is not None else None
            for g in tape.gradient(loss, model.trainable_variables)]


@pytest.mark.parametrize("stop", [True, False])
def test_simsiam_gradients_match_the_stop_gradient_formula(stop):
    model = make("SimSiam")
    v1, v2 = IMAGES, IMAGES[::-1]

    def reference():
        z1, z2 = model.project(v1, True), model.project(v2, True)
        p1, p2 = model.prediction(z1, training=True), model.prediction(z2, training=True)
        sg = tf.stop_gradient if stop else tf.identity
        return 0.5 * (losses.simsiam_loss(p1, sg(z2)) + losses.simsiam_loss(p2, sg(z1)))

    ours = _grads(model, lambda: model.compute_loss_and_stats((v1, v2), training=True)[0])
    ref = _grads(model, reference)
    pairs = [(a, b) for a, b in zip(ours, ref) if a is not None]
    difference = relative_difference([a for a, _ in pairs], [b for _, b in pairs])
    assert (difference <= 1e-4) == stop, difference  # the stop-gradient formula; different without it


def test_byol_target_gets_no_gradient_and_ema_follows_the_formula():
    model = make("BYOL", momentum=0.9, total_steps=None)
    target_ids = {id(v) for v in model.target_encoder.weights + model.target_projection.weights}
    assert not target_ids & {id(v) for v in model.optimized_variables()}
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    online, target = model.encoder.trainable_weights, model.target_encoder.trainable_weights
    target_before = [w.numpy().copy() for w in target]
    online_before = [w.numpy().copy() for w in online]
    model.fit(tf.data.Dataset.from_tensors(IMAGES), epochs=1, verbose=0)
    assert any(not np.allclose(w.numpy(), b) for w, b in zip(online, online_before))  # online stepped
    for t_before, t_after, o_after in zip(target_before, target, online):
        assert_close_to_scale(t_after.numpy(), 0.9 * t_before + 0.1 * o_after.numpy(), rtol=1e-6)



def test_moco_enqueues_the_keys_of_the_global_batch():
    model = make("MoCo")
    # At the start the key network equals the query network, batch statistics included (a frozen
    # Keras BatchNormalization would switch to its moving statistics and differ).
    assert_close_to_scale(model.target(IMAGES, training=True).numpy(),
                          model.project(IMAGES, training=True).numpy(), rtol=1e-6)
    model.compile(optimizer=keras.optimizers.SGD(0.0))  # no update: keys are reproducible after the step
    model.fit(tf.data.Dataset.from_tensors(IMAGES), epochs=1, verbose=0)
    keys = tf.math.l2_normalize(model.target(IMAGES, training=True), axis=-1).numpy()
    np.testing.assert_allclose(model.queue.values().numpy()[:16], keys, atol=1e-5)
    assert int(model.queue.pointer.numpy()) == 16


def _fit_simclr(images):
    model = make("SimCLR")
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    return model.fit(tf.data.Dataset.from_tensors(images), epochs=1, verbose=0)


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match="at least 2 images"):
        _fit_simclr(IMAGES[:1])
    with pytest.raises(ValueError, match=r"\[batch, height, width, channels\]"):
        _fit_simclr(IMAGES[..., 0])
    with pytest.raises(ValueError, match="channels"):
        _fit_simclr(np.repeat(IMAGES, 3, -1))
    with pytest.raises(ValueError, match="built Keras model"):
        vision.SimCLR(keras.Sequential([keras.layers.Dense(4)]))
    bad = IMAGES.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(NonFiniteLossError, match="learning rate"):
        _fit_simclr(bad)


@tf.custom_gradient
def _nan_gradient(x):
    return tf.identity(x), lambda dy: dy * float("nan")


def test_a_nan_gradient_behind_a_finite_loss_stops_fit_and_never_reaches_the_weights():
    keras.utils.set_random_seed(0)
    inner = small_cnn((12, 12, 1), width=4)
    inputs = keras.Input((12, 12, 1))
    encoder = keras.Model(inputs, keras.layers.Lambda(_nan_gradient)(inner(inputs)))
    model = vision.SimCLR(encoder, **TINY_HEADS["SimCLR"]())
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    loss, _ = model.compute_loss_and_stats((IMAGES, IMAGES[::-1]), training=True)
    assert np.isfinite(loss.numpy())  # the loss alone would not tell
    before = [v.numpy() for v in model.optimized_variables()]
    with pytest.raises(NonFiniteLossError, match="gradients became nan"):
        model.fit(tf.data.Dataset.from_tensors(IMAGES), epochs=1, verbose=0)
    for old, variable in zip(before, model.optimized_variables()):
        np.testing.assert_array_equal(variable.numpy(), old)  # the NaN step was zeroed


def test_a_nan_image_stops_fit_under_onednn_kernels():
    """oneDNN (TensorFlow's default on AVX-512 CPUs) fuses batch-norm + ReLU and maps NaN to 0, so the
    loss stays finite; the gradient check in the shared step still stops ``fit``."""
    script = os.path.join(os.path.dirname(__file__), "scripts", "nan_under_onednn.py")
    proc = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if not result["onednn"]:
        pytest.skip("this TensorFlow build has no oneDNN CPU kernels")
    assert result["raised"].startswith("NonFiniteLossError") and "learning rate" in result["raised"]
    assert result["weights_finite"]


def test_target_network_keeps_synchronised_batch_norm():
    encoder = small_cnn((12, 12, 1), width=4, sync_batchnorm=True)
    target = vision.base.clone_network(encoder, "target")
    bns = [layer for layer in target.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and all(layer.synchronized for layer in bns)
    np.testing.assert_allclose(target(IMAGES, training=True).numpy(), encoder(IMAGES, training=True).numpy())
