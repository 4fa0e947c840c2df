"""The digits protocol: measures where learned representations matter, not where pixels suffice.

A random-init CNN already reaches ~97 % with a 1,000-label linear probe on digits, so that number
alone cannot show learning. :func:`digits_report` adds two harder measures: 1-NN (cosine) with 5
labels per class, and the 1,000-label probe evaluated on test digits shifted by up to 4 pixels.

:func:`pretrain_on_digits` pretrains each vision method of :data:`DIGITS_RECIPES` on the digits with settings
tuned for them (:data:`DIGITS_RECIPES`), on :func:`digits_encoder`; the random-init baseline is
:func:`digits_encoder` with the same seed, i.e. the very weights that pretraining starts from.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

import numpy as np

from keras_ssl.datasets import few_labels, shift_images
from keras_ssl.evaluation.features import extract_features
from keras_ssl.evaluation.knn import knn_accuracy_from_features
from keras_ssl.evaluation.linear_probe import linear_probe


def digits_report(encoder: Optional[Callable], data: Dict[str, np.ndarray], shots: int = 5,
                  max_shift: int = 4, seed: int = 0) -> Dict[str, float]:
    """``probe``, ``probe_shifted`` and ``nn_{shots}shot`` accuracies of ``encoder`` on :func:`digits` data.

    ``encoder=None`` measures raw pixels.
    """
    def features(x):
        if encoder is None:
            return x.reshape(len(x), -1).astype(np.float32)
        return extract_features(encoder, (x, np.zeros(len(x), np.int64)))[0]

    train_f, test_f = features(data["train_x"]), features(data["test_x"])
    shifted_f = features(shift_images(data["test_x"], max_shift, seed=seed))
    ytr, yte = data["train_y"], data["test_y"]
    probe = linear_probe(None, (train_f, ytr), (test_f, yte), max_iter=2000)["accuracy"]
    probe_shifted = linear_probe(None, (train_f, ytr), (shifted_f, yte), max_iter=2000)["accuracy"]
    few_x, few_y = few_labels(train_f, ytr, shots, seed=seed)
    nn = knn_accuracy_from_features(few_x, few_y, test_f, yte, k=1)
    return {"probe": probe, "probe_shifted": probe_shifted, f"nn_{shots}shot": nn}


#: The encoder of the digits recipes: :func:`~keras_ssl.vision.backbones.small_cnn` of width 16 with
#: four stride-2 blocks (16-32-64-128 filters, 128 features). Each feature sees 31x31 pixels, the
#: whole digit; the default three blocks (strides 1, 2, 2) see 9x9 pixels, stroke fragments whose
#: average cannot tell the digits apart by shape.
DIGITS_ENCODER = {"width": 16, "strides": (2, 2, 2, 2)}

#: Per-method settings: ``epochs``, ``batch_size``, Adam ``learning_rate``, head sizes and the
#: method's hyperparameters; all use the :func:`keras_ssl.augment.digits` views. Heads are small
#: (the encoder has 128 features); SimSiam, Barlow Twins and VICReg use 2-layer projectors (the
#: papers' CIFAR setting for SimSiam). Two departures from the papers, each needed here: BYOL's
#: target follows with a constant momentum of 0.9 (0.99 or 0.996 learns too slowly in 300 steps),
#: and MoCo's head has batch norm (MoCo v3's choice; MoCo v2's BN-free head learned little here
#: and collapsed with momentum 0.9).
DIGITS_RECIPES: Dict[str, Dict[str, Any]] = {
    "simclr": {"epochs": 20, "batch_size": 64, "learning_rate": 3e-3, "temperature": 0.2,
               "hidden_dim": 256, "output_dim": 64},
    "moco": {"epochs": 20, "batch_size": 64, "learning_rate": 3e-3, "temperature": 0.2,
             "hidden_dim": 256, "output_dim": 64, "queue_size": 1024, "momentum": 0.99,
             "head_batchnorm": True},
    "byol": {"epochs": 20, "batch_size": 64, "learning_rate": 3e-3, "hidden_dim": 256,
             "output_dim": 64, "momentum": 0.9},
    "simsiam": {"epochs": 20, "batch_size": 64, "learning_rate": 3e-3, "output_dim": 128,
                "pred_hidden_dim": 64},
    "barlow_twins": {"epochs": 20, "batch_size": 64, "learning_rate": 3e-3, "output_dim": 256},
    "vicreg": {"epochs": 20, "batch_size": 64, "learning_rate": 3e-3, "output_dim": 256},
    # Single-image pretexts, no two-view augmentation (seed 0, shifted probe / 1-NN): the autoencoder
    # rebuilds each digit from its patch-masked copy (half of the 4x4 patches: 0.686 / 0.859 with a
    # decoder of width 32; Gaussian noise 0.3: 0.657 / 0.876; no corruption: 0.624 / 0.871; BCE loss:
    # 0.637 / 0.838); a decoder of width 8 (0.673 / 0.870) costs a quarter of width 32's time. RotNet
    # classifies the 4 rotations of every digit, translated by up to 4 px first (without: the pretext
    # is solved at 99.9 % and the features stay at random init's level, 0.552 / 0.804).
    "autoencoder": {"epochs": 20, "batch_size": 64, "learning_rate": 3e-3, "corruption": "patches",
                    "patch_size": 4, "mask_ratio": 0.5, "decoder_width": 8},
    "rotation": {"epochs": 20, "batch_size": 64, "learning_rate": 3e-3, "hidden_dim": 128,
                 "max_shift": 4},
}

#: Display names, in the order of the README table.
DIGITS_METHOD_NAMES = {"simclr": "SimCLR", "moco": "MoCo v2", "byol": "BYOL", "simsiam": "SimSiam",
                       "barlow_twins": "Barlow Twins", "vicreg": "VICReg",
                       "autoencoder": "Denoising autoencoder", "rotation": "RotNet"}


def digits_encoder(seed: int = 0, image_size: int = 32):
    """The recipes' encoder (:data:`DIGITS_ENCODER`), its weights drawn after ``set_random_seed(seed)``."""
    from keras_ssl.backend import keras
    from keras_ssl.vision.backbones import small_cnn

    keras.utils.set_random_seed(seed)
    return small_cnn((image_size, image_size, 1), width=DIGITS_ENCODER["width"],
                     strides=DIGITS_ENCODER["strides"], name="digits_cnn")


