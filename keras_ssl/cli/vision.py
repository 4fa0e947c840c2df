"""``keras-ssl vision pretrain``: self-supervised pretraining of an image encoder from the command line.

Images come from a folder (read recursively; subfolders ignored as labels) or a tensorflow-datasets
name; the method's augmentation preset makes the views (BYOL: ``augment.byol``, MoCo:
``augment.moco_v2``, SwAV: ``augment.multi_crop``, DINO: ``augment.multi_crop.dino``, the
autoencoder, RotNet and Jigsaw: none (their own corruption / rotations / tiles), the others:
``augment.simclr``).
The trained encoder, a plain Keras model ``images [batch, H, W, C] -> features [batch, D]``, is
saved as ``OUTPUT/encoder.keras``, which ``keras-ssl export`` turns into a SavedModel. The
multi-crop methods (SwAV, DINO) and Jigsaw (whose encoder embeds tiles) train an encoder that takes any
image size; ``run.json`` records ``--image-size``, the size the export serves.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from keras_ssl.cli import runs
from keras_ssl.cli.errors import UserError
from keras_ssl.cli.options import add_run_options, non_negative_int, positive_float, positive_int

METHODS = ("simclr", "moco", "byol", "simsiam", "barlow_twins", "vicreg", "nnclr", "swav", "dino",
           "autoencoder", "rotation", "jigsaw")
#: Methods whose views are multi-crop sets of two sizes: their encoder takes any image size.
MULTI_CROP = ("swav", "dino")
#: Methods whose encoder takes any image size: the multi-crop ones, and Jigsaw (it embeds tiles).
ANY_SIZE = MULTI_CROP + ("jigsaw",)
BACKBONES = ("small_cnn", "resnet18")
ENCODER_FILE = "encoder.keras"


def add_parser(commands, parent: argparse.ArgumentParser) -> None:
    group = commands.add_parser("vision", parents=[parent], help="self-supervised vision: pretrain",
                                description="Self-supervised pretraining of image encoders.")
    sub = group.add_subparsers(dest="group", metavar="COMMAND", required=True)
    pretrain = sub.add_parser(
        "pretrain", parents=[parent], formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="pretrain an image encoder on unlabelled images",
        description="Pretrain an image encoder with a self-supervised method on unlabelled images and save "
        f"it as OUTPUT/{ENCODER_FILE}. Example: keras-ssl vision pretrain --method simclr --images photos/ "
        "--output out/ --image-size 64 --epochs 50")
    pretrain.add_argument("--method", required=True, choices=METHODS, help="self-supervised method")
    pretrain.add_argument("--images", required=True, metavar="FOLDER_OR_TFDS_NAME",
                          help="a folder of images (jpeg/png/bmp/gif, read recursively) or a "
                          "tensorflow-datasets name such as cifar10 or tfds:stl10 (downloaded beforehand)")
    pretrain.add_argument("--split", default="train", help="tensorflow-datasets split (e.g. unlabelled)")
    add_run_options(pretrain, batch_size=256, learning_rate=1e-3, weight_decay=1e-4, save_steps=0)
    pretrain.add_argument("--image-size", type=positive_int, default=32, help="images are resized to this")
    pretrain.add_argument("--backbone", choices=BACKBONES, default="resnet18",
                          help="encoder: CIFAR ResNet-18 (512 features) or a small CNN (fast)")
    pretrain.add_argument("--width", type=positive_int, default=None,
                          help="backbone width (default: 64 for resnet18, 32 for small_cnn)")
    pretrain.add_argument("--hidden-dim", type=positive_int, default=2048,
                          help="width of the projection/prediction heads")
    pretrain.add_argument("--projection-dim", type=positive_int, default=128,
                          help="output of the projection head (SimCLR, MoCo, BYOL, NNCLR, SwAV; DINO's "
                          "bottleneck)")
    pretrain.add_argument("--queue-size", type=positive_int, default=4096,
                          help="MoCo's queue of negatives; NNCLR's support set")
    pretrain.add_argument("--local-crops", type=non_negative_int, default=4,
                          help="SwAV/DINO: local crops per image (besides 2 global crops of --image-size)")
    pretrain.add_argument("--local-size", type=positive_int, default=None,
                          help="SwAV/DINO: side of the local crops (default: half of --image-size)")
    pretrain.add_argument("--prototypes", type=positive_int, default=3000, help="SwAV: number of prototypes")
    pretrain.add_argument("--epsilon", type=positive_float, default=0.05,
                          help="SwAV: Sinkhorn-Knopp epsilon (paper 0.05; 0.02-0.03 for small encoders or "
                          "images, where 0.05 can leave the loss stuck at ln K)")
    pretrain.add_argument("--out-dim", type=positive_int, default=65536, help="DINO: output dimension K")
    pretrain.set_defaults(check=check_pretrain, run=run_pretrain)


def image_source(images: str) -> str:
    """A folder path as is, or ``tfds:NAME`` for a tensorflow-datasets name."""
    if images.startswith("tfds:") or os.path.isdir(images):
        return images
    if os.path.exists(images):
        raise UserError(f"--images {images!r} is a file; pass a folder of images or a tensorflow-datasets "
                        "name.")
    if os.sep in images or images.startswith(".") or os.path.splitext(images)[1]:
        raise UserError(f"--images {images!r}: no such folder. Check the path.")
    return f"tfds:{images}"


def check_pretrain(args) -> None:
    image_source(args.images)
    if args.method in MULTI_CROP:
        local = args.local_size or max(args.image_size // 2, 1)
        if local > args.image_size:
            raise UserError(f"--local-size {local} is larger than the global crops (--image-size "
                            f"{args.image_size}); local crops must be smaller.")
    runs.check_output(args, ENCODER_FILE)


def build_method(args, channels: int, total_steps: int):
    """The uncompiled vision method of ``--method`` around a fresh ``--backbone`` encoder."""
    from keras_ssl import augment, vision
    from keras_ssl.vision import backbones
    from keras_ssl.vision import heads as H

    any_size = args.method in ANY_SIZE
    shape = (None if any_size else args.image_size,) * 2 + (channels,)
    if args.backbone == "resnet18":
        encoder = backbones.resnet18_cifar(shape, width=args.width or 64)
    else:
        encoder = backbones.small_cnn(shape, width=args.width or 32)
    size, seed, hidden, out = args.image_size, args.seed, args.hidden_dim, args.projection_dim
    if args.method == "byol":
        return vision.BYOL(encoder, augment.byol(size, seed=seed), total_steps=total_steps,
                           projection=H.byol_projection(hidden, out),
                           prediction=H.byol_prediction(hidden, out))
    if args.method == "moco":
        return vision.MoCo(encoder, augment.moco_v2(size, seed=seed), queue_size=args.queue_size,
                           projection=H.moco_projection(hidden, out))
    if args.method == "jigsaw":
        return vision.Jigsaw(encoder, seed=seed, head=H.jigsaw_head(1000, hidden))
    if any_size:
        local = args.local_size or max(size // 2, 1)
        crops = augment.multi_crop.dino if args.method == "dino" else augment.multi_crop
        views = crops(global_size=size, local_size=local, num_local=args.local_crops, seed=seed)
        if args.method == "swav":
            return vision.SwAV(encoder, views, num_prototypes=args.prototypes, epsilon=args.epsilon,
                               projection=H.simclr_projection(out, hidden))
        return vision.DINO(encoder, views, head=H.dino_head(args.out_dim, hidden, out),
                           total_steps=total_steps)
    if args.method == "autoencoder":
        return vision.Autoencoder(encoder, corruption="gaussian", seed=seed)
    if args.method == "rotation":
        return vision.RotationPrediction(encoder)
    views = augment.simclr(size, seed=seed)
    if args.method == "nnclr":
        return vision.NNCLR(encoder, views, queue_size=args.queue_size,
                            projection=H.nnclr_projection(hidden, out),
                            prediction=H.nnclr_prediction(hidden, out))
    if args.method == "simclr":
        return vision.SimCLR(encoder, views, projection=H.simclr_projection(out, hidden))
    if args.method == "simsiam":
        return vision.SimSiam(encoder, views, projection=H.simsiam_projection(hidden),
                              prediction=H.simsiam_prediction(max(hidden // 4, 1), hidden))
    if args.method == "barlow_twins":
        return vision.BarlowTwins(encoder, views, projection=H.barlow_projection(hidden))
    return vision.VICReg(encoder, views, projection=H.vicreg_projection(hidden))


def unreadable_images_error(args, source: str):
    """After ``fit`` failed on the data: a :class:`UserError` naming the folder's undecodable files, or
    ``None`` when the failure was something else (a tfds source, every file readable)."""
    from keras_ssl.vision import find_unreadable_images

    if source.startswith("tfds:"):
        return None
    print(f"Training stopped on an image that cannot be decoded; checking every file under {source} ...",
          file=sys.stderr, flush=True)
    bad = find_unreadable_images(source)
    if not bad:
        return None
    shown = "; ".join(f"{path} ({reason})" for path, reason in bad[:5])
    more = f"; and {len(bad) - 5} more" if len(bad) > 5 else ""
    if os.path.isdir(os.path.join(args.output, runs.BACKUP)):
        again = f"with --resume (it continues from the last backup in {args.output})"
    else:
        again = "with --overwrite (no backup had been written yet)"
    return UserError(f"{len(bad)} file(s) under --images {args.images!r} cannot be decoded as images: {shown}"
                     f"{more}. Fix: delete or re-save them, then run the same command {again}.")


def run_pretrain(args) -> int:
    started = time.time()
    from keras_ssl import optimizers
    from keras_ssl.backend import keras, tf
    from keras_ssl.vision import image_dataset

    source = image_source(args.images)
    try:
        dataset = image_dataset(source, batch_size=args.batch_size, image_size=(args.image_size,) * 2,
                                split=args.split, seed=args.seed)
    except ModuleNotFoundError as err:
        raise UserError(f"--images {args.images!r} names a tensorflow-datasets dataset but {err.name} is not "
                        "installed: pip install tensorflow-datasets, or pass a folder of images.") from err
    channels = int(dataset.element_spec.shape[-1])
    per_epoch = int(dataset.cardinality().numpy())
    if per_epoch < 0:
        from keras_ssl.cli.mlm import count_batches

        per_epoch = count_batches(dataset)
    if per_epoch == 0:
        raise UserError(f"--images {args.images!r} has fewer images than one batch (--batch-size "
                        f"{args.batch_size}). Use a smaller --batch-size or more images.")
    runs.start_run(args)
    if args.steps:
        dataset, steps_per_epoch, epochs = dataset.repeat(), args.steps, 1
    else:
        steps_per_epoch, epochs = None, args.epochs or 3
    total = args.steps or per_epoch * epochs
    keras.utils.set_random_seed(args.seed)
    model = build_method(args, channels, total)
    model.compile(optimizer=optimizers.adamw(
        learning_rate=args.learning_rate, warmup_steps=args.warmup_steps, total_steps=total,
        weight_decay=args.weight_decay, decay="cosine", clipnorm=None))
    callbacks = runs.training_callbacks(args, args.output)
    try:
        history = model.fit(dataset, steps_per_epoch=steps_per_epoch, epochs=epochs, callbacks=callbacks,
                            verbose=1 if sys.stdout.isatty() else 2)
    except tf.errors.InvalidArgumentError as error:
        problem = unreadable_images_error(args, source) if "decode" in str(error).lower() else None
        if problem is None:
            raise
        raise problem from None
    path = os.path.join(args.output, ENCODER_FILE)
    model.encoder.save(path)
    metrics = runs.history_metrics(history)
    runs.finish_run(args, {
        "global_step": int(model.optimizer.iterations.numpy()), "total_steps": total,
        "resumed_from_step": runs.start_step(callbacks) if args.resume else None,
        "encoder": {"file": ENCODER_FILE, "input_shape": list(model.image_shape),
                    "features": model.feature_dim, "serving_image_size": args.image_size},
        **metrics}, started)
    summary = ", ".join(f"{k} {v:.4g}" for k, v in metrics["train"].items())
    print(f"Done: {total} steps; {summary}.")
    print(f"Saved the encoder to {path} (keras.models.load_model; export it with: keras-ssl export "
          f"{args.output} EXPORT_DIR); run.json; TensorBoard: tensorboard --logdir "
          f"{os.path.join(args.output, runs.LOGS)}")
    return 0
