"""The vision SSL losses against plain float64 NumPy references, plus their known values."""

from __future__ import annotations

import numpy as np
import pytest

from keras_ssl.backend import tf
from keras_ssl.losses import (
    barlow_twins_loss,
    byol_loss,
    embedding_std,
    info_nce,
    nt_xent,
    simsiam_loss,
    vicreg_loss,
)

SHAPES = [(4, 3), (16, 8), (33, 64)]


# --- float64 NumPy references, written from the papers' formulas --------------------------------------
def unit(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def ref_nt_xent(z1, z2, t):
    z = unit(np.concatenate([z1, z2]))
    n = len(z1)
    losses, hits = [], []
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        others = [k for k in range(2 * n) if k != i]
        sims = np.array([z[i] @ z[k] / t for k in others])
        log_probs = log_softmax(sims)
        losses.append(-log_probs[others.index(positive)])
        hits.append(others[int(np.argmax(sims))] == positive)
    return np.mean(losses), np.mean(hits)


def ref_info_nce(q, k, queue, t):
    q, k, queue = unit(q), unit(k), unit(queue)
    logits = np.concatenate([(q * k).sum(-1, keepdims=True), q @ queue.T], axis=1) / t
    return -log_softmax(logits)[:, 0].mean(), (logits.argmax(-1) == 0).mean()


def ref_byol(p, z):
    return np.mean(np.sum((unit(p) - unit(z)) ** 2, axis=-1))


def ref_simsiam(p, z):
    return np.mean(-np.sum(unit(p) * unit(z), axis=-1))


def ref_barlow(z1, z2, lambda_, eps=1e-5):
    z1, z2 = np.asarray(z1, np.float64), np.asarray(z2, np.float64)
    z1n = (z1 - z1.mean(0)) / np.sqrt(z1.var(0) + eps)  # population variance, as BatchNorm1d
    z2n = (z2 - z2.mean(0)) / np.sqrt(z2.var(0) + eps)
    c = z1n.T @ z2n / len(z1)
    off = c - np.diag(np.diag(c))
    return np.sum((1 - np.diag(c)) ** 2) + lambda_ * np.sum(off**2)


def ref_vicreg(x, y, sim_w=25.0, var_w=25.0, cov_w=1.0, eps=1e-4, gamma=1.0):
    """The VICReg paper's Algorithm 1 (PyTorch pseudocode) in NumPy."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n, d = x.shape
    sim_loss = np.mean((x - y) ** 2)
    std_x = np.sqrt(x.var(axis=0, ddof=1) + eps)
    std_y = np.sqrt(y.var(axis=0, ddof=1) + eps)
    std_loss = np.mean(np.maximum(0, gamma - std_x)) / 2 + np.mean(np.maximum(0, gamma - std_y)) / 2
    x, y = x - x.mean(0), y - y.mean(0)
    cov_x, cov_y = x.T @ x / (n - 1), y.T @ y / (n - 1)

    def off_diagonal_sq(c):
        return np.sum(c**2) - np.sum(np.diag(c) ** 2)

    cov_loss = off_diagonal_sq(cov_x) / d + off_diagonal_sq(cov_y) / d
    parts = {"invariance": sim_loss, "variance": std_loss, "covariance": cov_loss}
    return sim_w * sim_loss + var_w * std_loss + cov_w * cov_loss, parts


def ref_embedding_std(z):
    return np.mean(unit(z).std(axis=0))


def rand(seed, shape, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def close(value, expected, tol=1e-5):
    value = np.asarray(value)
    assert value.dtype == np.float32
    assert float(value) == pytest.approx(float(expected), rel=tol, abs=tol)


# --- against the references -------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_nt_xent_matches_reference(shape, temperature):
    z1 = rand(0, shape)
    z2 = z1 + rand(1, shape, 0.7)  # correlated views so the accuracy is neither 0 nor trivially 1
    loss, accuracy = nt_xent(tf.constant(z1), tf.constant(z2), temperature)
    ref_loss, ref_accuracy = ref_nt_xent(z1, z2, temperature)
    close(loss, ref_loss)
    close(accuracy, ref_accuracy)


@pytest.mark.parametrize("shape, queue_size", [((4, 3), 7), ((16, 8), 32), ((33, 64), 100)])
def test_info_nce_matches_reference(shape, queue_size):
    q = rand(2, shape)
    k = q + rand(3, shape, 0.4 * np.sqrt(shape[1]))  # as close as the nearest random negatives
    queue = rand(4, (queue_size, shape[1]), 3.0)  # unnormalised: normalised inside
    loss, accuracy = info_nce(tf.constant(q), tf.constant(k), tf.constant(queue), 0.2)
    ref_loss, ref_accuracy = ref_info_nce(q, k, queue, 0.2)
    close(loss, ref_loss)
    close(accuracy, ref_accuracy)
    assert 0.0 < float(accuracy) < 1.0 or shape[0] < 8


@pytest.mark.parametrize("shape", SHAPES)
def test_byol_and_simsiam_match_reference(shape):
    p, z = rand(5, shape, 2.0), rand(6, shape, 0.5)
    close(byol_loss(tf.constant(p), tf.constant(z)), ref_byol(p, z))
    close(simsiam_loss(tf.constant(p), tf.constant(z)), ref_simsiam(p, z))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("lambda_", [5e-3, 0.0051])
def test_barlow_twins_matches_reference(shape, lambda_):
    z1 = rand(7, shape, 2.0) + 1.0
    z2 = 0.5 * z1 + rand(8, shape)
    close(barlow_twins_loss(tf.constant(z1), tf.constant(z2), lambda_), ref_barlow(z1, z2, lambda_))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"sim_weight": 1.0, "var_weight": 2.0, "cov_weight": 3.0, "gamma": 2.0, "eps": 1e-3}],
)
def test_vicreg_matches_reference(shape, kwargs):
    z1 = rand(9, shape, 0.6)  # std below gamma, so the hinge is active
    z2 = z1 + rand(10, shape, 0.3)
    loss, parts = vicreg_loss(tf.constant(z1), tf.constant(z2), **kwargs)
    ref_kwargs = {
        {"sim_weight": "sim_w", "var_weight": "var_w", "cov_weight": "cov_w"}.get(key, key): value
        for key, value in kwargs.items()
    }
    ref_loss, ref_parts = ref_vicreg(z1, z2, **ref_kwargs)
    close(loss, ref_loss)
    assert set(parts) == {"invariance", "variance", "covariance"}
    for name, value in parts.items():
        close(value, ref_parts[name])
    assert float(parts["variance"]) > 0


@pytest.mark.parametrize("shape", SHAPES)
def test_embedding_std_matches_reference(shape):
    z = rand(11, shape, 3.0)
    close(embedding_std(tf.constant(z)), ref_embedding_std(z))


def test_float16_inputs_are_computed_in_float32():
    z1, z2 = rand(12, (16, 8)), rand(13, (16, 8))
    half1, half2 = tf.constant(z1, tf.float16), tf.constant(z2, tf.float16)
    z1h, z2h = (np.asarray(x, np.float16).astype(np.float64) for x in (z1, z2))
    loss, _ = nt_xent(half1, half2)
    close(loss, ref_nt_xent(z1h, z2h, 0.1)[0])
    close(barlow_twins_loss(half1, half2), ref_barlow(z1h, z2h, 5e-3))
    close(vicreg_loss(half1, half2)[0], ref_vicreg(z1h, z2h)[0])


# --- symmetries and known values -----------------------------------------------------------------------
def test_symmetric_in_the_two_views():
    z1, z2 = tf.constant(rand(14, (12, 6))), tf.constant(rand(15, (12, 6)))
    for fn in (lambda a, b: nt_xent(a, b)[0], barlow_twins_loss, lambda a, b: vicreg_loss(a, b)[0]):
        np.testing.assert_allclose(fn(z1, z2).numpy(), fn(z2, z1).numpy(), rtol=1e-6)
    # Cosine losses are symmetric in (p, z) too.
    np.testing.assert_allclose(byol_loss(z1, z2).numpy(), byol_loss(z2, z1).numpy(), rtol=1e-6)
    np.testing.assert_allclose(simsiam_loss(z1, z2).numpy(), simsiam_loss(z2, z1).numpy(), rtol=1e-6)


def test_invariant_to_a_common_permutation_of_the_batch():
    z1, z2 = rand(16, (10, 5)), rand(17, (10, 5))
    perm = np.random.default_rng(0).permutation(10)
    for fn in (
        lambda a, b: nt_xent(a, b)[0],
        barlow_twins_loss,
        lambda a, b: vicreg_loss(a, b)[0],
        byol_loss,
    ):
        np.testing.assert_allclose(fn(z1, z2).numpy(), fn(z1[perm], z2[perm]).numpy(), rtol=1e-5)


def test_scale_invariance_of_the_normalised_losses():
    z1, z2 = rand(18, (8, 4)), rand(19, (8, 4))
    np.testing.assert_allclose(nt_xent(z1, z2)[0].numpy(), nt_xent(5 * z1, 0.1 * z2)[0].numpy(), rtol=1e-5)
    np.testing.assert_allclose(byol_loss(z1, z2).numpy(), byol_loss(3 * z1, 7 * z2).numpy(), rtol=1e-5)


def test_identical_views():
    z = tf.constant(rand(20, (16, 8)))
    assert float(byol_loss(z, z)) == pytest.approx(0.0, abs=1e-6)
    assert float(simsiam_loss(z, z)) == pytest.approx(-1.0, abs=1e-6)
    assert float(byol_loss(z, -z)) == pytest.approx(4.0, abs=1e-5)
    _, parts = vicreg_loss(z, z)
    assert float(parts["invariance"]) == 0.0


def test_nt_xent_well_separated_views_are_all_found():
    # One-hot directions: each image's views are identical, all images orthogonal to each other.
    z = np.eye(8, 16, dtype=np.float32)
    loss, accuracy = nt_xent(z, z + 0.01 * rand(21, (8, 16)), temperature=0.1)
    assert float(accuracy) == 1.0
    # Positive cosine ~1, 14 negatives ~0: loss ~ log(1 + 14 exp(-10)).
    assert float(loss) == pytest.approx(np.log1p(14 * np.exp(-10.0)), abs=5e-4)
    # Swapping the second views' rows breaks every pair.
    _, accuracy = nt_xent(z, np.roll(z, 1, axis=0))
    assert float(accuracy) == 0.0


def test_info_nce_positive_is_top_when_queue_is_orthogonal():
    q = np.eye(4, 8, dtype=np.float32)
    queue = np.eye(8, dtype=np.float32)[4:]  # directions no query points to
    loss, accuracy = info_nce(q, q, queue, temperature=0.2)
    assert float(accuracy) == 1.0
    assert float(loss) == pytest.approx(np.log1p(4 * np.exp(-5.0)), rel=1e-5)


def test_barlow_perfectly_correlated_whitened_views_give_zero():
    n, d = 64, 8
    rng = np.random.default_rng(22)
    a = rng.standard_normal((n, d))
    q, _ = np.linalg.qr(a - a.mean(0))  # orthonormal, zero-mean columns
    z = (q * np.sqrt(n)).astype(np.float32)  # population variance 1, cross-correlation identity
    assert float(barlow_twins_loss(z, z)) == pytest.approx(0.0, abs=1e-6)
    assert float(barlow_twins_loss(z, 3.0 * z + 2.0)) == pytest.approx(0.0, abs=1e-6)
    # Fully redundant dimensions: every off-diagonal correlation is 1.
    redundant = np.repeat(z[:, :1], d, axis=1)
    expected = 5e-3 * d * (d - 1)
    assert float(barlow_twins_loss(redundant, redundant)) == pytest.approx(expected, rel=1e-4)


def test_collapse_indicators():
    healthy = rand(23, (512, 32))
    collapsed = np.tile(rand(24, (1, 32)), (512, 1))
    assert float(embedding_std(healthy)) == pytest.approx(1 / np.sqrt(32), rel=0.05)
    assert float(embedding_std(collapsed)) == pytest.approx(0.0, abs=1e-6)
    # VICReg's variance term is its full hinge (gamma) under collapse, ~0 for unit-variance inputs.
    assert float(vicreg_loss(collapsed, collapsed)[1]["variance"]) == pytest.approx(
        1.0 - np.sqrt(1e-4), abs=1e-6
    )
    assert float(vicreg_loss(healthy, healthy)[1]["variance"]) < 0.05


# --- gradients -------------------------------------------------------------------------------------------
def test_gradients_are_finite_and_nonzero():
    z1 = tf.Variable(rand(25, (8, 6)))
    z2 = tf.Variable(rand(26, (8, 6)))
    queue = tf.constant(rand(27, (20, 6)))
    losses = {
        "nt_xent": lambda: nt_xent(z1, z2)[0],
        "info_nce": lambda: info_nce(z1, z2, queue)[0],
        "byol": lambda: byol_loss(z1, z2),
        "simsiam": lambda: simsiam_loss(z1, z2),
        "barlow": lambda: barlow_twins_loss(z1, z2),
        "vicreg": lambda: vicreg_loss(z1, z2)[0],
    }
    for name, fn in losses.items():
        with tf.GradientTape() as tape:
            loss = fn()
        grads = tape.gradient(loss, [z1, z2])
        for grad in grads:
            assert grad is not None, name
            assert np.all(np.isfinite(grad.numpy())), name
            assert np.abs(grad.numpy()).max() > 0, name


def test_nt_xent_gradient_matches_finite_differences():
    z1 = rand(28, (4, 3)).astype(np.float64)
    z2 = rand(29, (4, 3)).astype(np.float64)
    v = tf.Variable(z1.astype(np.float32))
    with tf.GradientTape() as tape:
        loss = nt_xent(v, z2.astype(np.float32), 0.5)[0]
    grad = tape.gradient(loss, v).numpy()
    eps = 1e-6
    numeric = np.zeros_like(z1)
    for idx in np.ndindex(*z1.shape):
        up, down = z1.copy(), z1.copy()
        up[idx] += eps
        down[idx] -= eps
        numeric[idx] = (ref_nt_xent(up, z2, 0.5)[0] - ref_nt_xent(down, z2, 0.5)[0]) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, atol=1e-5)


XLA_TERMS = {
    "nt_xent": lambda a, b, queue: nt_xent(a, b)[0],
    "info_nce": lambda a, b, queue: info_nce(a, b, queue)[0],
    "byol": lambda a, b, queue: byol_loss(a, b),
    "simsiam": lambda a, b, queue: simsiam_loss(a, b),
    "barlow_twins": lambda a, b, queue: barlow_twins_loss(a, b),
    "vicreg": lambda a, b, queue: vicreg_loss(a, b)[0],
    "embedding_std": lambda a, b, queue: embedding_std(a),
}


@pytest.mark.parametrize("term", sorted(XLA_TERMS))
def test_losses_compile_with_xla(term):
    z1, z2 = tf.constant(rand(30, (8, 4))), tf.constant(rand(31, (8, 4)))
    queue = tf.constant(rand(32, (10, 4)))
    loss = XLA_TERMS[term]
    compiled = tf.function(loss, jit_compile=True)
    np.testing.assert_allclose(compiled(z1, z2, queue).numpy(), loss(z1, z2, queue).numpy(), rtol=1e-5)
