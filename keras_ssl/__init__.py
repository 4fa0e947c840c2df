"""keras_ssl: self-supervised learning for TensorFlow/Keras, masked-language modelling first."""

from keras_ssl import augment, distribute, evaluation, losses, optimizers, text, training, vision  # noqa: E402
from keras_ssl.backend import keras, tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS first)

__version__ = "0.1.0"

__all__ = [
    "augment", "distribute", "evaluation", "losses", "optimizers", "text", "training", "vision",
    "__version__",
]
