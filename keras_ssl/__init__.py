"""keras_ssl: self-supervised learning for TensorFlow/Keras, masked-language modelling first."""

from keras_ssl import augment, distribute, evaluation, export, losses, optimizers, text, training, vision  # noqa: E402
from keras_ssl.backend import keras, tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS first)
from keras_ssl.export import export_saved_model

__version__ = "0.1.0"

__all__ = [
    "augment", "distribute", "evaluation", "export", "losses", "optimizers", "text", "training", "vision",
    "export_saved_model",
    "__version__",
]
