"""Vision throughput: images/second of ``vision.SimCLR.fit`` against a plain ``train_step``, same run.

All paths train SimCLR (ResNet-18 CIFAR, 32x32 RGB, batch 128, projection 2048 -> 128, NT-Xent, SGD)
on the same random images with random-resized-crop + flip + colour-jitter views. Each path runs in
its own process, so each gets the TensorFlow start-up options a user of that path gets:

* ``plain``: a hand-written ``keras.Model`` whose ``train_step`` augments with ``tf.image`` ops per
  image (``tf.map_fn``) and computes NT-Xent, graph mode, TensorFlow's default options (TensorFlow is
  imported before keras_ssl, so keras_ssl leaves them alone): the reference.
* ``plain_xla``: the same with ``jit_compile=True``.
* ``plain_onednn``: the same with ``TF_ENABLE_ONEDNN_OPTS=1`` (oneDNN CPU kernels; TensorFlow turns
  them on by default only for CPUs with AVX-512/AMX).
* ``plain_onednn_noaug``: ``plain_onednn`` without augmentation (both views are the images): the
  model's forward/backward alone with the fastest kernels, an upper bound for any SimCLR step here.
* ``ours``: ``vision.SimCLR`` with ``augment.simclr(32)`` in the graph, as a user gets it: keras_ssl
  imported first, with its start-up options (oneDNN CPU kernels on x86-64, see ``keras_ssl.backend``).
* ``ours_tf_defaults``: ``ours`` with TensorFlow imported first (TensorFlow's own default options).
* ``ours_xla``: ``ours`` with ``jit_compile=True`` (keras_ssl's augmentations compile under XLA; XLA's
  CPU convolutions do not use TensorFlow's oneDNN kernels).

Precision and XLA for every path alike: ``--precision mixed_bfloat16`` (or ``mixed_float16``, with Keras's
loss-scale optimizer, which ``plain``'s ``train_step`` then uses as TensorFlow's guide shows) sets the
Keras global policy in each path's process before the model is built; ``--jit`` compiles every path's
step with XLA. ``--tiny`` swaps ResNet-18 for ``small_cnn`` (dry runs); ``--flops`` adds the model's
forward FLOPs per view (``benchmarks/gpu.py``). Defaults (float32, no ``--jit``) are the measurements
in ``docs/benchmarks.md``.

Run: ``python benchmarks/vision_throughput.py`` (``--quick`` for a smoke run; ``--rounds N`` runs all
paths N times, interleaved, against the machine's drift). Prints images/s, the ratio to ``plain``,
and writes ``benchmarks/results/vision_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

if __name__ == "__main__" and "--worker" in sys.argv:
    _path = sys.argv[sys.argv.index("--worker") + 1]
    os.environ.pop("TF_ENABLE_ONEDNN_OPTS", None)
    if "_onednn" in _path:
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"
    elif _path.startswith("plain") or _path == "ours_tf_defaults":
        import tensorflow  # noqa: F401  (first: keras_ssl then keeps TensorFlow's own start-up options)

from gpu import error_line, peak_gpu_mb  # noqa: E402
from step_timer import StepTimer  # noqa: E402

from keras_ssl import augment, losses, vision  # noqa: E402
from keras_ssl.backend import keras, tf  # noqa: E402
from keras_ssl.vision import heads as H  # noqa: E402
from keras_ssl.vision.backbones import resnet18_cifar, small_cnn  # noqa: E402

PRECISIONS = ["float32", "mixed_bfloat16", "mixed_float16"]
PATHS = ["plain", "plain_xla", "plain_onednn", "plain_onednn_noaug", "ours", "ours_tf_defaults", "ours_xla"]


class PlainSimCLR(keras.Model):
    """The reference: a straightforward SimCLR ``train_step`` with ``tf.image`` augmentations."""

    def __init__(self, encoder, projection, temperature=0.5, views_augmented=True):
        super().__init__()
        self.encoder, self.projection, self.temperature = encoder, projection, temperature
        self.views_augmented = views_augmented

    def _augment_one(self, image):
        size = tf.shape(image)[0]
        crop = tf.image.random_crop(image, [24, 24, 3])
        image = tf.image.resize(crop, [size, size])
        image = tf.image.random_flip_left_right(image)
        image = tf.image.random_brightness(image, 0.4)
        image = tf.image.random_contrast(image, 0.6, 1.4)
        image = tf.image.random_saturation(image, 0.6, 1.4)
        image = tf.image.random_hue(image, 0.1)
        return tf.clip_by_value(image, 0.0, 1.0)

    def augment(self, images):
        if not self.views_augmented:
            return images
        return tf.map_fn(self._augment_one, images)

    def train_step(self, images):
        v1, v2 = self.augment(images), self.augment(images)
        scaled = isinstance(self.optimizer, keras.mixed_precision.LossScaleOptimizer)  # mixed_float16
        with tf.GradientTape() as tape:
            z1 = self.projection(self.encoder(v1, training=True), training=True)
            z2 = self.projection(self.encoder(v2, training=True), training=True)
            loss, _ = losses.nt_xent(tf.cast(z1, tf.float32), tf.cast(z2, tf.float32), self.temperature)
            target = self.optimizer.get_scaled_loss(loss) if scaled else loss
        variables = self.trainable_variables
        gradients = tape.gradient(target, variables)
        if scaled:
            gradients = self.optimizer.get_unscaled_gradients(gradients)
        self.optimizer.apply_gradients(zip(gradients, variables))
        return {"loss": loss}


def build(path: str, seed: int = 0, jit: bool = False, tiny: bool = False):
    """``path``'s model, compiled; ``jit`` forces XLA (``_xla`` paths have it anyway); ``tiny``: small_cnn."""
    keras.utils.set_random_seed(seed)
    if tiny:
        encoder = small_cnn((32, 32, 3), width=4)
        projection = H.simclr_projection(output_dim=8, hidden_dim=16, synchronized_bn=False)
    else:
        encoder = resnet18_cifar((32, 32, 3))
        projection = H.simclr_projection(output_dim=128, hidden_dim=2048, synchronized_bn=False)
    if path.startswith("plain"):
        model = PlainSimCLR(encoder, projection, views_augmented=not path.endswith("_noaug"))
    else:
        model = vision.SimCLR(encoder, augment=augment.simclr(32, seed=seed), projection=projection,
                              temperature=0.5)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), jit_compile=jit or path.endswith("xla"))
    return model


