"""keras_ssl: self-supervised learning for TensorFlow/Keras, masked-language modelling first.

``import keras_ssl`` is light: TensorFlow is imported with the first use of a subpackage
(``keras_ssl.text``, ``keras_ssl.vision``, ...), ``keras_ssl.keras``/``keras_ssl.tf`` or
``export_saved_model``, so the command line answers ``--help`` at once and can quiet TensorFlow's
start-up logs (:mod:`keras_ssl.quiet`) before it is imported.
"""

import importlib
import os
import platform
import sys

# TensorFlow's start-up options, set before anyone imports TensorFlow or transformers (every keras_ssl
# module imports this package first). Hugging Face's TensorFlow models are ``tf_keras`` models, so
# keras_ssl uses ``tf_keras`` (Keras 2) everywhere: ``TF_USE_LEGACY_KERAS`` makes ``tf.keras`` and
# transformers agree on that choice. oneDNN CPU kernels: TensorFlow switches them on by default only on
# CPUs with AVX-512/AMX; on other x86-64 CPUs keras_ssl switches them on too (``TF_ENABLE_ONEDNN_OPTS=1``;
# ResNet-18 trained ~1.6x faster on an AVX2 CPU, benchmarks/vision_throughput.py). Set
# ``TF_ENABLE_ONEDNN_OPTS=0`` before importing keras_ssl to keep TensorFlow's default. Their fused
# batch-norm + ReLU maps NaN to 0, so a NaN may show only in the gradients: the shared train step checks
# those too (keras_ssl.training.NonFiniteLossError). TensorFlow reads these variables once, when it is
# imported; if it was imported first, nothing changes.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if "tensorflow" not in sys.modules and platform.machine().lower() in ("x86_64", "amd64"):
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"

_SUBPACKAGES = ("augment", "datasets", "distribute", "evaluation", "export", "losses", "optimizers",
                "tabular", "text", "training", "vision")
_FROM = {"keras": "keras_ssl.backend", "tf": "keras_ssl.backend", "export_saved_model": "keras_ssl.export",
         "performance_defaults": "keras_ssl.performance"}

__all__ = [*_SUBPACKAGES, "export_saved_model", "performance_defaults", "__version__"]


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"keras_ssl.{name}")
    if name in _FROM:
        return getattr(importlib.import_module(_FROM[name]), name)
    raise AttributeError(f"module 'keras_ssl' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_SUBPACKAGES, *_FROM})
