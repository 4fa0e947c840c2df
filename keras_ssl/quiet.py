"""Quiet logs for the command line: TensorFlow's and transformers' noise off, keras_ssl's warnings on.

``quiet()`` must run before TensorFlow is imported. TensorFlow 2.21 prints its start-up lines
("All log messages before absl::InitializeLog() ...", "oneDNN custom operations are on", "Could not
find cuda drivers", twice each) through absl's C++ logging, which ``TF_CPP_MIN_LOG_LEVEL`` does not
reach, so ``quiet()`` imports TensorFlow itself (through :mod:`keras_ssl.backend`) with file
descriptor 2 captured, then writes back every captured line that is not known noise. After that it
sets ``TF_CPP_MIN_LOG_LEVEL=3`` (TensorFlow's later C++ logs), transformers' verbosity to error (its
"TensorFlow and JAX classes are deprecated" and "Some weights of the PyTorch model were not used"
messages) and the TensorFlow/absl Python loggers to ERROR. The ``keras_ssl`` logger keeps its
warnings (a fresh MLM head, undecodable bytes replaced) on a plain stderr handler.

Only stdlib imports at module level: ``keras_ssl/cli/_serve.py`` loads this file by path, without
importing keras_ssl.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import tempfile
import warnings
from typing import Iterator

#: Substrings of the stderr lines dropped while TensorFlow is imported.
NOISE = (
    "All log messages before absl::InitializeLog() is called",
    "oneDNN custom operations are on",
    "Could not find cuda drivers",
    "cudart_stub.cc",
    "cpu_feature_guard.cc",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions:",
    "failed call to cuInit",
    "Unable to register cuDNN factory",
    "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory",
    "computation_placer.cc",
    "TF-TRT Warning",
)


def is_noise(line: str) -> bool:
    """Whether ``line`` is one of TensorFlow's start-up log lines (see :data:`NOISE`)."""
    return any(marker in line for marker in NOISE)


def set_quiet_environment() -> None:
    """Environment variables TensorFlow and transformers read when imported (no effect afterwards)."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Capture file descriptor 2 (C++ logs included); on exit, write back the lines that are not noise."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", "replace")
            kept = "".join(line for line in text.splitlines(keepends=True) if not is_noise(line))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


def quiet_python_logs() -> None:
    """After import: transformers at error, TensorFlow/absl at ERROR, keras_ssl warnings on stderr."""
    warnings.filterwarnings("ignore", message=".*TensorFlow and JAX classes are deprecated.*")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers(\.|$)")
    if "transformers" in sys.modules:
        sys.modules["transformers"].logging.set_verbosity_error()
    for name in ("tensorflow", "absl", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if "absl.logging" in sys.modules:
        sys.modules["absl.logging"].set_verbosity("error")
    if "tensorflow" in sys.modules:
        sys.modules["tensorflow"].get_logger().setLevel(logging.ERROR)
        sys.modules["tensorflow"].autograph.set_verbosity(0)
    ours = logging.getLogger("keras_ssl")
    if not ours.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        ours.addHandler(handler)
        ours.propagate = False  # absl's root handler would print it again, in its own format
    if ours.level == logging.NOTSET or ours.level > logging.WARNING:
        ours.setLevel(logging.WARNING)


def quiet(verbose: bool = False) -> None:
    """Silence TensorFlow's and transformers' informational noise; keep keras_ssl's warnings.

    Call it before TensorFlow is imported (it imports TensorFlow and tf_keras, through
    :mod:`keras_ssl.backend`, with stderr filtered). Called later, it can no longer hide the
    start-up lines but still quiets the Python loggers. ``verbose=True`` changes nothing.
    """
    if verbose:
        return
    set_quiet_environment()
    if "tensorflow" not in sys.modules:
        with filtered_stderr():
            importlib.import_module("keras_ssl.backend")
            import tensorflow as tf

            tf.config.list_logical_devices()  # device start-up logs (cuInit) while still filtered
    quiet_python_logs()
