"""``masked_lm_terms`` against a plain NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest

from keras_ssl.backend import tf
from keras_ssl.text.losses import masked_lm_terms
from keras_ssl.text.masking import IGNORE_INDEX


def reference(logits, labels):
    """Sums of log-softmax cross-entropy and argmax hits over the positions with a label."""
    logits = np.asarray(logits, np.float64).reshape(-1, np.shape(logits)[-1])
    labels = np.asarray(labels).reshape(-1)
    keep = labels != IGNORE_INDEX
    logits, labels = logits[keep], labels[keep]
    if len(labels) == 0:
        return 0.0, 0.0, 0.0
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    ce = -log_softmax[np.arange(len(labels)), labels]
    correct = logits.argmax(axis=1) == labels
    return float(ce.sum()), float(correct.sum()), float(len(labels))


def random_case(shape, vocab, keep_rate, seed, label_dtype=np.int64, scale=3.0):
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal(shape + (vocab,)) * scale).astype(np.float32)
    labels = rng.integers(0, vocab, size=shape).astype(label_dtype)
    labels[rng.random(shape) >= keep_rate] = IGNORE_INDEX
    # Make some predictions right so the accuracy is not trivially ~1/vocab.
    hit = rng.random(shape) < 0.3
    flat_logits = logits.reshape(-1, vocab)
    flat_labels = labels.reshape(-1)
    for i in np.flatnonzero(hit.reshape(-1) & (flat_labels != IGNORE_INDEX)):
        flat_logits[i, flat_labels[i]] = flat_logits[i].max() + 1.0
    return logits, labels


def check(logits, labels, rtol=1e-5):
    ce, correct, count = (t.numpy() for t in masked_lm_terms(tf.constant(logits), tf.constant(labels)))
    ref_ce, ref_correct, ref_count = reference(logits, labels)
    for value in (ce, correct, count):
        assert np.isfinite(value) and value.dtype == np.float32
    assert ce == pytest.approx(ref_ce, rel=rtol, abs=1e-4)
    assert correct == ref_correct
    assert count == ref_count
    return ce, correct, count


@pytest.mark.parametrize(
    "shape, vocab, keep_rate, label_dtype",
    [
        ((4, 16), 50, 0.3, np.int64),
        ((3, 7, 5), 11, 0.5, np.int32),
        ((64,), 1000, 0.15, np.int64),  # gathered logits: [n, vocab]
        ((2, 9), 7, 1.0, np.int32),  # every position predicted
    ],
)
def test_matches_numpy_reference(shape, vocab, keep_rate, label_dtype):
    logits, labels = random_case(shape, vocab, keep_rate, seed=vocab, label_dtype=label_dtype)
    _, correct, count = check(logits, labels)
    assert count > 0 and 0 < correct < count


def test_all_ignored_gives_zeros():
    logits, labels = random_case((4, 16), 50, 0.0, seed=0)
    assert np.all(labels == IGNORE_INDEX)
    ce, correct, count = check(logits, labels)
    assert (ce, correct, count) == (0.0, 0.0, 0.0)
    # The caller divides by the global count with divide_no_nan: no NaN in the loss.
    assert tf.math.divide_no_nan(ce, count).numpy() == 0.0


def test_ignored_positions_cannot_poison_the_sums():
    logits, labels = random_case((4, 16), 50, 0.4, seed=1)
    ignored = labels == IGNORE_INDEX
    poisoned = logits.copy()
    poisoned[ignored, 0] = -np.inf  # e.g. a logit forced to -inf; label 0 is the dummy label
    poisoned[ignored.nonzero()[0][:3], ignored.nonzero()[1][:3], 1] = np.inf  # float16 overflow
    ce, correct, count = (t.numpy() for t in masked_lm_terms(tf.constant(poisoned), tf.constant(labels)))
    ref_ce, ref_correct, ref_count = reference(logits, labels)
    assert np.isfinite(ce)
    assert ce == pytest.approx(ref_ce, rel=1e-5)
    assert (correct, count) == (ref_correct, ref_count)


def test_half_precision_logits_and_xla():
    logits, labels = random_case((4, 16), 50, 0.5, seed=2)
    half = logits.astype(np.float16)
    ce, correct, count = (t.numpy() for t in masked_lm_terms(tf.constant(half), tf.constant(labels)))
    ref = reference(half.astype(np.float32), labels)
    assert ce == pytest.approx(ref[0], rel=1e-5)
    assert (correct, count) == ref[1:]
    xla = tf.function(masked_lm_terms, jit_compile=True)(tf.constant(logits), tf.constant(labels))
    eager = masked_lm_terms(tf.constant(logits), tf.constant(labels))
    for a, b in zip(xla, eager):
        assert a.numpy() == pytest.approx(b.numpy(), rel=1e-6)


def test_gradient_flows_only_through_predicted_positions():
    logits, labels = random_case((2, 8), 13, 0.5, seed=3)
    x = tf.Variable(logits)
    with tf.GradientTape() as tape:
        ce, _, _ = masked_lm_terms(x, tf.constant(labels))
    grad = tape.gradient(ce, x).numpy()
    ignored = labels == IGNORE_INDEX
    assert np.all(grad[ignored] == 0)
    # d CE / d logits = softmax - one_hot at predicted positions.
    z = logits[~ignored].astype(np.float64)
    softmax = np.exp(z - z.max(1, keepdims=True))
    softmax /= softmax.sum(1, keepdims=True)
    softmax[np.arange(len(z)), labels[~ignored]] -= 1
    np.testing.assert_allclose(grad[~ignored], softmax, atol=1e-6)
