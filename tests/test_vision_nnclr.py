"""NNCLR: nearest-neighbour lookup and loss against NumPy, the support set's contents and fill, one vs
two replicas (support set included), bitwise resume, bad input. Mixed precision and jit: test_precision.py."""

import json
import subprocess
import sys

import numpy as np
import pytest
from numerics import RESUME_RTOL, STEP_RTOL, assert_close_to_scale, close, state_difference
from tiny_vision import TINY_HEADS

from keras_ssl import losses
from keras_ssl.backend import keras, tf
from keras_ssl.vision import NNCLR
from keras_ssl.vision import heads as H
from keras_ssl.vision.backbones import small_cnn
from keras_ssl.vision.queue import SupportSet

BATCH, SIZE = 8, 8


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _images(seed=0, n=BATCH):
    return np.random.default_rng(seed).random((n, SIZE, SIZE, 1)).astype("float32")


def _model(seed=0, **overrides):
    keras.utils.set_random_seed(seed)
    return NNCLR(small_cnn((SIZE, SIZE, 1), width=4), augment=None, **{**TINY_HEADS["NNCLR"](), **overrides})


def _numpy_info_nce(nn, p, t):
    logits = _unit(nn) @ _unit(p).T / t
    logits -= logits.max(axis=1, keepdims=True)
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -np.mean(np.diag(log_softmax))


def test_nearest_neighbours_match_numpy_and_skip_invalid_rows():
    rng = np.random.default_rng(1)
    queries, support = rng.normal(size=(6, 5)), rng.normal(size=(10, 5)) * rng.uniform(0.5, 3, (10, 1))
    valid = np.arange(10) < 7
    similarity = _unit(queries) @ _unit(support).T
    expected_all = similarity.argmax(axis=1)
    expected_valid = np.where(valid, similarity, -np.inf).argmax(axis=1)
    assert not np.array_equal(expected_all, expected_valid)  # the mask matters for this draw
    for mask, expected in ((None, expected_all), (tf.constant(valid), expected_valid)):
        rows, indices = losses.nearest_neighbours(queries.astype("float32"), support.astype("float32"), mask)
        np.testing.assert_array_equal(indices.numpy(), expected)
        assert_close_to_scale(rows.numpy(), _unit(support)[expected], what="neighbour rows")


def test_support_set_searches_only_filled_slots_and_counts_them():
    support = SupportSet(size=6, dim=3, seed=1)
    queries = tf.constant(np.random.default_rng(2).normal(size=(4, 3)), tf.float32)
    # Nothing filled: a query is its own neighbour (never a random initial row).
    assert_close_to_scale(support.nearest_neighbours(queries).numpy(), _unit(queries.numpy()))
    keys = _unit(np.random.default_rng(3).normal(size=(4, 3))).astype("float32")
    support.enqueue(keys)
    assert int(support.filled.numpy()) == 4 and close(float(support.fill_fraction()), 4 / 6, 1e-6)
    expected = keys[(_unit(queries.numpy()) @ keys.T).argmax(axis=1)]  # only the 4 written rows
    assert_close_to_scale(support.nearest_neighbours(queries).numpy(), expected)
    support.enqueue(keys)  # wraps: 8 written, 6 slots
    assert int(support.filled.numpy()) == 6 and int(support.pointer.numpy()) == 2


def test_nnclr_loss_matches_numpy():
    rng = np.random.default_rng(4)
    nn, p = rng.normal(size=(6, 5)).astype("float32"), rng.normal(size=(6, 5)).astype("float32")
    loss, accuracy = losses.nnclr_loss(nn, p, temperature=0.2)
    assert close(float(loss), _numpy_info_nce(nn, p, 0.2), 1e-5)
    logits = _unit(nn) @ _unit(p).T
    assert close(float(accuracy), np.mean(logits.argmax(axis=1) == np.arange(6)), 1e-6)


def test_two_steps_fill_the_support_set_with_projections_and_the_loss_matches_numpy():
    model = _model()
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    batches = [_images(0), _images(1)]
    stored, fill = [], []
    for step, images in enumerate(batches):
        z = model.projection(model.encoder(images, training=True), training=True)
        p = model.prediction(z, training=True).numpy()
        z = z.numpy()
        if step == 1:  # the neighbours come from the first step's projections, found before enqueueing
            support = stored[0]
            nn = support[(_unit(z) @ support.T).argmax(axis=1)]
            expected = 0.5 * (_numpy_info_nce(nn, p, 0.5) + _numpy_info_nce(nn, p, 0.5))
            loss, _ = model.compute_loss_and_stats((images, images), training=True)
            assert close(float(loss), expected, 1e-4), (float(loss), expected)
        logs = model.train_on_batch(images, return_dict=True)
        fill.append(logs["support_fill"])
        stored.append(_unit(z))
        queue = model.support_set.values().numpy()
        assert_close_to_scale(queue[: BATCH * (step + 1)], np.concatenate(stored), rtol=1e-4)
    assert int(model.support_set.filled.numpy()) == 2 * BATCH
    assert np.allclose(fill, [0.0, BATCH / 40])  # the fill seen by each step's lookup


