"""Masked-LM loss terms: pure functions of logits and labels."""

from __future__ import annotations

from typing import Tuple

from keras_ssl.backend import tf
from keras_ssl.text.masking import IGNORE_INDEX


def masked_lm_terms(logits: tf.Tensor, labels: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Sums over the predicted positions of a (local) batch.

    ``logits``: ``[..., vocab]``; ``labels``: ``[...]`` with ``-100`` at positions not predicted.
    Returns float32 ``(cross_entropy_sum, correct_count, predicted_count)``; dividing the first two
    by the *global* predicted count gives the mean loss and the masked-token accuracy.
    """
    logits = tf.cast(logits, tf.float32)
    labels = tf.cast(labels, tf.int32)
    predicted = tf.not_equal(labels, IGNORE_INDEX)
    weight = tf.cast(predicted, tf.float32)
    safe = tf.where(predicted, labels, 0)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=logits)
    # Select rather than multiply by the weight: an inf/NaN cross-entropy at an ignored position
    # (padding logits that overflowed in float16, a -inf logit for the dummy label 0) must not
    # leak into the sum as inf * 0 = NaN.
    ce = tf.where(predicted, ce, 0.0)
    correct = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), safe), tf.float32)
    return tf.reduce_sum(ce), tf.reduce_sum(correct * weight), tf.reduce_sum(weight)
