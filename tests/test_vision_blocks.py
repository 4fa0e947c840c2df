"""Vision building blocks: MLP heads, EMA targets, the MoCo queue and the backbones."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from numerics import assert_close_to_scale

from keras_ssl.backend import keras, tf
from keras_ssl.vision.backbones import from_keras_application, resnet18_cifar, small_cnn
from keras_ssl.vision.ema import copy_weights, cosine_momentum, ema_update
from keras_ssl.vision.heads import (
    MLPHead,
    barlow_projection,
    byol_prediction,
    byol_projection,
    moco_projection,
    simclr_projection,
    simsiam_prediction,
    simsiam_projection,
    vicreg_projection,
)
from keras_ssl.vision.queue import MemoryQueue

SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "ema_replicas.py")


def layers_of(head, kind):
    return [module for module in head.submodules if isinstance(module, kind)]


# --- heads -----------------------------------------------------------------------------------------------
def test_mlp_head_matches_numpy_forward():
    keras.utils.set_random_seed(0)
    head = MLPHead((6, 5), 3, last_batchnorm=True, last_bias=False, synchronized_bn=False)
    x = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
    out = head(x, training=True).numpy()

    def batchnorm(h, gamma=1.0, beta=0.0):  # training mode: batch statistics, population variance
        return gamma * (h - h.mean(0)) / np.sqrt(h.var(0) + 1e-5) + beta

    h = x.astype(np.float64)
    for i in range(2):
        kernel = head.hidden_dense[i].kernel.numpy()
        norm = head.hidden_norms[i]
        h = np.maximum(batchnorm(h @ kernel, norm.gamma.numpy(), norm.beta.numpy()), 0.0)
    expected = batchnorm(h @ head.output_layer.kernel.numpy())
    assert_close_to_scale(out, expected, rtol=1e-5)
    # The output BN has no affine parameters: every output dimension is standardised.
    np.testing.assert_allclose(out.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(0), 1.0, atol=1e-3)


def test_mlp_head_structure_and_flags():
    head = MLPHead((8,), 4, synchronized_bn=True)
    head(tf.zeros((2, 3)))
    assert head.hidden_dense[0].bias is None  # BN's beta replaces it
    assert head.output_layer.bias is not None
    assert [bn.synchronized for bn in layers_of(head, keras.layers.BatchNormalization)] == [True]
    plain = MLPHead((8,), 4, batchnorm=False, synchronized_bn=False)
    plain(tf.zeros((2, 3)))
    assert plain.hidden_dense[0].bias is not None and not layers_of(plain, keras.layers.BatchNormalization)
    assert head.compute_output_shape((None, 3)).as_list() == [None, 4]


def test_mlp_head_config_round_trip():
    head = MLPHead((7, 5), 3, last_batchnorm=True, last_bias=False, synchronized_bn=False, name="proj")
    x = tf.random.normal((6, 4), seed=1)
    head(x)
    clone = MLPHead.from_config(head.get_config())
    clone(x)
    clone.set_weights(head.get_weights())
    assert clone.get_config() == head.get_config()
    assert clone.name == "proj" and clone.hidden_dims == (7, 5)
    np.testing.assert_allclose(clone(x, training=True).numpy(), head(x, training=True).numpy(), atol=1e-6)
    np.testing.assert_allclose(clone(x, training=False).numpy(), head(x, training=False).numpy(), atol=1e-6)


def test_mlp_head_in_a_functional_model_trains():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, byol_projection(16, 8, synchronized_bn=False)(inputs))
    x = np.random.default_rng(1).standard_normal((32, 4)).astype(np.float32)
    y = np.random.default_rng(2).standard_normal((32, 8)).astype(np.float32)
    model.compile(keras.optimizers.SGD(0.1), "mse")
    losses = model.fit(x, y, batch_size=32, epochs=5, verbose=0).history["loss"]
    assert losses[-1] < losses[0]


@pytest.mark.parametrize(
    "factory, kwargs, dims, last_bn, last_bias, has_bn",
    [
        (simclr_projection, {"output_dim": 4, "hidden_dim": 16}, (16,), False, True, True),
        (byol_projection, {"hidden_dim": 16, "output_dim": 4}, (16,), False, True, True),
        (byol_prediction, {"hidden_dim": 16, "output_dim": 4}, (16,), False, True, True),
        (simsiam_projection, {"output_dim": 4}, (4, 4), True, False, True),
        (simsiam_prediction, {"hidden_dim": 2, "output_dim": 4}, (2,), False, True, True),
        (barlow_projection, {"dim": 4}, (4, 4), False, False, True),
        (vicreg_projection, {"dim": 4, "num_layers": 2}, (4,), False, False, True),
        (moco_projection, {"hidden_dim": 16, "output_dim": 4}, (16,), False, True, False),
    ],
)
def test_factories(factory, kwargs, dims, last_bn, last_bias, has_bn):
    head = factory(**kwargs, synchronized_bn=False)
    out = head(tf.random.normal((5, 3), seed=2), training=True)
    assert out.shape == (5, 4)
    assert head.hidden_dims == dims
    assert (head.last_batchnorm, head.last_bias, head.batchnorm) == (last_bn, last_bias, has_bn)
    assert head.name == factory.__name__


def test_factory_paper_defaults():
    assert simclr_projection().get_config()["hidden_dims"] == [2048] and simclr_projection().output_dim == 128
    assert (byol_projection().hidden_dims, byol_projection().output_dim) == ((4096,), 256)
    assert (byol_prediction().hidden_dims, byol_prediction().output_dim) == ((4096,), 256)
    assert (simsiam_projection().hidden_dims, simsiam_projection().output_dim) == ((2048, 2048), 2048)
    assert (simsiam_prediction().hidden_dims, simsiam_prediction().output_dim) == ((512,), 2048)
    assert (barlow_projection().hidden_dims, barlow_projection().output_dim) == ((8192, 8192), 8192)
    assert (vicreg_projection().hidden_dims, vicreg_projection().output_dim) == ((8192, 8192), 8192)
    assert (moco_projection().hidden_dims, moco_projection().output_dim) == ((2048,), 128)
    assert simclr_projection().synchronized_bn  # global BN statistics by default


# --- EMA ---------------------------------------------------------------------------------------------------
def test_cosine_momentum_schedule():
    base, total = 0.996, 100
    for step in (0, 1, 25, 50, 99, 100, 150):
        k = min(step, total)
        expected = 1 - (1 - base) * (math.cos(math.pi * k / total) + 1) / 2
        assert float(cosine_momentum(step, total, base)) == pytest.approx(expected, abs=1e-7)
    assert float(cosine_momentum(0, total, base)) == pytest.approx(base)
    assert float(cosine_momentum(total, total, base)) == 1.0
    compiled = tf.function(lambda s: cosine_momentum(s, total, 0.99))
    assert float(compiled(tf.constant(50, tf.int64))) == pytest.approx(0.995, abs=1e-7)


def test_ema_update_and_copy_weights_on_models():
    keras.utils.set_random_seed(0)
    online, target = (
        keras.Sequential([keras.layers.Dense(3), keras.layers.BatchNormalization()]) for _ in "ab"
    )
    for model in (online, target):
        model.build((None, 2))
    target.set_weights([w + 1.0 for w in target.get_weights()])
    t0, o0 = target.get_weights(), online.get_weights()
    ema_update(target, online, 0.9)
    for t, before, o in zip(target.get_weights(), t0, o0):
        np.testing.assert_allclose(t, 0.9 * before + 0.1 * o, rtol=1e-6)
    t1 = target.get_weights()
    momentum = tf.Variable(0.5)
    tf.function(lambda: ema_update(target.weights, online.weights, momentum))()
    for t, before, o in zip(target.get_weights(), t1, o0):
        np.testing.assert_allclose(t, 0.5 * before + 0.5 * o, rtol=1e-6)
    copy_weights(target, online)
    for t, o in zip(target.get_weights(), o0):
        np.testing.assert_array_equal(t, o)
    with pytest.raises(ValueError):
        ema_update(target.weights[:-1], online.weights, 0.9)
    with pytest.raises(ValueError):
        copy_weights(target.weights[::-1], online.weights)


def test_ema_and_queue_on_two_replicas():
    out = subprocess.run([sys.executable, SCRIPT], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2 and result["mirrored"]
    assert result["kinds"] == ["MirroredVariable", "SyncOnReadVariable"]
    assert result["momentum"] == pytest.approx(1 - 0.1 * (math.cos(0.3 * math.pi) + 1) / 2, abs=1e-7)
    for key in (
        "replica_context_error",
        "cross_replica_error",
        "copy_error",
        "fit_ema_error",
        "fit_moving_stats_error",
        "queue_replicas_equal",
        "queue_untouched_rows_error",
        "ring_error",
    ):
        assert result[key] <= 1e-6, key
    assert result["fit_moving_stats_differ"] > 1e-4  # the per-replica check above is not vacuous
    np.testing.assert_allclose(result["queue_row_norms"], 1.0, atol=1e-6)
    assert result["pointers"] == [8, 8] and result["ring_pointers"] == [4, 4]
    assert result["head_sync_True_error"] <= 1e-5  # synchronized BN: global statistics (relative error)
    assert result["head_sync_False_error"] > 0.1


# --- queue -------------------------------------------------------------------------------------------------
def reference_queue(initial, batches):
    buffer, pointer = initial.copy(), 0
    for batch in batches:
        for row in batch:
            buffer[pointer] = row
            pointer = (pointer + 1) % len(buffer)
    return buffer, pointer


def test_queue_initial_state():
    queue = MemoryQueue(12, 5, seed=3)
    values = queue.values().numpy()
    assert values.shape == (12, 5) and values.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(values, axis=1), 1.0, atol=1e-6)
    assert np.abs(values - values[0]).max() > 0.1  # random, not one repeated row
    np.testing.assert_array_equal(MemoryQueue(12, 5, seed=3).values().numpy(), values)
    assert int(queue.pointer.numpy()) == 0
    assert queue.trainable_weights == [] and len(queue.non_trainable_weights) == 2


@pytest.mark.parametrize(
    "size, batch_sizes", [(10, [4, 4, 4, 4]), (8, [3, 5, 2, 7]), (5, [7, 12]), (6, [6, 6])]
)
def test_queue_enqueue_wraps_like_sequential_writes(size, batch_sizes):
    queue = MemoryQueue(size, 3)
    initial = queue.values().numpy()
    rng = np.random.default_rng(size)
    batches = [rng.standard_normal((n, 3)).astype(np.float32) for n in batch_sizes]
    enqueue = tf.function(queue.enqueue, input_signature=[tf.TensorSpec([None, 3], tf.float32)])
    for i, batch in enumerate(batches):
        (enqueue if i % 2 else queue.enqueue)(batch)  # graph and eager
    expected, pointer = reference_queue(initial, batches)
    np.testing.assert_array_equal(queue.values().numpy(), expected)
    assert int(queue.pointer.numpy()) == pointer == sum(batch_sizes) % size


def test_queue_checkpoint_round_trip(tmp_path):
    queue = MemoryQueue(6, 2)
    queue.enqueue(np.ones((4, 2), np.float32))
    saved_values, saved_pointer = queue.values().numpy(), int(queue.pointer.numpy())
    path = tf.train.Checkpoint(queue=queue).save(str(tmp_path / "ckpt"))
    queue.enqueue(np.full((3, 2), 7.0, np.float32))
    assert int(queue.pointer.numpy()) != saved_pointer
    tf.train.Checkpoint(queue=queue).restore(path).assert_consumed()
    np.testing.assert_array_equal(queue.values().numpy(), saved_values)
    assert int(queue.pointer.numpy()) == saved_pointer == 4
    fresh = MemoryQueue(6, 2, seed=9)  # a differently initialised queue restores to the same state
    tf.train.Checkpoint(queue=fresh).restore(path).assert_consumed()
    np.testing.assert_array_equal(fresh.values().numpy(), saved_values)


def test_queue_is_tracked_by_a_model():
    class WithQueue(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)
            self.memory = MemoryQueue(4, 2)

        def call(self, x):
            return self.dense(x)

    model = WithQueue()
    model(tf.zeros((1, 3)))
    assert {id(w) for w in model.memory.weights} <= {id(w) for w in model.non_trainable_weights}
    assert all(id(w) not in {id(v) for v in model.memory.weights} for w in model.trainable_weights)


# --- backbones ---------------------------------------------------------------------------------------------
def test_resnet18_cifar_shapes_and_parameters():
    model = resnet18_cifar()
    assert model.output_shape == (None, 512)
    # torchvision's ResNet-18 without its fc layer, with the CIFAR 3x3 stem: 11,168,832 parameters.
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 11_168_832
    assert model.count_params() == pytest.approx(11.2e6, rel=0.01)
    assert not any(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers)
    stem = model.get_layer("stem_conv")
    assert stem.kernel_size == (3, 3) and stem.strides == (1, 1)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 1 + 16 + 3  # stem, 8 blocks x 2 convs, 3 projection shortcuts


def test_resnet18_cifar_small_width_forward():
    model = resnet18_cifar(input_shape=(16, 16, 3), width=8, sync_batchnorm=True, name="tiny")
    assert model.name == "tiny"
    out = model(np.random.default_rng(0).random((2, 16, 16, 3), np.float32), training=True)
    assert out.shape == (2, 64) and np.all(np.isfinite(out.numpy()))
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(layer.synchronized for layer in norms)


@pytest.mark.parametrize("shape, width", [((8, 8, 1), 32), ((32, 32, 3), 8)])
def test_small_cnn(shape, width):
    model = small_cnn(shape, width=width)
    x = np.random.default_rng(0).random((3, *shape), np.float32)
    out = model(x, training=False).numpy()
    assert out.shape == (3, 4 * width)
    assert np.all(out >= 0)  # GAP of ReLU features
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 3 and not any(layer.synchronized for layer in norms)


def test_from_keras_application():
    model = from_keras_application("mobilenetv2", (32, 32, 3), alpha=0.35)
    assert model.output_shape == (None, 1280)
    assert model.layers[-1].__class__.__name__ == "GlobalAveragePooling2D"
    with pytest.raises(ValueError, match="Unknown keras.applications model"):
        from_keras_application("NoSuchNet", (32, 32, 3))