REPLICAS = r"""
import json, sys
import numpy as np
from keras_ssl.backend import keras, tf
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
sys.path.insert(0, "tests")
from numerics import relative_step_difference
from tiny_vision import TINY_HEADS
from keras_ssl.vision.backbones import small_cnn
from keras_ssl.vision.methods.contrastive import NNCLR

images = np.random.default_rng(0).random((48, 12, 12, 1)).astype("float32")

def run(strategy, start=None):
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = NNCLR(small_cnn((12, 12, 1), width=4, sync_batchnorm=True), **TINY_HEADS["NNCLR"]())
        if start is not None:
            model.set_weights(start)
        model.compile(optimizer=keras.optimizers.SGD(0.5))
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(tf.data.Dataset.from_tensor_slices(images).batch(16), epochs=1, verbose=0).history
    return before, model, history

start, one, h1 = run(tf.distribute.get_strategy())
_, two, h2 = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), start)
print(json.dumps({"loss": [h1["loss"][0], h2["loss"][0]],
    "relative_step_diff": relative_step_difference(start, one.get_weights(), two.get_weights()),
    "queue": [one.support_set.values().numpy().tolist(), two.support_set.values().numpy().tolist()],
    "filled": [int(one.support_set.filled.numpy()), int(two.support_set.filled.numpy())],
    "pointer": [int(one.support_set.pointer.numpy()), int(two.support_set.pointer.numpy())]}))
"""


def test_two_replicas_match_one_support_set_included():
    out = subprocess.run([sys.executable, "-c", REPLICAS], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print({k: v for k, v in r.items() if k != "queue"})
    assert close(*r["loss"], 1e-4), r["loss"]
    assert r["relative_step_diff"] <= STEP_RTOL, r["relative_step_diff"]
    # Three steps of 16 (8 per replica): every replica enqueued the global batch, the set wrapped.
    assert r["filled"] == [40, 40] and r["pointer"] == [48 % 40] * 2
    one, two = np.asarray(r["queue"][0]), np.asarray(r["queue"][1])
    assert_close_to_scale(two, one, rtol=1e-3, what="support set")


def _fit(model, seeds):
    data = tf.data.Dataset.from_tensor_slices(np.concatenate([_images(s) for s in seeds])).batch(BATCH)
    model.fit(data, verbose=0)


def test_resume_from_a_checkpoint_is_bitwise(tmp_path):
    straight = _model()
    straight.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    _fit(straight, [0, 1, 2])
    path = tf.train.Checkpoint(model=straight, optimizer=straight.optimizer).write(str(tmp_path / "ckpt"))
    _fit(straight, [3, 4, 5])  # the uninterrupted run goes on

    resumed = _model(seed=7)  # other initial weights: everything must come from the checkpoint
    resumed.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    resumed._build_optimizer()
    tf.train.Checkpoint(model=resumed, optimizer=resumed.optimizer).read(path).assert_consumed()
    assert int(resumed.support_set.filled.numpy()) == 3 * BATCH
    _fit(resumed, [3, 4, 5])
    assert len(straight.weights) > 10
    # metric state and step counters included; measured: bit for bit
    assert state_difference(straight.get_weights(), resumed.get_weights()) <= RESUME_RTOL
    assert int(resumed.support_set.pointer.numpy()) == (6 * BATCH) % 40


def test_bad_input_names_the_problem():
    model = _model(queue_size=4)
    with pytest.raises(ValueError, match=r"queue_size \(4\).*global batch \(8\)"):
        model.compute_loss_and_stats((_images(), _images()), training=True)
    with pytest.raises(ValueError, match="queue_size must be a positive int"):
        _model(queue_size=0)
    with pytest.raises(ValueError, match="temperature must be positive"):
        _model(temperature=0.0)
    with pytest.raises(ValueError, match=r"prediction head outputs 4-d .* projection 8-d.*output_dim=8"):
        _model(prediction=H.nnclr_prediction(16, 4))


def test_health_monitor_catches_a_collapsed_projection_and_stops():
    """A projection head frozen to one output (every image's embedding the same: the collapse NNCLR's
    InfoNCE is meant to prevent) is caught by the monitor for NNCLR (embedding_std < 0.1 / sqrt(D)).
    Identical *images* are not enough here: in training mode batch norm turns them into rounding
    noise, and normalised noise looks spread (embedding_std 0.27 measured, 0.35 on varied images)."""
    from keras_ssl.evaluation import CollapseWarning, HealthMonitor

    collapsed = keras.Sequential([keras.layers.Dense(8, kernel_initializer="zeros", bias_initializer="ones",
                                                     trainable=False)])
    model = _model(projection=collapsed)
    model.compile(optimizer=keras.optimizers.SGD(0.05))
    monitor = HealthMonitor.for_model(model, patience=2, stop=True, per="batch")
    assert monitor.metric == "embedding_std"
    with pytest.warns(CollapseWarning, match=r"NNCLR: embedding_std = \S+ has stayed below"):
        history = model.fit(_images(n=80), batch_size=BATCH, epochs=1, verbose=0, callbacks=[monitor]).history
    assert len(monitor.collapsed_at) == 1 and history["embedding_std"][0] < monitor.threshold
    assert model.optimizer.iterations.numpy() < 10  # stopped before the end of the epoch
    healthy = _model()  # the same monitor leaves the tiny default heads alone
    healthy.compile(optimizer=keras.optimizers.SGD(0.05))
    quiet = HealthMonitor.for_model(healthy, patience=2, stop=True, per="batch")
    healthy.fit(_images(n=80), batch_size=BATCH, epochs=1, verbose=0, callbacks=[quiet])
    assert quiet.collapsed_at == [] and healthy.optimizer.iterations.numpy() == 10