def build_digits_method(method: str, encoder, seed: int = 0, image_size: int = 32, **overrides):
    """An uncompiled ``vision`` model of ``method`` (a :data:`DIGITS_RECIPES` key) around ``encoder``,
    with ``augment.digits(image_size, seed=seed)`` views (two-view methods) or the recipe's corruption
    or rotations (single-image pretexts). ``overrides`` replace recipe entries.
    """
    from keras_ssl import augment, vision
    from keras_ssl.vision import heads as H

    if method not in DIGITS_RECIPES:
        raise ValueError(f"Unknown method {method!r}; choose from {sorted(DIGITS_RECIPES)}.")
    r = {**DIGITS_RECIPES[method], **overrides}
    if method == "autoencoder":
        corruption = (augment.PatchMasking(r["patch_size"], r["mask_ratio"], seed=seed)
                      if r["corruption"] == "patches" else augment.corruption(r["corruption"], seed=seed))
        return vision.Autoencoder(encoder, corruption=corruption, decoder_width=r["decoder_width"])
    if method == "rotation":
        shift = augment.RandomTranslate(r["max_shift"], seed=seed) if r["max_shift"] else None
        return vision.RotationPrediction(encoder, augment=shift, head=H.rotation_head(r["hidden_dim"]))
    views = augment.digits(image_size, seed=seed)
    if method == "simclr":
        return vision.SimCLR(encoder, views, temperature=r["temperature"],
                             projection=H.simclr_projection(r["output_dim"], r["hidden_dim"]))
    if method == "moco":
        return vision.MoCo(encoder, views, queue_size=r["queue_size"], momentum=r["momentum"],
                           temperature=r["temperature"],
                           projection=H.moco_projection(r["hidden_dim"], r["output_dim"],
                                                        batchnorm=r["head_batchnorm"]))
    if method == "byol":
        return vision.BYOL(encoder, views, momentum=r["momentum"],  # constant: no cosine schedule
                           projection=H.byol_projection(r["hidden_dim"], r["output_dim"]),
                           prediction=H.byol_prediction(r["hidden_dim"], r["output_dim"]))
    if method == "simsiam":
        return vision.SimSiam(encoder, views, projection=H.simsiam_projection(r["output_dim"], num_layers=2),
                              prediction=H.simsiam_prediction(r["pred_hidden_dim"], r["output_dim"]))
    if method == "barlow_twins":
        return vision.BarlowTwins(encoder, views,
                                  projection=H.barlow_projection(r["output_dim"], num_layers=2))
    return vision.VICReg(encoder, views, projection=H.vicreg_projection(r["output_dim"], num_layers=2))


def pretrain_on_digits(method: str, data: Dict[str, np.ndarray], epochs: Optional[int] = None,
                       seed: int = 0, verbose: int = 0, **overrides):
    """Pretrain ``method`` on ``data["train_x"]`` (labels unused) with its :data:`DIGITS_RECIPES` settings.

    The encoder is ``digits_encoder(seed)``: compare with that as the random-init baseline.
    ``epochs`` (default: the recipe's) and ``overrides`` replace recipe entries. Returns the trained
    model; ``model.encoder`` is the encoder and ``model.history.history["loss"]`` the epoch losses.
    """
    from keras_ssl.backend import keras, tf

    recipe = {**DIGITS_RECIPES[method], **overrides}
    epochs = recipe["epochs"] if epochs is None else int(epochs)
    batch_size = recipe["batch_size"]
    images = data["train_x"]
    model = build_digits_method(method, digits_encoder(seed, images.shape[1]), seed=seed,
                                image_size=images.shape[1], **overrides)
    model.compile(optimizer=keras.optimizers.Adam(recipe["learning_rate"]), jit_compile=True)
    dataset = (tf.data.Dataset.from_tensor_slices(images).shuffle(len(images), seed=seed)
               .batch(batch_size, drop_remainder=True))
    model.fit(dataset, epochs=epochs, verbose=verbose)
    return model


__all__ = ["DIGITS_ENCODER", "DIGITS_METHOD_NAMES", "DIGITS_RECIPES", "build_digits_method",
           "digits_encoder", "digits_report", "pretrain_on_digits"]
