"""The shared training base: one ``train_step`` shape, exact under any ``tf.distribute`` strategy."""

from keras_ssl.training.base import NonFiniteLossError, SSLModel, all_finite
from keras_ssl.training.metrics import MacroF1, RatioMetric, ShareMean
from keras_ssl.training.replicas import num_replicas, replica_gather, replica_sum

__all__ = [
    "MacroF1",
    "NonFiniteLossError",
    "RatioMetric",
    "SSLModel",
    "ShareMean",
    "all_finite",
    "num_replicas",
    "replica_gather",
    "replica_sum",
]
