"""Tabular self-supervision: tables in, preprocessing inside the model, SCARF and VIME on the shared base."""

import importlib

_EXPORTS = {
    "TabularPreprocessing": "preprocessing",
    "tabular_dataset": "data",
    "mlp_encoder": "encoders",
    "TabularEncoder": "encoders",
    "TabularClassifier": "classifier",
    "scarf_corruption": "corruption",
    "vime_corruption": "corruption",
    "TabularSSLModel": "methods",
    "SCARF": "methods",
    "VIME": "methods",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"keras_ssl.tabular.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'keras_ssl.tabular' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_EXPORTS})
