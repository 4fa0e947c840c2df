"""Class-id labels shared by the classifiers of every modality (images, tables, text): their checks, in
NumPy (:func:`check_labels`) and in the graph, and the training that uses them (:class:`ClassIdLabelsMixin`).
"""

from __future__ import annotations

import warnings
from typing import Any, Dict

import numpy as np

from keras_ssl.backend import keras, tf


def check_labels(y, num_classes: int) -> np.ndarray:
    """Validate array labels: integer class ids in ``[0, num_classes)``; warns when a class is absent."""
    y = np.asarray(y)
    if y.dtype.kind in "OUSb" or y.dtype.kind == "f":
        hint = ("map them to ids first, e.g. names, y = np.unique(y, return_inverse=True)"
                if y.dtype.kind in "OUS" else "cast integral values with y.astype('int64')")
        raise ValueError(f"Labels must be integer class ids 0..{num_classes - 1}; got dtype {y.dtype}: "
                         f"{hint}.")
    if y.ndim == 2 and y.shape[1] == num_classes and num_classes > 1:
        raise ValueError("Labels look one-hot [n, num_classes]; pass class ids instead: y.argmax(axis=1).")
    if y.ndim > 1 and not (y.ndim == 2 and y.shape[1] == 1):
        raise ValueError(f"Labels must have shape [n] (class ids); got {y.shape}.")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(
            f"Labels must lie in [0, {num_classes - 1}] for num_classes={num_classes}; got values from "
            f"{y.min()} to {y.max()}. Fix the labels or build the classifier with more classes."
        )
    missing = sorted(set(range(num_classes)) - set(np.unique(y).tolist()))
    if y.size and missing:
        warnings.warn(
            f"The labels contain no example of class(es) {missing[:20]} of {num_classes}: the classifier "
            "will not learn to predict them. Check the labels or the sampling.", UserWarning, stacklevel=3)
    return y


def asserted_class_ids(labels: tf.Tensor, num_classes: int, negative: str, too_large: str) -> tf.Tensor:
    """``labels`` (int tensor) asserted in ``[0, num_classes)`` in the graph, with the messages
    ``negative`` / ``too_large``. The result depends on the asserts, so an op that reads it (the
    cross-entropy kernel, with its own less helpful error) runs only after them, whatever the op order."""
    checks = [tf.debugging.assert_non_negative(labels, message=negative),
              tf.debugging.assert_less(labels, tf.constant(num_classes, labels.dtype), message=too_large)]
    with tf.control_dependencies(checks):
        return tf.identity(labels)


class ClassIdLabelsMixin:
    """Training of a ``keras.Model`` classifier on integer class ids ``0 .. num_classes - 1``.

    Put it before ``keras.Model`` in the bases (``class C(ClassIdLabelsMixin, keras.Model)``). The host
    sets ``num_classes`` and has ``set_encoder_frozen(frozen)`` (for :meth:`fit_lp_ft`); its ``call``
    returns logits ``[batch, num_classes]``. The mixin gives:

    * ``compile(optimizer)`` with sparse categorical cross-entropy (from logits) and accuracy by default;
    * ``fit``/``evaluate`` checks of array labels in NumPy (:func:`check_labels`) before Keras sees them;
    * in every train/test step, ``ValueError`` at trace time for a batch without labels or with
      non-integer labels, and in-graph asserts (``InvalidArgumentError``, ordered before the loss; XLA
      drops them) that the ids lie in ``[0, num_classes)``;
    * :meth:`fit_lp_ft`, probe then fine-tune (Kumar et al. 2022).

    ``missing_labels_message`` and ``label_dtype_hint`` (class attributes) say how to fix a batch without
    labels and non-integer labels for the host's modality.
    """

    missing_labels_message = "The classifier trains on (inputs, labels) batches; got inputs without labels."
    label_dtype_hint = "Cast them (tf.cast(y, tf.int64)) or map names to ids."

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs) -> None:
        """``compile(optimizer)``: loss and metrics default to sparse cross-entropy (logits) and accuracy."""
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True) if loss is None else loss
        if metrics is None:
            metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        # kept for fit_lp_ft; object.__setattr__ keeps Keras from tracking the metrics a second time
        object.__setattr__(self, "_compile_args", {"loss": loss, "metrics": metrics, **kwargs})
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def _checked(self, data):
        """``data`` with its labels cast to ``int64`` ``[batch]`` and asserted in range before use."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if y is None:
            raise ValueError(self.missing_labels_message)
        y = tf.convert_to_tensor(y)
        if not y.dtype.is_integer:
            raise ValueError(f"Labels must be integer class ids 0..{self.num_classes - 1}; got dtype "
                             f"{y.dtype.name}. {self.label_dtype_hint}")
        y = asserted_class_ids(tf.cast(y, tf.int64), self.num_classes, "Labels must be class ids >= 0.",
                               f"Labels must be class ids < num_classes={self.num_classes}.")
        return keras.utils.pack_x_y_sample_weight(x, y, sample_weight)

    def train_step(self, data):
        return super().train_step(self._checked(data))

    def test_step(self, data):
        return super().test_step(self._checked(data))

    def fit(self, x=None, y=None, *args, **kwargs):
        if y is not None:
            check_labels(y, self.num_classes)
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        if y is not None:
            check_labels(y, self.num_classes)
        return super().evaluate(x, y, *args, **kwargs)

    def fit_lp_ft(self, x, y=None, *, probe_epochs: int = 10, finetune_epochs: int = 10,
                  probe_learning_rate: float = 1e-2, finetune_learning_rate: float = 1e-4,
                  probe_optimizer=None, finetune_optimizer=None, **fit_kwargs) -> Dict[str, Any]:
        """LP-FT: train the head on the frozen encoder, then everything at a smaller learning rate.

        ``x``/``y`` and ``fit_kwargs`` (``batch_size``, ``validation_data``, ``callbacks``, ...) go to
        both ``fit`` calls. The optimizers default to Adam at ``probe_learning_rate`` and
        ``finetune_learning_rate``. The loss and metrics of the last ``compile`` (or the defaults)
        are kept. Afterwards the encoder is unfrozen and the model is compiled for further fine-tuning.
        Returns ``{"probe": History, "finetune": History}`` (``None`` for a phase of 0 epochs).

        Batch norm: the probe runs the frozen encoder's BN in inference mode (moving statistics); the
        fine-tuning phase switches it to batch statistics unless ImageClassifier was built with
        ``freeze_batchnorm=True``. Pass that when the moving statistics were not computed on data like
        yours (a random-init or other-domain encoder), or the head fitted in the probe meets different
        features (MNIST, random init, ten labels per class: 0.526 without, 0.753 with; docs/results.md).
        """
        compile_args = dict(getattr(self, "_compile_args", {}))
        histories = {}
        for phase, frozen, epochs, optimizer, rate in (
                ("probe", True, probe_epochs, probe_optimizer, probe_learning_rate),
                ("finetune", False, finetune_epochs, finetune_optimizer, finetune_learning_rate)):
            self.set_encoder_frozen(frozen)
            self.compile(optimizer=optimizer or keras.optimizers.Adam(rate), **compile_args)
            histories[phase] = self.fit(x, y, epochs=epochs, **fit_kwargs) if epochs else None
        return histories
