"""What the predict-the-missing-part pretexts cost beyond the network they train, same run.

Each keras_ssl step is timed against the plain Keras ``fit`` of the same network on the same data:

* ``Autoencoder`` (``corruption`` none, gaussian, salt_and_pepper, erasing, patches) against
  ``keras.Sequential([encoder, decoder])`` compiled with MSE and fitted on ``(images, images)``: the
  extra is the in-graph corruption (fresh every step), keras_ssl's step and its metrics (PSNR,
  embedding spread);
* ``RotationPrediction`` against a plain classifier ``encoder -> head`` fitted on the four rotations
  of each batch computed beforehand (``4 x batch`` images and labels): the extra is rotating inside
  the step.

Every path builds the same encoder (``small_cnn``, width 16, 32x32x1) and decoder/head from one seed
and trains with Adam 1e-3 on the same random images; steps are timed one by one inside one ``fit``
(:class:`step_timer.StepTimer`) after ``--warmup`` steps, and the paths run interleaved for
``--rounds`` rounds in one process, so a busy machine slows them alike. Reports the median step time
and its ratio to the plain Keras path. Run: ``python benchmarks/reconstruction_overhead.py``
(``--quick`` for a smoke run); writes ``benchmarks/results/reconstruction_overhead.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np

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
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results",
                                                         "reconstruction_overhead.json"))
    args = parser.parse_args()
    if args.quick:
        args.steps, args.warmup, args.rounds = 3, 1, 1
    from keras_ssl.quiet import quiet

    quiet()
    images = np.random.default_rng(0).random((args.batch * 8, 32, 32, 1)).astype(np.float32)
    paths = (["keras_autoencoder"] + [f"autoencoder:{c}" if c else "autoencoder" for c in CORRUPTIONS]
             + ["keras_rotation", "rotation"])
    seconds = {p: [] for p in paths}
    start = time.perf_counter()
    for _ in range(args.rounds):
        for path in paths:
            seconds[path].append(measure(path, images, args.batch, args.steps, args.warmup))
            print(path, f"{seconds[path][-1] * 1000:.1f} ms", flush=True)
    median = {p: statistics.median(s) for p, s in seconds.items()}
    lines = ["| path | median step ms | vs plain Keras |", "|---|---|---|"]
    for p in paths:
        base = median["keras_rotation" if "rotation" in p else "keras_autoencoder"]
        lines.append(f"| {p} | {median[p] * 1000:.1f} | {median[p] / base:.2f}x |")
    table = "\n".join(lines)
    print(table)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"config": vars(args), "machine": platform.platform(), "cpus": os.cpu_count(),
                   "load_average_at_end": os.getloadavg(),
                   "total_wall_s": round(time.perf_counter() - start, 1),
                   "median_step_s": median, "step_s_per_round": seconds, "table": table}, f, indent=2)


if __name__ == "__main__":
    main()
