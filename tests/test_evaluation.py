"""keras_ssl.evaluation: k-NN vs brute-force references, linear probes, collapse statistics, callbacks."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.neighbors import KNeighborsClassifier

from keras_ssl.backend import keras, tf
from keras_ssl.evaluation import (
    CollapseMonitor,
    CollapseWarning,
    KNNMonitor,
    effective_rank,
    embedding_std,
    encode,
    extract_features,
    knn_accuracy,
    knn_accuracy_from_features,
    knn_predict,
    linear_probe,
)


def flatten_encoder() -> keras.Model:
    """Identity "encoder": images ``[b, H, W, C]`` -> raw pixels ``[b, H*W*C]``."""
    return keras.Sequential([keras.layers.Lambda(lambda x: tf.reshape(tf.cast(x, tf.float32),
                                                                      [tf.shape(x)[0], -1]))])


def clusters(n: int, num_classes: int, dim: int, spread: float, seed: int, centers=None):
    rng = np.random.default_rng(seed)
    if centers is None:
        centers = rng.normal(size=(num_classes, dim)) * spread
    y = rng.integers(0, num_classes, n)
    return (centers[y] + rng.normal(size=(n, dim))).astype(np.float32), y, centers


@pytest.fixture(scope="module")
def digits():
    """sklearn digits as ``[n, 8, 8, 1]`` images, shuffled (seed 0): 1,000 train / 797 test."""
    data = load_digits()
    perm = np.random.RandomState(0).permutation(len(data.target))
    x, y = data.images[perm, ..., None].astype(np.float32), data.target[perm]
    return (x[:1000], y[:1000]), (x[1000:], y[1000:])


# --- k-NN ------------------------------------------------------------------------------------------
def reference_knn(train_f, train_y, test_f, k, temperature, weighted):
    """Brute force: full cosine-similarity matrix, sort, weighted/majority vote (ties -> smallest label)."""
    normalise = lambda f: f / np.linalg.norm(f, axis=1, keepdims=True)  # noqa: E731
    sims = normalise(test_f.astype(np.float64)) @ normalise(train_f.astype(np.float64)).T
    classes = np.unique(train_y)
    predictions = []
    for row in sims:
        top = np.argsort(-row)[:k]
        votes = np.zeros(len(classes))
        for j in top:
            votes[np.searchsorted(classes, train_y[j])] += np.exp(row[j] / temperature) if weighted else 1.0
        predictions.append(classes[np.argmax(votes)])
    return np.array(predictions)


@pytest.mark.parametrize("k, temperature, weighted", [(20, 0.07, True), (7, 0.5, True), (5, 0.07, False)])
def test_knn_matches_bruteforce_reference(k, temperature, weighted):
    train_f, train_y, centers = clusters(300, 6, 16, spread=0.6, seed=1)
    test_f, test_y, _ = clusters(200, 6, 16, spread=0.6, seed=2, centers=centers)
    train_y, test_y = train_y * 3 + 10, test_y * 3 + 10  # arbitrary (non 0..C-1) label values
    expected = reference_knn(train_f, train_y, test_f, k, temperature, weighted)
    predicted = knn_predict(train_f, train_y, test_f, k, temperature, weighted, batch_size=37)
    np.testing.assert_array_equal(predicted, expected)
    accuracy = knn_accuracy_from_features(train_f, train_y, test_f, test_y, k, temperature, weighted,
                                          batch_size=37)
    assert accuracy == pytest.approx(np.mean(expected == test_y), abs=1e-12)
    assert 0.3 < accuracy < 1.0  # a non-trivial problem


def test_knn_k1_is_cosine_nearest_neighbour():
    train_f, train_y, centers = clusters(400, 5, 12, spread=0.5, seed=3)
    test_f, test_y, _ = clusters(300, 5, 12, spread=0.5, seed=4, centers=centers)
    sklearn_nn = KNeighborsClassifier(n_neighbors=1, metric="cosine", algorithm="brute").fit(train_f, train_y)
    expected = sklearn_nn.score(test_f, test_y)
    for weighted in (True, False):
        assert knn_accuracy_from_features(train_f, train_y, test_f, test_y, k=1, weighted=weighted) == \
            pytest.approx(expected, abs=1e-12)


def test_knn_tiny_temperature_does_not_underflow():
    train_f, train_y, centers = clusters(200, 4, 8, spread=1.0, seed=5)
    test_f, test_y, _ = clusters(100, 4, 8, spread=1.0, seed=6, centers=centers)
    # exp(s / 0.001) overflows float32 without the per-query shift; the limit T -> 0 is 1-NN.
    assert knn_accuracy_from_features(train_f, train_y, test_f, test_y, k=20, temperature=1e-3) == \
        knn_accuracy_from_features(train_f, train_y, test_f, test_y, k=1)


# --- feature extraction: NumPy and tf.data --------------------------------------------------------
def test_numpy_and_tf_data_inputs_agree(digits):
    train, test = digits
    encoder = flatten_encoder()
    features, labels = extract_features(encoder, train, batch_size=300)
    assert features.dtype == np.float32 and features.shape == (1000, 64)
    assert labels.dtype == np.int64 and labels.shape == (1000,)
    np.testing.assert_array_equal(features, train[0].reshape(1000, 64))
    np.testing.assert_array_equal(labels, train[1])

    batched = tf.data.Dataset.from_tensor_slices(train).batch(128)
    unbatched = tf.data.Dataset.from_tensor_slices(train)  # scalar labels: batched by extract_features
    one_hot = tf.data.Dataset.from_tensor_slices((train[0], np.eye(10)[train[1]])).batch(100)
    for dataset in (batched, unbatched, one_hot):
        ds_features, ds_labels = extract_features(encoder, dataset)
        np.testing.assert_array_equal(ds_features, features)
        np.testing.assert_array_equal(ds_labels, labels)
    np.testing.assert_array_equal(encode(encoder, tf.data.Dataset.from_tensor_slices(train[0]).batch(64)),
                                  features)

    test_ds = tf.data.Dataset.from_tensor_slices(test).batch(64)
    expected = knn_accuracy(encoder, train, test, k=20)
    assert knn_accuracy(encoder, batched, test_ds, k=20) == expected
    assert knn_accuracy(None, (features, labels), extract_features(encoder, test)) == expected
    assert expected > 0.9  # raw-pixel k-NN on digits is ~97 %


# --- linear probe ----------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["logistic", "keras"])
def test_linear_probe_separable_and_random_labels(method):
    train_f, train_y, centers = clusters(400, 5, 32, spread=3.0, seed=7)
    test_f, test_y, _ = clusters(400, 5, 32, spread=3.0, seed=8, centers=centers)
    separable = linear_probe(None, (train_f, train_y), (test_f, test_y), method=method, epochs=30)
    assert separable["accuracy"] >= 0.99 and separable["train_accuracy"] >= 0.99

    rng = np.random.default_rng(9)
    noise_train, noise_test = rng.normal(size=(500, 32)), rng.normal(size=(2000, 32))
    noise_train_y, noise_test_y = rng.integers(0, 10, 500), rng.integers(0, 10, 2000)
    chance = linear_probe(None, (noise_train, noise_train_y), (noise_test, noise_test_y), method=method,
                          epochs=30)
    assert abs(chance["accuracy"] - 0.1) < 0.035  # 5 binomial std of 2,000 draws at p = 0.1
    assert chance["train_accuracy"] > 0.25  # it fits (memorises) the random training labels


def test_linear_probe_methods_agree_on_digits(digits):
    train, test = digits
    encoder = flatten_encoder()
    logistic = linear_probe(encoder, train, test, method="logistic")
    keras_probe = linear_probe(encoder, tf.data.Dataset.from_tensor_slices(train).batch(100),
                               tf.data.Dataset.from_tensor_slices(test).batch(100), method="keras")
    assert logistic["accuracy"] == pytest.approx(0.96, abs=0.02)
    assert keras_probe["accuracy"] == pytest.approx(logistic["accuracy"], abs=0.015)
    assert keras_probe["train_accuracy"] == pytest.approx(logistic["train_accuracy"], abs=0.01)
    # Seeded: the Keras probe is reproducible.
    assert linear_probe(encoder, train, test, method="keras", epochs=20) == \
        linear_probe(encoder, train, test, method="keras", epochs=20)


# --- collapse statistics ---------------------------------------------------------------------------
def test_embedding_std_closed_form():
    dim, reps = 8, 25
    one_hot = np.tile(np.eye(dim), (reps, 1)) * np.random.default_rng(0).uniform(0.5, 3.0, (dim * reps, 1))
    # Each normalised coordinate is Bernoulli(1/D) with exactly n/D ones: std = sqrt(p (1 - p)).
    assert embedding_std(one_hot) == pytest.approx(math.sqrt(1 / dim * (1 - 1 / dim)), rel=1e-9)
    isotropic = np.random.default_rng(1).normal(size=(20000, 64))
    assert embedding_std(isotropic) == pytest.approx(1 / math.sqrt(64), rel=0.01)
    constant = np.tile(np.random.default_rng(2).normal(size=(1, 64)), (100, 1))
    assert embedding_std(constant) == pytest.approx(0.0, abs=1e-7)
    assert embedding_std(tf.constant(isotropic)) == pytest.approx(embedding_std(isotropic))


def test_effective_rank_closed_form():
    rng = np.random.default_rng(3)
    u, _ = np.linalg.qr(rng.normal(size=(200, 6)))
    v, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    singular_values = np.array([4.0, 2.0, 1.0, 1.0, 0.0, 0.0])
    p = singular_values[:4] / singular_values.sum()
    assert effective_rank(u @ np.diag(singular_values) @ v.T) == pytest.approx(np.exp(-np.sum(p * np.log(p))),
                                                                               rel=1e-6)
    assert effective_rank(u @ v.T) == pytest.approx(6.0, rel=1e-9)  # equal singular values: exactly D
    rank_one = np.outer(rng.normal(size=500), rng.normal(size=32))
    assert effective_rank(rank_one) == pytest.approx(1.0, abs=1e-6)
    assert effective_rank(np.ones((50, 32))) == pytest.approx(1.0, abs=1e-6)
    isotropic = rng.normal(size=(20000, 32))
    assert 0.99 * 32 < effective_rank(isotropic) <= 32
    assert effective_rank(np.zeros((10, 4))) == 0.0


# --- callbacks -------------------------------------------------------------------------------------
class TinyEncoder(keras.Model):
    """``__call__`` returns features; training does nothing (weights stay fixed)."""

    def __init__(self, mode: str = "dense", dim: int = 16):
        super().__init__()
        self.mode, self.dim = mode, dim
        self.dense = keras.layers.Dense(dim, kernel_initializer=keras.initializers.GlorotUniform(seed=0))

    def call(self, x, training=False):
        features = self.dense(tf.reshape(x, [tf.shape(x)[0], -1]))
        batch = tf.shape(x)[0]
        if self.mode == "constant":
            return 0.0 * features + tf.linspace(1.0, 2.0, self.dim)[None]
        if self.mode == "random":
            return tf.random.normal([batch, self.dim])
        if self.mode == "rank_one":  # +-v: non-zero std, but a one-dimensional embedding
            return tf.sign(x[:, 0, 0, :1] - 0.5) * tf.linspace(1.0, 2.0, self.dim)[None] + 0.0 * features
        if self.mode == "nan":
            return features * np.nan
        return features

    def train_step(self, data):
        return {"loss": tf.constant(0.0)}


def fit(model, callbacks, epochs):
    model.compile()
    x = np.random.default_rng(0).uniform(size=(64, 4, 4, 1)).astype(np.float32)
    return model.fit(x, batch_size=32, epochs=epochs, callbacks=callbacks, verbose=0)


def test_knn_monitor_writes_history_and_drives_early_stopping(capsys):
    train_f, train_y, centers = clusters(200, 4, 16, spread=2.0, seed=10)
    test_f, test_y, _ = clusters(100, 4, 16, spread=2.0, seed=11, centers=centers)
    train = (train_f.reshape(-1, 4, 4, 1), train_y)
    test = tf.data.Dataset.from_tensor_slices((test_f.reshape(-1, 4, 4, 1), test_y)).batch(32)
    model = TinyEncoder()
    monitor = KNNMonitor(train, test, every=2, k=10)
    stopper = keras.callbacks.EarlyStopping(monitor="knn_accuracy", mode="max", patience=1)
    history = fit(model, [monitor, stopper], epochs=10)

    expected = knn_accuracy(model, train, test, k=10)
    assert expected > 0.9
    # Evaluated after epochs 2 and 4; the unchanged accuracy at epoch 4 triggers EarlyStopping (patience 1).
    assert len(history.history["loss"]) == 4
    assert history.history["knn_accuracy"] == [expected, expected]
    assert monitor.history == [(1, expected), (3, expected)]
    assert f"Epoch 2: knn_accuracy = {expected:.4f}" in capsys.readouterr().out

    separate = KNNMonitor(train, test, every=1, encoder=flatten_encoder(), name="knn_raw", verbose=0)
    raw_history = fit(TinyEncoder(), [separate], epochs=2)
    assert raw_history.history["knn_raw"] == [knn_accuracy(flatten_encoder(), train, test)] * 2


def test_collapse_monitor_warns_and_stops_on_constant_features():
    monitor = CollapseMonitor(np.random.default_rng(1).uniform(size=(128, 4, 4, 1)).astype(np.float32))
    with pytest.warns(CollapseWarning, match="collapsed towards a constant") as record:
        history = fit(TinyEncoder("constant"), [monitor], epochs=5)
    message = str(record[0].message)
    for fix in ("learning rate", "stop-gradient", "predictor", "batch", "temperature", "weight decay"):
        assert fix in message
    assert len(history.history["loss"]) == 1  # stopped after the first epoch
    assert history.history["feature_std"] == [pytest.approx(0.0, abs=1e-6)]
    assert history.history["feature_effective_rank"] == [pytest.approx(1.0, abs=1e-5)]
    assert monitor.collapsed_epoch == 0


def test_collapse_monitor_quiet_on_random_features():
    x = np.random.default_rng(2).uniform(size=(512, 4, 4, 1)).astype(np.float32)
    data = tf.data.Dataset.from_tensor_slices(x).batch(128)
    monitor = CollapseMonitor(data, min_effective_rank=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseWarning)
        history = fit(TinyEncoder("random"), [monitor], epochs=3)
    assert len(history.history["loss"]) == 3
    assert monitor.collapsed_epoch is None
    for std in history.history["feature_std"]:
        assert std == pytest.approx(1 / math.sqrt(16), rel=0.05)
    assert min(history.history["feature_effective_rank"]) > 14


def test_collapse_monitor_effective_rank_and_divergence():
    x = np.random.default_rng(3).uniform(size=(256, 4, 4, 1)).astype(np.float32)
    rank_monitor = CollapseMonitor((x, np.zeros(256)), every=2, min_effective_rank=2.0, stop=False)
    with pytest.warns(CollapseWarning, match="low-dimensional subspace"):
        history = fit(TinyEncoder("rank_one"), [rank_monitor], epochs=4)
    assert len(history.history["loss"]) == 4  # stop=False keeps training
    assert history.history["feature_std"][0] > 0.1 / math.sqrt(16)  # the std test alone misses it
    assert history.history["feature_effective_rank"] == [pytest.approx(1.0, abs=1e-5)] * 2
    assert rank_monitor.collapsed_epoch == 1

    with pytest.warns(CollapseWarning, match="NaN"):
        history = fit(TinyEncoder("nan"), [CollapseMonitor(x)], epochs=3)
    assert len(history.history["loss"]) == 1


# --- errors ----------------------------------------------------------------------------------------
def test_clear_errors_for_unlabelled_and_mismatched_data(digits):
    (x, y), test = digits
    encoder = flatten_encoder()
    with pytest.raises(ValueError, match="no labels"):
        linear_probe(encoder, x, test)
    with pytest.raises(ValueError, match="no labels"):
        linear_probe(encoder, tf.data.Dataset.from_tensor_slices(x).batch(64), test)
    with pytest.raises(ValueError, match="no labels"):
        knn_accuracy(None, x.reshape(1000, -1), test)
    with pytest.raises(ValueError, match="1000 inputs but 999 labels"):
        extract_features(encoder, (x, y[:-1]))
    with pytest.raises(ValueError, match="rows but"):
        knn_accuracy_from_features(np.ones((10, 4)), np.zeros(9), np.ones((3, 4)), np.zeros(3))
    with pytest.raises(ValueError, match="rows but"):
        knn_accuracy_from_features(np.ones((10, 4)), np.zeros(10), np.ones((3, 4)), np.zeros(4))
    with pytest.raises(ValueError, match="rows but"):
        linear_probe(None, (np.ones((10, 4)), np.arange(11) % 2), (np.ones((3, 4)), np.zeros(3)))
    with pytest.raises(ValueError, match=r"shape \[n, 4\]"):
        knn_accuracy_from_features(np.ones((10, 4)), np.zeros(10), np.ones((3, 5)), np.zeros(3))
    with pytest.raises(ValueError, match=r"\[batch, D\]"):
        extract_features(lambda images: images, (x, y))
