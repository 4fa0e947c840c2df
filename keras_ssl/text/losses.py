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
    weight = tf.cast(tf.not_equal(labels, IGNORE_INDEX), tf.float32)
    safe = tf.where(labels == IGNORE_INDEX, 0, labels)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=logits)
    correct = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), safe), tf.float32)
    return tf.reduce_sum(ce * weight), tf.reduce_sum(correct * weight), tf.reduce_sum(weight)