def forward_flops_per_view(model) -> float:
    """Conv/matmul FLOPs of one image's encoder + projection forward pass (TF's profiler, batch 1)."""
    from gpu import graph_flops

    def forward(image):
        return model.projection(model.encoder(image, training=False), training=False)

    return graph_flops(forward, tf.TensorSpec([1, 32, 32, 3], tf.float32))


def measure(path: str, images: np.ndarray, batch: int, steps: int, repeats: int, warmup: int,
            precision: str = "float32", jit: bool = False, tiny: bool = False, flops: bool = False) -> dict:
    """Images/s of each of ``steps * repeats`` timed steps of one ``fit`` (after ``warmup`` steps).

    Steps are timed one by one (:class:`step_timer.StepTimer`): what ``fit`` does around them is not
    counted.
    """
    keras.mixed_precision.set_global_policy(precision)  # before the model is built
    model = build(path, jit=jit, tiny=tiny)
    data = tf.data.Dataset.from_tensor_slices(images).batch(batch, drop_remainder=True).repeat()
    start = time.perf_counter()
    try:
        model.fit(data, steps_per_epoch=warmup, epochs=1, verbose=0)
    except Exception as err:  # e.g. an op with no XLA kernel
        return {"path": path, "error": error_line(err)}
    warm = time.perf_counter() - start
    timer = StepTimer()
    model.fit(data, steps_per_epoch=steps * repeats, epochs=1, verbose=0, callbacks=[timer])
    rates = [batch / seconds for seconds in timer.seconds]
    result = {"path": path, "images_per_s": statistics.median(rates), "all": rates, "warmup_s": warm,
              "onednn": _onednn_on(), "precision": precision, "jit": jit or path.endswith("xla"),
              "batch_size": batch, "final_loss": timer.losses[-1], "peak_gpu_mb": peak_gpu_mb()}
    if flops:
        result["forward_flops_per_view"] = forward_flops_per_view(model)
    return result


