"""What the predict-the-missing-part pretexts cost beyond the network they train, same run.

Each keras_ssl step is timed against the plain Keras ``fit`` of the same network on the same data:

* ``Autoencoder`` (``corruption`` none, gaussian, salt_and_pepper, erasing, patches) against
  ``keras.Sequential([encoder, decoder])`` compiled with MSE and fitted on ``(images, images)``: the
  extra is the in-graph corruption (fresh every step), keras_ssl's step and its metrics (PSNR,
  embedding spread);
* ``RotationPrediction`` against a plain classifier ``encoder -> head`` fitted on the four rotations
  of each batch computed beforehand (``4 x batch`` images and labels): the extra is rotating inside
  the step;
* ``Colorization`` (regression, the default) against the same encoder and decoder as one Keras model
  ``lightness -> ab / 110`` compiled with MSE, fitted on the Lab split of each image computed
  beforehand: the extra is the RGB -> Lab conversion in the step and the metrics (ab error in Lab
  units, embedding spread); ``Colorization(loss="classification")`` against that model with one
  output channel per ab cell and sparse cross-entropy on each pixel's nearest cell (precomputed): the
  extra also holds the soft targets on the 5 nearest cells, found in the step, and the rebalancing.

Every path builds the same encoder (``small_cnn``, width 16, 32x32x1) and decoder/head from one seed
and trains with Adam 1e-3 on the same random images (colour ones for colorization); steps are timed
one by one inside one ``fit`` (:class:`step_timer.StepTimer`) after ``--warmup`` steps, and the
paths run interleaved for ``--rounds`` rounds in one process, so a busy machine slows them alike.
Reports the median step time and its ratio to the plain Keras path. Run:
``python benchmarks/reconstruction_overhead.py`` (``--quick`` for a smoke run, ``--paths`` for a
subset); writes ``benchmarks/results/reconstruction_overhead.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from results_file import write_results

CORRUPTIONS = [None, "gaussian", "salt_and_pepper", "erasing", "patches"]


def _encoder(seed: int):
    from keras_ssl.backend import keras
    from keras_ssl.vision.backbones import small_cnn

    keras.utils.set_random_seed(seed)
    return small_cnn((32, 32, 1), width=16)


def _timed_fit(model, data, steps: int):
    from step_timer import StepTimer

    timer = StepTimer()
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[timer])
    return timer.seconds


def colour_images(images: np.ndarray) -> np.ndarray:
    """Random RGB images ``[n, 32, 32, 3]`` with the grayscale set's seed (same count)."""
    return np.random.default_rng(1).random((len(images), *images.shape[1:3], 3)).astype(np.float32)


def _keras_colorization(encoder, rgb: np.ndarray, batch: int, classes: bool):
    """The colorization network as one Keras model on the Lab split computed beforehand."""
    from keras_ssl.backend import keras, tf
    from keras_ssl.vision.color import ab_gamut, rgb_to_lab
    from keras_ssl.vision.decoders import pixel_decoder

    centres = ab_gamut()
    lab = rgb_to_lab(tf.constant(rgb)).numpy()
    lightness, ab = lab[..., :1] / 100.0, lab[..., 1:]
    if classes:
        distance = ((ab[..., None, :] - centres) ** 2).sum(-1)
        target, channels = distance.argmin(-1).astype(np.int32), len(centres)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    else:
        target, channels, loss = (ab / 110.0).astype(np.float32), 2, "mse"
    dim = int(encoder.outputs[0].shape[-1])
    decoder = pixel_decoder(dim, (32, 32, channels), 32, condition_channels=1, output_activation=None)
    inputs = keras.Input((32, 32, 1))
    model = keras.Model(inputs, decoder([encoder(inputs), inputs]))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    return model, tf.data.Dataset.from_tensor_slices((lightness, target)).batch(batch).repeat()


