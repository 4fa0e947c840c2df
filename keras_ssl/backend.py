"""The one place keras_ssl imports Keras (and sets TensorFlow's start-up options).

Hugging Face's TensorFlow models are ``tf_keras`` models, so keras_ssl uses ``tf_keras`` (Keras 2)
everywhere. Setting ``TF_USE_LEGACY_KERAS`` before TensorFlow is imported makes ``tf.keras`` and
transformers agree on that choice.

``TF_ENABLE_ONEDNN_OPTS`` is left to the user. TensorFlow switches its oneDNN CPU kernels on by
default only for CPUs with AVX-512/AMX features; on an AVX2 CPU, ``TF_ENABLE_ONEDNN_OPTS=1`` trained a
ResNet-18 about 1.6x faster (``benchmarks/vision_throughput.py``), but its fused batch-norm + ReLU
turns NaN into 0, which hides NaN inputs and divergence from :class:`NonFiniteLossError`. So it is
not switched on here.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["keras", "tf"]
