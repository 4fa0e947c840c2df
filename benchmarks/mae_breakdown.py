"""Where an MAE training step spends its time: the step cut into compiled pieces, same run.

``vision.MAE``'s step is rebuilt from its parts, each piece a ``tf.function`` timed on one batch:

* ``noise``: the counter-based uniforms that pick each image's visible patches;
* ``targets``: the patchified, per-patch normalised pixels (``norm_pix_loss``);
* ``encoder``: Hugging Face's ViT on the visible patches (masking inside), forward only;
* ``encoder+decoder``: plus the decoder over all patches, forward only;
* ``forward+loss``: plus the global-batch masked MSE;
* ``gradients``: forward, loss and backward pass (every gradient summed, so none is pruned);
* ``step``: gradients and the Adam update, what ``MAE.fit`` runs per batch (no metrics);
* ``hf_forward+loss`` and ``hf_gradients``: the same through ``TFViTMAEForPreTraining.call`` and its
  built-in loss, the documented path.

Every piece is called ``--calls`` times after two warm-up calls, interleaved over ``--rounds`` rounds
(odd rounds in reverse order, so no piece always runs first); the median is reported, with its share of
``step``. ``--pieces`` times only some pieces (an A/B of ``gradients`` and ``hf_gradients``, say).
Differences between rows estimate the cost of one part (e.g. ``gradients - forward+loss`` is the
backward pass). Run:
``python benchmarks/mae_breakdown.py`` (``--size small``, ``--batch``; ``--quick`` for a smoke run);
writes ``benchmarks/results/mae_breakdown.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from results_file import write_results


def pieces(size: str, image_size: int, patch_size: int, batch: int) -> dict:
    """``{name: zero-argument compiled function}`` for one batch of random colour images."""
    from keras_ssl import vision
    from keras_ssl.backend import keras, tf
    from keras_ssl.vision.methods.masked_image_modeling import _pixel_values

    keras.utils.set_random_seed(0)
    mae = vision.MAE.from_config(image_size, patch_size, num_channels=3, size=size, seed=0)
    images = tf.constant(np.random.default_rng(0).random((batch, image_size, image_size, 3)), tf.float32)
    optimizer = keras.optimizers.Adam(1e-4)
    model = mae.hf_model

    def noise():
        return mae.mask_noise.draw(batch, mae.num_patches)

    fixed_noise = noise()

    def loss():
        return mae.ssl_loss(images, fixed_noise, training=True)[0]  # what MAE's step computes

    def gradients():
        with tf.GradientTape() as tape:
            value = loss()
        return value, tape.gradient(value, model.trainable_variables)

    def used(value, grads):
        """``value``, made to depend on every gradient: a traced function prunes what it does not return."""
        return value + 0.0 * tf.add_n([tf.reduce_sum(g) for g in grads])

    def step():
        value, grads = gradients()
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return value

    def hf_gradients():
        with tf.GradientTape() as tape:
            value = model(pixel_values=_pixel_values(images), noise=fixed_noise, training=True).loss
        return value, tape.gradient(value, model.trainable_variables)

    out = {
        "noise": noise,
        "targets": lambda: mae.targets(images),
        "encoder": lambda: model.vit(pixel_values=_pixel_values(images), noise=fixed_noise,
                                     training=True).last_hidden_state,
        "encoder+decoder": lambda: mae.forward(images, fixed_noise, training=True)[0],
        "forward+loss": loss,
        "gradients": lambda: used(*gradients()),
        "step": step,
        "hf_forward+loss": lambda: model(pixel_values=_pixel_values(images), noise=fixed_noise,
                                         training=True).loss,
        "hf_gradients": lambda: used(*hf_gradients()),
    }
    step()  # builds the optimizer's slots outside the traced function
    return {name: tf.function(fn) for name, fn in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="tiny", choices=["tiny", "small", "base"])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--patch-size", type=int, default=4)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pieces", nargs="+", default=None, help="only these pieces (default: all)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results",
                                                         "mae_breakdown.json"))
    args = parser.parse_args()
    if args.quick:
        args.calls, args.rounds = 2, 1
    from keras_ssl.quiet import quiet

    quiet()
    fns = pieces(args.size, args.image_size, args.patch_size, args.batch)
    if args.pieces:
        unknown = sorted(set(args.pieces) - set(fns))
        if unknown:
            parser.error(f"unknown pieces {unknown}; choose from {list(fns)}")
        fns = {name: fn for name, fn in fns.items() if name in args.pieces}
    for fn in fns.values():  # trace and warm up
        fn(), fn()
    seconds = {name: [] for name in fns}
    start = time.perf_counter()
    for round_ in range(args.rounds):
        for name, fn in (list(fns.items())[::-1] if round_ % 2 else fns.items()):
            for _ in range(args.calls):
                t = time.perf_counter()
                np.asarray(fn())  # waits for the result
                seconds[name].append(time.perf_counter() - t)
    median = {name: statistics.median(s) for name, s in seconds.items()}
    lines = ["| piece | median ms | share of step |", "|---|---|---|"]
    for name, value in median.items():
        share = f"{value / median['step']:.0%}" if "step" in median else "–"
        lines.append(f"| {name} | {value * 1000:.1f} | {share} |")
    table = "\n".join(lines)
    print(table)
    write_results(args.output, args, start, median_s=median, table=table)


if __name__ == "__main__":
    main()
