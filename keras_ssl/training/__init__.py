"""The shared training base: one ``train_step`` shape, exact under any ``tf.distribute`` strategy."""

from keras_ssl.training.base import SSLModel
from keras_ssl.training.metrics import RatioMetric, ShareMean
from keras_ssl.training.replicas import num_replicas, replica_gather, replica_sum

__all__ = ["SSLModel", "RatioMetric", "ShareMean", "num_replicas", "replica_gather", "replica_sum"]
