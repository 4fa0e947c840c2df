"""The one place keras_ssl imports Keras.

Hugging Face's TensorFlow models are ``tf_keras`` models, so keras_ssl uses ``tf_keras`` (Keras 2)
everywhere. Setting ``TF_USE_LEGACY_KERAS`` before TensorFlow is imported makes ``tf.keras`` and
transformers agree on that choice.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["keras", "tf"]
