"""The MNIST payoff protocol: does self-supervised pretraining pay off when labels are few?

:func:`pretrain_on_mnist` pretrains a vision method on the *unlabelled* MNIST training images (a
seeded subset of ``images`` of the 60,000) with its
:data:`~keras_ssl.evaluation.digits_protocol.DIGITS_RECIPES` settings, on :func:`mnist_encoder`: the
digits recipes' encoder (:data:`~keras_ssl.evaluation.digits_protocol.DIGITS_ENCODER`, four stride-2
blocks, 128 features) at MNIST's native 28x28 (no resize; each feature still sees the whole digit) with
``augment.digits(28)`` views.

:func:`mnist_payoff` then trains an :class:`~keras_ssl.vision.ImageClassifier` on 1, 10 and 100
labels per class (:func:`mnist_labels`, from the *training* set only) with one fixed recipe
(:data:`MNIST_CLASSIFIER`), both as a linear probe (frozen encoder) and fine-tuned (everything
trains), and measures accuracy on the 10,000 test images. The same recipe runs on the random-init
encoder ``mnist_encoder(seed)``, the very weights pretraining starts from; its fine-tuned rows are
the supervised-only baseline (the same architecture trained from scratch on the same labels).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from keras_ssl.datasets import few_labels
from keras_ssl.evaluation.digits_protocol import DIGITS_RECIPES, digits_encoder, pretrain_on_digits

#: MNIST's side in pixels; the encoder runs at it (no resize).
MNIST_IMAGE_SIZE = 28

#: The default pretraining budget, sized for 2 CPU cores (SimCLR: 1,400 steps of 64, about 110 CPU
#: seconds): unlabelled training images used and epochs over them (batch size and learning rate are
#: the method's :data:`DIGITS_RECIPES` ones).
MNIST_PRETRAIN = {"images": 12_800, "epochs": 7}

#: The classifier recipe, the same for pretrained and random-init encoders: Adam for ``steps``
#: steps of ``batch_size`` (fewer when fewer labels: the whole label set) at ``probe_learning_rate``
#: (linear probe, frozen encoder) or ``finetune_learning_rate`` (everything trains). LP-FT (Kumar et
#: al., 2022) runs the probe's ``steps``, then ``steps`` more of everything at
#: ``lp_ft_learning_rate`` (``ImageClassifier.fit_lp_ft``). ``freeze_batchnorm``: the encoder's batch
#: norm stays in inference mode while everything else trains. No augmentation.
MNIST_CLASSIFIER = {"steps": 300, "batch_size": 64, "probe_learning_rate": 1e-2,
                    "finetune_learning_rate": 1e-3, "lp_ft_learning_rate": 1e-4, "freeze_batchnorm": False}

#: How :func:`classifier_accuracy` trains: the linear probe (frozen encoder), fine-tuning everything
#: from a fresh head, or LP-FT (the probe, then everything at a smaller learning rate).
CLASSIFIER_MODES = ("probe", "finetune", "lp_ft")

#: The label budgets (labels per class) of the protocol.
MNIST_SHOTS = (1, 10, 100)


def mnist_encoder(seed: int = 0):
    """The protocol's encoder ``[batch, 28, 28, 1] -> [batch, 128]``, drawn after ``set_random_seed(seed)``.

    The same weights as ``digits_encoder(seed, 28)``: what :func:`pretrain_on_mnist` starts from.
    """
    return digits_encoder(seed, image_size=MNIST_IMAGE_SIZE)


def mnist_labels(data: Mapping[str, np.ndarray], per_class: int,
                 seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """``per_class`` labelled training images of each class: ``(x [10 k, 28, 28, 1], y [10 k])``.

    Reads only ``data["train_x"]`` and ``data["train_y"]`` (:func:`~keras_ssl.datasets.few_labels`).
    """
    return few_labels(data["train_x"], data["train_y"], per_class, seed=seed)


def pretrain_on_mnist(method: str, data: Mapping[str, np.ndarray], images: Optional[int] = None,
                      epochs: Optional[int] = None, seed: int = 0, verbose: int = 0, **overrides):
    """Pretrain ``method`` on ``images`` unlabelled training images (a seeded subset; labels unused).

    Defaults: :data:`MNIST_PRETRAIN`; ``overrides`` replace :data:`DIGITS_RECIPES` entries. The
    encoder starts as ``mnist_encoder(seed)``. Returns the trained model (``model.encoder``).
    """
    images = MNIST_PRETRAIN["images"] if images is None else int(images)
    epochs = MNIST_PRETRAIN["epochs"] if epochs is None else int(epochs)
    train_x = data["train_x"]
    subset = np.sort(np.random.default_rng(seed).permutation(len(train_x))[:images])
    return pretrain_on_digits(method, {"train_x": train_x[subset]}, epochs=epochs, seed=seed,
                              verbose=verbose, **overrides)


def _copy(encoder):
    from keras_ssl.backend import keras

    clone = keras.models.clone_model(encoder)
    clone.set_weights(encoder.get_weights())
    return clone


def classifier_accuracy(encoder, train: Tuple[np.ndarray, np.ndarray], test: Tuple[np.ndarray, np.ndarray],
                        mode: str = "probe", seed: int = 0, **recipe: Any) -> float:
    """Test accuracy of an ``ImageClassifier`` trained on ``train`` with :data:`MNIST_CLASSIFIER`.

    ``train``/``test`` are ``(uint8 images [n, 28, 28, 1], labels [n])``. ``mode``: one of
    :data:`CLASSIFIER_MODES`. Trains a copy of ``encoder``; ``encoder`` itself is untouched.
    ``recipe`` replaces :data:`MNIST_CLASSIFIER` entries.
    """
    from keras_ssl.backend import keras, tf
    from keras_ssl.vision import ImageClassifier

    if mode not in CLASSIFIER_MODES:
        raise ValueError(f"Unknown mode {mode!r}; choose one of {CLASSIFIER_MODES}.")
    r = {**MNIST_CLASSIFIER, **recipe}
    x, y = train
    keras.utils.set_random_seed(seed)
    model = ImageClassifier(_copy(encoder), num_classes=10, freeze_encoder=mode == "probe",
                            freeze_batchnorm=bool(r["freeze_batchnorm"]))
    batch = min(int(r["batch_size"]), len(y))
    dataset = (tf.data.Dataset.from_tensor_slices((x, y)).repeat().shuffle(len(y), seed=seed)
               .batch(batch, drop_remainder=True))
    steps = int(r["steps"])
    if mode == "lp_ft":
        model.fit_lp_ft(dataset, steps_per_epoch=steps, probe_epochs=1, finetune_epochs=1,
                        probe_learning_rate=r["probe_learning_rate"],
                        finetune_learning_rate=r["lp_ft_learning_rate"], verbose=0)
    else:
        rate = r["finetune_learning_rate"] if mode == "finetune" else r["probe_learning_rate"]
        model.compile(optimizer=keras.optimizers.Adam(rate))
        model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    return float(model.evaluate(test[0], test[1], batch_size=500, verbose=0, return_dict=True)["accuracy"])


def encoder_payoff(encoder, data: Mapping[str, np.ndarray], shots: Sequence[int] = MNIST_SHOTS,
                   seed: int = 0, test_size: Optional[int] = None,
                   modes: Sequence[str] = ("probe", "finetune"), **recipe: Any) -> Dict[str, float]:
    """``{"{mode}_{k}": accuracy}`` for each ``k`` in ``shots`` labels per class and each of ``modes``.

    Labels: ``mnist_labels(data, k, seed)``; test: the first ``test_size`` (default all) test images.
    """
    test = (data["test_x"][:test_size], data["test_y"][:test_size])
    out = {}
    for k in shots:
        train = mnist_labels(data, k, seed=seed)
        for mode in modes:
            out[f"{mode}_{k}"] = classifier_accuracy(encoder, train, test, mode, seed, **recipe)
    return out


def mnist_payoff(method: str, data: Mapping[str, np.ndarray], seed: int = 0,
                 shots: Sequence[int] = MNIST_SHOTS, images: Optional[int] = None,
                 epochs: Optional[int] = None, test_size: Optional[int] = None,
                 classifier: Optional[Dict[str, Any]] = None,
                 modes: Sequence[str] = ("probe", "finetune"), **overrides) -> Dict[str, Any]:
    """Pretrain ``method`` (:func:`pretrain_on_mnist`), then :func:`encoder_payoff` of it and of random init.

    Returns ``{"pretrained": {...}, "random_init": {...}, "pretrain": {images, epochs, batch_size,
    wall_s, cpu_s, first_loss, last_loss}}``; ``random_init["finetune_{k}"]`` is supervised-only.
    """
    import time

    classifier = classifier or {}
    cpu, wall = time.process_time(), time.perf_counter()
    model = pretrain_on_mnist(method, data, images=images, epochs=epochs, seed=seed, **overrides)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    losses = model.history.history["loss"]
    n = min(MNIST_PRETRAIN["images"] if images is None else int(images), len(data["train_x"]))
    return {
        "pretrained": encoder_payoff(model.encoder, data, shots, seed, test_size, modes, **classifier),
        "random_init": encoder_payoff(mnist_encoder(seed), data, shots, seed, test_size, modes, **classifier),
        "pretrain": {"images": n, "epochs": len(losses),
                     "batch_size": {**DIGITS_RECIPES[method], **overrides}["batch_size"],
                     "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
                     "first_loss": float(losses[0]), "last_loss": float(losses[-1])},
    }


__all__ = ["CLASSIFIER_MODES", "MNIST_CLASSIFIER", "MNIST_IMAGE_SIZE", "MNIST_PRETRAIN", "MNIST_SHOTS",
           "classifier_accuracy", "encoder_payoff", "mnist_encoder", "mnist_labels", "mnist_payoff",
           "pretrain_on_mnist"]
