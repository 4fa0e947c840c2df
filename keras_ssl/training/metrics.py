"""Metrics that stay exact when every replica reports only its own share."""

from __future__ import annotations

from typing import Callable, Optional

from keras_ssl.backend import keras, tf
from keras_ssl.training.replicas import num_replicas


class RatioMetric(keras.metrics.Metric):
    """Running ``sum(numerators) / sum(denominators)`` over the epoch and over all replicas.

    Each replica adds its local numerator and denominator (e.g. correct predictions and masked
    tokens); variables are summed across replicas on read, so the result is the global ratio.
    ``transform`` maps the ratio for display (``tf.exp`` turns a mean cross-entropy into perplexity).
    """

    def __init__(self, name: str, transform: Optional[Callable] = None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.transform = transform
        self.total = self.add_weight("total", initializer="zeros", dtype=tf.float64)
        self.count = self.add_weight("count", initializer="zeros", dtype=tf.float64)

    def update_state(self, numerator, denominator):
        self.total.assign_add(tf.cast(tf.reduce_sum(numerator), tf.float64))
        self.count.assign_add(tf.cast(tf.reduce_sum(denominator), tf.float64))

    def result(self):
        ratio = tf.cast(tf.math.divide_no_nan(self.total, self.count), tf.float32)
        return self.transform(ratio) if self.transform is not None else ratio

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)


class ShareMean(RatioMetric):
    """Mean over steps of a quantity each replica reports as its share of the global value.

    A step adds its share to the total and ``1 / num_replicas`` to the count on every replica,
    so after the cross-replica sum each step counts once with its global value.
    """

    def update_state(self, share, denominator=None):
        super().update_state(share, 1.0 / num_replicas())
