"""Evaluation of self-supervised encoders: k-NN, linear probes, collapse statistics and callbacks."""

from keras_ssl.evaluation.callbacks import CollapseMonitor, CollapseWarning, KNNMonitor
from keras_ssl.evaluation.digits_protocol import (
    DIGITS_RECIPES,
    build_digits_method,
    digits_encoder,
    digits_report,
    pretrain_on_digits,
)
from keras_ssl.evaluation.features import encode, extract_features
from keras_ssl.evaluation.knn import knn_accuracy, knn_accuracy_from_features, knn_predict
from keras_ssl.evaluation.linear_probe import linear_probe
from keras_ssl.evaluation.statistics import effective_rank, embedding_std

__all__ = [
    "DIGITS_RECIPES",
    "CollapseMonitor",
    "CollapseWarning",
    "KNNMonitor",
    "build_digits_method",
    "digits_encoder",
    "digits_report",
    "effective_rank",
    "embedding_std",
    "encode",
    "extract_features",
    "knn_accuracy",
    "knn_accuracy_from_features",
    "knn_predict",
    "linear_probe",
    "pretrain_on_digits",
]
