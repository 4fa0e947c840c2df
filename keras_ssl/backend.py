"""The one place keras_ssl imports Keras: ``tf_keras`` (Keras 2), the Keras of Hugging Face's TF models.

TensorFlow's start-up options (legacy Keras, oneDNN on x86-64) are set by ``keras_ssl/__init__.py``,
which Python runs before this module, so they are in place before TensorFlow is imported here.
"""

import tensorflow as tf
import tf_keras as keras

__all__ = ["keras", "tf"]
