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


class MacroF1(keras.metrics.Metric):
    """Macro-averaged F1 over the epoch, exact across replicas (scikit-learn's ``average="macro"``).

    ``update_state(y_true, y_pred)`` takes class ids ``int [batch]`` and adds per-class true
    positives, false positives and false negatives (``float64 [num_classes]``, summed across replicas
    on read). ``result()`` is the mean of ``2 tp / (2 tp + fp + fn)`` over the classes that occur in
    the labels or the predictions so far (like scikit-learn's default label set); 0 before any update.
    """

    def __init__(self, num_classes: int, name: str = "macro_f1", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        shape = (self.num_classes,)
        self.tp = self.add_weight("tp", shape=shape, initializer="zeros", dtype=tf.float64)
        self.fp = self.add_weight("fp", shape=shape, initializer="zeros", dtype=tf.float64)
        self.fn = self.add_weight("fn", shape=shape, initializer="zeros", dtype=tf.float64)

    def update_state(self, y_true, y_pred):
        truth = tf.one_hot(tf.reshape(tf.cast(y_true, tf.int32), [-1]), self.num_classes, dtype=tf.float64)
        guess = tf.one_hot(tf.reshape(tf.cast(y_pred, tf.int32), [-1]), self.num_classes, dtype=tf.float64)
        self.tp.assign_add(tf.reduce_sum(truth * guess, 0))
        self.fp.assign_add(tf.reduce_sum((1.0 - truth) * guess, 0))
        self.fn.assign_add(tf.reduce_sum(truth * (1.0 - guess), 0))

    def result(self):
        tp, fp, fn = (tf.convert_to_tensor(v) for v in (self.tp, self.fp, self.fn))
        seen = 2.0 * tp + fp + fn
        f1 = tf.math.divide_no_nan(2.0 * tp, seen)
        present = tf.reduce_sum(tf.cast(seen > 0, tf.float64))
        return tf.cast(tf.math.divide_no_nan(tf.reduce_sum(f1), present), tf.float32)

    def reset_state(self):
        for variable in (self.tp, self.fp, self.fn):
            variable.assign(tf.zeros_like(variable))

    def get_config(self) -> dict:
        return {**super().get_config(), "num_classes": self.num_classes}
