"""Evaluation of self-supervised encoders: k-NN, linear probes, collapse statistics and callbacks."""

from keras_ssl.evaluation.callbacks import CollapseMonitor, CollapseWarning, KNNMonitor
from keras_ssl.evaluation.clusters import cluster_purity, contingency
from keras_ssl.evaluation.digits_protocol import (
    DIGITS_RECIPES,
    build_digits_method,
    digits_encoder,
    digits_multi_crop,
    digits_report,
    pretrain_on_digits,
)
from keras_ssl.evaluation.features import encode, extract_features
from keras_ssl.evaluation.health import HealthMonitor
from keras_ssl.evaluation.knn import knn_accuracy, knn_accuracy_from_features, knn_predict
from keras_ssl.evaluation.linear_probe import linear_probe
from keras_ssl.evaluation.mnist_protocol import (
    MNIST_CLASSIFIER,
    MNIST_PRETRAIN,
    encoder_payoff,
    mnist_encoder,
    mnist_labels,
    mnist_payoff,
    pretrain_on_mnist,
)
from keras_ssl.evaluation.statistics import effective_rank, embedding_std
from keras_ssl.evaluation.tabular_protocol import TABULAR_PRETRAIN, label_subset, pretrain_tabular

__all__ = [
    "DIGITS_RECIPES",
    "MNIST_CLASSIFIER",
    "MNIST_PRETRAIN",
    "TABULAR_PRETRAIN",
    "CollapseMonitor",
    "CollapseWarning",
    "HealthMonitor",
    "KNNMonitor",
    "build_digits_method",
    "cluster_purity",
    "contingency",
    "digits_encoder",
    "digits_multi_crop",
    "digits_report",
    "effective_rank",
    "embedding_std",
    "encoder_payoff",
    "encode",
    "extract_features",
    "knn_accuracy",
    "knn_accuracy_from_features",
    "knn_predict",
    "label_subset",
    "linear_probe",
    "mnist_encoder",
    "mnist_labels",
    "mnist_payoff",
    "pretrain_on_digits",
    "pretrain_on_mnist",
    "pretrain_tabular",
]