def measure(path: str, images: np.ndarray, batch: int, steps: int, warmup: int) -> float:
    """Median seconds per training step of ``path``, after ``warmup`` steps."""
    from keras_ssl import vision
    from keras_ssl.backend import keras, tf
    from keras_ssl.vision import heads
    from keras_ssl.vision.decoders import pixel_decoder

    encoder = _encoder(0)
    dim = int(encoder.outputs[0].shape[-1])
    total = warmup + steps
    if path == "keras_autoencoder":
        model = keras.Sequential([encoder, pixel_decoder(dim, (32, 32, 1), 32)])
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
        data = tf.data.Dataset.from_tensor_slices((images, images)).batch(batch).repeat()
    elif path.startswith("autoencoder"):
        corruption = path.split(":")[1] if ":" in path else None
        model = vision.Autoencoder(encoder, corruption=corruption, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        data = tf.data.Dataset.from_tensor_slices(images).batch(batch).repeat()
    elif path == "keras_rotation":
        head = heads.rotation_head()
        model = keras.Sequential([encoder, head])
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

        def rotations(x):  # the four rotations of a batch, as the pretext builds them
            rotated = tf.concat([tf.image.rot90(x, k) for k in range(4)], axis=0)
            labels = tf.repeat(tf.range(4), tf.shape(x)[0])
            return rotated, labels

        batches = [rotations(tf.constant(images[i:i + batch])) for i in range(0, len(images), batch)]
        data = tf.data.Dataset.from_tensor_slices(
            (tf.stack([b[0] for b in batches]), tf.stack([b[1] for b in batches]))).repeat()
    elif path == "rotation":
        model = vision.RotationPrediction(encoder)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        data = tf.data.Dataset.from_tensor_slices(images).batch(batch).repeat()
    elif path.startswith("keras_colorization"):
        model, data = _keras_colorization(encoder, colour_images(images), batch,
                                          classes=path.endswith("classes"))
    elif path.startswith("colorization"):
        loss = path.split(":")[1] if ":" in path else "regression"
        model = vision.Colorization(encoder, loss=loss)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        data = tf.data.Dataset.from_tensor_slices(colour_images(images)).batch(batch).repeat()
    else:
        raise ValueError(f"unknown path {path!r}")
    seconds = _timed_fit(model, data, total)
    return statistics.median(seconds[warmup:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="all paths N times, interleaved")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--paths", nargs="+", default=None, help="only these paths (default: all)")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results",
                                                         "reconstruction_overhead.json"))
    args = parser.parse_args()
    if args.quick:
        args.steps, args.warmup, args.rounds = 3, 1, 1
    from keras_ssl.quiet import quiet

    quiet()
    images = np.random.default_rng(0).random((args.batch * 8, 32, 32, 1)).astype(np.float32)
    paths = (["keras_autoencoder"] + [f"autoencoder:{c}" if c else "autoencoder" for c in CORRUPTIONS]
             + ["keras_rotation", "rotation", "keras_colorization", "colorization",
                "keras_colorization_classes", "colorization:classification"])
    if args.paths:
        unknown = sorted(set(args.paths) - set(paths))
        if unknown:
            parser.error(f"unknown paths {unknown}; choose from {paths}")
        paths = [p for p in paths if p in args.paths]
    seconds = {p: [] for p in paths}
    start = time.perf_counter()
    for _ in range(args.rounds):
        for path in paths:
            seconds[path].append(measure(path, images, args.batch, args.steps, args.warmup))
            print(path, f"{seconds[path][-1] * 1000:.1f} ms", flush=True)
    median = {p: statistics.median(s) for p, s in seconds.items()}
    lines = ["| path | median step ms | vs plain Keras |", "|---|---|---|"]
    for p in paths:
        base = median.get(_baseline(p))
        ratio = f"{median[p] / base:.2f}x" if base else "–"
        lines.append(f"| {p} | {median[p] * 1000:.1f} | {ratio} |")
    table = "\n".join(lines)
    print(table)
    write_results(args.output, args, start, median_step_s=median, step_s_per_round=seconds, table=table)


def _baseline(path: str) -> str:
    """The plain Keras path a keras_ssl path is compared with."""
    if "rotation" in path:
        return "keras_rotation"
    if "colorization" in path:
        return "keras_colorization_classes" if "class" in path else "keras_colorization"
    return "keras_autoencoder"


if __name__ == "__main__":
    main()
