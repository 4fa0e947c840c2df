"""The one place keras_ssl imports Keras (and sets TensorFlow's start-up options).

Hugging Face's TensorFlow models are ``tf_keras`` models, so keras_ssl uses ``tf_keras`` (Keras 2)
everywhere. Setting ``TF_USE_LEGACY_KERAS`` before TensorFlow is imported makes ``tf.keras`` and
transformers agree on that choice.

oneDNN CPU kernels: TensorFlow switches them on by default only on CPUs with AVX-512/AMX features.
When keras_ssl is imported before TensorFlow on an x86-64 machine, it switches them on for other CPUs
too (``TF_ENABLE_ONEDNN_OPTS=1``): on an AVX2 CPU they trained ResNet-18 ~1.6x faster
(``benchmarks/vision_throughput.py``). Set ``TF_ENABLE_ONEDNN_OPTS=0`` before importing keras_ssl to keep
TensorFlow's default. Their fused batch-norm + ReLU maps NaN to 0, so a NaN may show only in the
gradients: the shared train step checks those too (:class:`keras_ssl.training.NonFiniteLossError`).
TensorFlow reads these variables once, when it is imported; if it was imported first, nothing changes.
"""

import os
import platform
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if "tensorflow" not in sys.modules and platform.machine().lower() in ("x86_64", "amd64"):
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["keras", "tf"]
