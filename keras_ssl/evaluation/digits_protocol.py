"""The digits protocol: measures where learned representations matter, not where pixels suffice.

A random-init CNN already reaches ~97 % with a 1,000-label linear probe on digits, so that number
alone cannot show learning. :func:`digits_report` adds two harder measures: 1-NN (cosine) with 5
labels per class, and the 1,000-label probe evaluated on test digits shifted by up to 4 pixels.

:func:`pretrain_on_digits` pretrains each vision method of :data:`DIGITS_RECIPES` on the digits with settings
tuned for them (:data:`DIGITS_RECIPES`), on :func:`digits_encoder`; the random-init baseline is
:func:`digits_encoder` with the same seed, i.e. the very weights that pretraining starts from.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

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
    # Jigsaw: a 3x3 grid of 10-px cells, 6-px tiles (the paper's 64 of 75 px, 8 here, left more edge
    # continuity), 100 permutations, per-tile normalisation. Seed 0 (shifted probe / 1-NN; random init
    # 0.575 / 0.787): 6-px tiles 0.580 / 0.819; 8-px tiles 0.572 / 0.795, without normalisation 0.464 /
    # 0.747, 2x2 grid 0.540 / 0.754, digits translated by up to 4 px first 0.546 / 0.788; 1,000
    # permutations with 2 px shifts 0.527 / 0.750. The puzzles are solved (~85 %), but over seeds 0, 1, 2
    # the features are no better than random init (shifted probe 0.537 +- 0.033 against 0.598, 1-NN
    # 0.790 against 0.794): a digit's tiles are mostly blank (docs/vision.md).
    "jigsaw": {"epochs": 20, "batch_size": 64, "learning_rate": 3e-3, "grid": 3, "num_permutations": 100,
               "hidden_dim": 128, "normalize_tiles": True, "max_shift": 0, "tile_size": 6},
    # Multi-crop (SwAV, DINO) and nearest-neighbour (NNCLR) methods. Their views are digits views
    # (augment.digits: crop, stroke, shift, intensity, blur; no flips or colour), not the papers'
    # ImageNet distortions (digits_multi_crop): global crops of 32 px at scale `global_scale`, local
    # crops of 16 px at `local_scale` (the papers' 0.05-0.14 / 0.05-0.4 of a digit are stroke
    # fragments); the encoder is built for any input size (digits_encoder(seed, None), the same weights).
    # SwAV: 100 prototypes (10x the classes; paper 3000), projection 256 -> 64, prototypes frozen for
    # the first epoch (15 steps, as the paper's 313 at batch 4096), Sinkhorn epsilon 0.02 (paper 0.05)
    # and no local crops (the paper's 2x224 baseline). With epsilon 0.05 the loss stalled at ln 100 as
    # soon as 4 local crops of 16 px were added (1-NN 0.588 against random init's 0.787, seed 0; also
    # with a queue of 512 or lr 5e-4), and on MNIST without them: this small CNN's projections differ
    # little at first (scores spread ~0.06), so the codes came out nearly uniform and uniform
    # predictions fit them. With 0.02 (seed 0, shifted probe / 1-NN): global crops only 0.873 / 0.864,
    # plus 4 local crops 0.841 / 0.876 at twice the cost; epsilon 0.05 without local crops 0.834 / 0.880.
    # DINO: out_dim 256 (paper 65,536), head 256 -> 64 bottleneck with he_normal hidden layers (the
    # paper's std 0.02 shrinks a 256-wide head's signal), teacher momentum 0.99 raised to 1 by the
    # cosine schedule over the run, last layer frozen for the first epoch, gradient clipping 3.0,
    # teacher temperature 0.02 (paper 0.04), Adam 1e-3, 60 epochs (900 steps). DINO starts slowly
    # here: for ~10 epochs its loss climbs to ln 256 as the teacher drifts towards uniform
    # (teacher_entropy ~0.94), then it escapes and keeps falling (seed 0: 5.50 at epoch 11, 3.47 at
    # epoch 60). The escape needs a teacher that still moves: with 20 epochs the cosine schedule had
    # raised the momentum above 0.996 by epoch 12 and the loss stayed at ln 256 to the end, whereas the
    # same 20 epochs on the 60-epoch schedule escaped (5.13 at epoch 20). Seed 0 (shifted probe /
    # 1-NN; random init 0.575 / 0.787): 20 epochs 0.646 / 0.814, 40 epochs 0.740 / 0.837, 60 epochs
    # 0.803 / 0.843. With teacher temperature 0.04, momentum 0.9 and Adam 3e-3 or 5e-4, with or
    # without local crops or a BN head, 20-epoch runs collapsed (1-NN 0.41-0.72); AdamW (weight decay
    # 0.04, warm-up + cosine learning rate) did not help (20 epochs: 0.606 / 0.785).
    # NNCLR: support set of 512 (8 batches; the paper's 98,304 is 24 batches of 4096), 3-layer
    # projector 256 -> 64, predictor 256 -> 64, temperature 0.1 (paper).
    "swav": {"epochs": 20, "batch_size": 64, "learning_rate": 3e-3, "num_prototypes": 100,
             "hidden_dim": 256, "output_dim": 64, "temperature": 0.1, "epsilon": 0.02,
             "queue_size": 0, "freeze_prototypes_steps": 15, "num_local": 0,
             "global_scale": (0.5, 1.0), "local_scale": (0.2, 0.5)},
    "dino": {"epochs": 60, "batch_size": 64, "learning_rate": 1e-3, "out_dim": 256, "hidden_dim": 256,
             "bottleneck_dim": 64, "head_initializer": "he_normal", "head_batchnorm": False,
             "head_norm_last_layer": True,
             "teacher_temperature": 0.02, "student_temperature": 0.1, "center_momentum": 0.9,
             "momentum": 0.99, "freeze_last_layer_steps": 15, "clip_norm": 3.0,
             "num_local": 4, "global_scale": (0.5, 1.0), "local_scale": (0.2, 0.5)},
    "nnclr": {"epochs": 20, "batch_size": 64, "learning_rate": 3e-3, "temperature": 0.1,
              "hidden_dim": 256, "output_dim": 64, "queue_size": 512},
}

#: The methods that take multi-crop views (:class:`~keras_ssl.augment.MultiCrop`): their encoder is
#: ``digits_encoder(seed, image_size=None)``.
MULTI_CROP_METHODS = ("swav", "dino")
#: The methods whose encoder is ``digits_encoder(seed, image_size=None)``: multi-crop views, jigsaw tiles.
ANY_SIZE_METHODS = MULTI_CROP_METHODS + ("jigsaw",)

#: Display names, in the order of the README table.
DIGITS_METHOD_NAMES = {"simclr": "SimCLR", "moco": "MoCo v2", "byol": "BYOL", "simsiam": "SimSiam",
                       "barlow_twins": "Barlow Twins", "vicreg": "VICReg",
                       "autoencoder": "Denoising autoencoder", "rotation": "RotNet", "jigsaw": "Jigsaw",
                       "swav": "SwAV", "dino": "DINO", "nnclr": "NNCLR"}


def digits_encoder(seed: int = 0, image_size: Optional[int] = 32):
    """The recipes' encoder (:data:`DIGITS_ENCODER`), its weights drawn after ``set_random_seed(seed)``.

    ``image_size=None`` builds it for any input size ``[batch, H, W, 1]`` (multi-crop methods); its
    weights are those of the fixed-size encoder of the same ``seed``.
    """
    from keras_ssl.backend import keras
    from keras_ssl.vision.backbones import small_cnn

    if image_size is not None and (not isinstance(image_size, (int, np.integer)) or image_size < 1):
        raise ValueError(f"image_size must be a positive int or None (any size), got {image_size!r}.")
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
    if method == "jigsaw":
        shift = augment.RandomTranslate(r["max_shift"], seed=seed) if r["max_shift"] else None
        return vision.Jigsaw(encoder, augment=shift, grid=r["grid"], num_permutations=r["num_permutations"],
                             normalize_tiles=r["normalize_tiles"], seed=seed, tile_size=r["tile_size"],
                             head=H.jigsaw_head(r["num_permutations"], r["hidden_dim"]))
    if method in MULTI_CROP_METHODS:
        return _multi_crop_method(method, encoder, r, seed, image_size)
    views = augment.digits(image_size, seed=seed)
    if method == "nnclr":
        return vision.NNCLR(encoder, views, queue_size=r["queue_size"], temperature=r["temperature"],
                            projection=H.nnclr_projection(r["hidden_dim"], r["output_dim"]),
                            prediction=H.nnclr_prediction(r["hidden_dim"], r["output_dim"]))
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


def digits_multi_crop(image_size: int = 32, num_local: int = 4,
                      global_scale: Tuple[float, float] = (0.5, 1.0),
                      local_scale: Tuple[float, float] = (0.2, 0.5), seed: int = 0):
    """Multi-crop views of digits: 2 global ``[B, S, S, 1]`` and ``num_local`` local ``[B, S/2, S/2, 1]``
    :func:`keras_ssl.augment.digits` views (local crops shifted by at most 2 px), each with its own seeds.
    """
    from keras_ssl import augment

    local_size = image_size // 2
    globals_ = [augment.digits(image_size, scale=global_scale, seed=seed * 100 + i) for i in range(2)]
    locals_ = [augment.digits(local_size, scale=local_scale, max_shift=2, seed=seed * 100 + 2 + i)
               for i in range(num_local)]
    return augment.MultiCrop(globals_, locals_, num_global=2, num_local=num_local,
                             global_size=image_size, local_size=local_size, name="digits_multi_crop")


def _multi_crop_method(method: str, encoder, r: Dict[str, Any], seed: int, image_size: int):
    from keras_ssl import vision
    from keras_ssl.vision import heads as H

    views = digits_multi_crop(image_size, r["num_local"], tuple(r["global_scale"]), tuple(r["local_scale"]),
                              seed=seed)
    if method == "swav":
        return vision.SwAV(encoder, views, num_prototypes=r["num_prototypes"],
                           projection=H.simclr_projection(r["output_dim"], r["hidden_dim"]),
                           temperature=r["temperature"], epsilon=r["epsilon"], queue_size=r["queue_size"],
                           queue_start_step=r.get("queue_start_step", 0),
                           freeze_prototypes_steps=r["freeze_prototypes_steps"])
    # DINO's momentum schedule: pretrain_on_digits passes the run's steps; default 1,000 digits per epoch
    steps = r.get("total_steps") or r["epochs"] * (1000 // r["batch_size"])
    return vision.DINO(encoder, views, head=H.dino_head(r["out_dim"], r["hidden_dim"], r["bottleneck_dim"],
                                                     kernel_initializer=r["head_initializer"],
                                                     use_batchnorm=r["head_batchnorm"],
                                                     norm_last_layer=r["head_norm_last_layer"]),
                       teacher_temperature=r["teacher_temperature"],
                       student_temperature=r["student_temperature"], center_momentum=r["center_momentum"],
                       momentum=r["momentum"], total_steps=steps,
                       freeze_last_layer_steps=r["freeze_last_layer_steps"], clip_norm=r["clip_norm"])


def pretrain_on_digits(method: str, data: Dict[str, np.ndarray], epochs: Optional[int] = None,
                       seed: int = 0, verbose: int = 0, **overrides):
    """Pretrain ``method`` on ``data["train_x"]`` (labels unused) with its :data:`DIGITS_RECIPES` settings.

    The encoder is ``digits_encoder(seed)`` (for :data:`ANY_SIZE_METHODS` its any-size twin with the
    same weights): compare with that as the random-init baseline.
    ``epochs`` (default: the recipe's) and ``overrides`` replace recipe entries. Returns the trained
    model; ``model.encoder`` is the encoder and ``model.history.history["loss"]`` the epoch losses.
    """
    from keras_ssl.backend import keras, tf

    recipe = {**DIGITS_RECIPES[method], **overrides}
    epochs = recipe["epochs"] if epochs is None else int(epochs)
    batch_size = recipe["batch_size"]
    images = data["train_x"]
    encoder_size = None if method in ANY_SIZE_METHODS else images.shape[1]
    if method == "dino":
        overrides = {"total_steps": epochs * (len(images) // batch_size), **overrides}
    model = build_digits_method(method, digits_encoder(seed, encoder_size), seed=seed,
                                image_size=images.shape[1], **overrides)
    model.compile(optimizer=keras.optimizers.Adam(recipe["learning_rate"]), jit_compile=True)
    dataset = (tf.data.Dataset.from_tensor_slices(images).shuffle(len(images), seed=seed)
               .batch(batch_size, drop_remainder=True))
    model.fit(dataset, epochs=epochs, verbose=verbose)
    return model


__all__ = ["ANY_SIZE_METHODS", "DIGITS_ENCODER", "DIGITS_METHOD_NAMES", "DIGITS_RECIPES",
           "MULTI_CROP_METHODS", "build_digits_method", "digits_encoder", "digits_multi_crop",
           "digits_report", "pretrain_on_digits"]