def _onednn_on() -> bool:
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


def run_worker(path: str, args) -> dict:
    """Measure ``path`` in a fresh process (its own TensorFlow start-up options)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", path, "--batch-size", str(args.batch_size),
           "--steps", str(args.steps), "--repeats", str(args.repeats), "--warmup", str(args.warmup),
           "--precision", args.precision, *(["--jit"] if args.jit else []),
           *(["--tiny"] if args.tiny else [])]
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        return {"path": path, "error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--paths", nargs="+", default=PATHS)
    parser.add_argument("--rounds", type=int, default=1, help="run all paths this many times, interleaved")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="Keras global policy of every path (mixed_float16 adds loss scaling)")
    parser.add_argument("--jit", action="store_true", help="compile every path's step with XLA")
    parser.add_argument("--tiny", action="store_true", help="small_cnn instead of ResNet-18 (dry runs)")
    parser.add_argument("--flops", action="store_true", help="also count the forward FLOPs per view")
    parser.add_argument("--quick", action="store_true", help="batch 32, 2 steps, 1 repeat")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.batch_size, args.steps, args.repeats, args.warmup = 32, 2, 1, 1
    images = np.random.default_rng(0).random((args.batch_size * 4, 32, 32, 3)).astype(np.float32)
    if args.worker:
        result = measure(args.worker, images, args.batch_size, args.steps, args.repeats, args.warmup,
                         precision=args.precision, jit=args.jit, tiny=args.tiny, flops=args.flops)
        print(json.dumps(result))
        return
    runs = [run_worker(p, args) for _ in range(args.rounds) for p in args.paths]
    results = []
    for path in args.paths:
        mine = [r for r in runs if r["path"] == path]
        ok = [r for r in mine if "error" not in r]
        if not ok:
            results.append(mine[0])
            continue
        rates = [rate for r in ok for rate in r["all"]]
        results.append({"path": path, "images_per_s": statistics.median(rates), "all": rates,
                        "warmup_s": statistics.median(r["warmup_s"] for r in ok), "onednn": ok[0]["onednn"]})
    reference = next((r["images_per_s"] for r in results
                      if r["path"] == "plain" and "images_per_s" in r), None)
    print(f"SimCLR {'small_cnn' if args.tiny else 'ResNet-18'} 32x32, batch {args.batch_size}, "
          f"{args.repeats} x {args.steps} steps, {args.precision}{', XLA' if args.jit else ''}; "
          f"{os.cpu_count()} CPUs, TF {tf.__version__}")
    print(f"{'path':13s} {'images/s':>9s} {'vs plain':>9s} {'warmup s':>9s} {'oneDNN':>7s}")
    for r in results:
        if "error" in r:
            print(f"{r['path']:13s} failed: {r['error']}")
            continue
        ratio = r["images_per_s"] / reference if reference else float("nan")
        r["ratio_vs_plain"] = ratio
        print(f"{r['path']:13s} {r['images_per_s']:9.1f} {ratio:8.2f}x {r['warmup_s']:9.1f} "
              f"{'on' if r['onednn'] else 'off':>7s}")
    os.makedirs(os.path.join(os.path.dirname(__file__), "results"), exist_ok=True)
    with open(os.path.join(os.path.dirname(__file__), "results", "vision_throughput.json"), "w") as f:
        json.dump({"config": vars(args), "machine": platform.platform(), "cpus": os.cpu_count(),
                   "tensorflow": tf.__version__, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
