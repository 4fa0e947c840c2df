"""MAE throughput: images/second of ``vision.MAE.fit`` against Hugging Face's documented path, same run.

Every path trains the same ``TFViTMAEForPreTraining`` (one config, one seed) on the same random
images, batch and optimizer (Adam 1e-4), mask ratio 0.75, ``norm_pix_loss``:

* ``hf``: Hugging Face's documented path: ``model.compile(optimizer)`` and ``model.fit`` on
  ``{"pixel_values": NCHW}`` batches, the model's internal loss (random masks from ``tf.random``);
* ``hf_xla``: the same with ``jit_compile=True``;
* ``ours``: ``vision.MAE(model).fit(NHWC images)``: counter-based masks, global-batch loss;
* ``ours_xla``: the same with ``jit_compile=True``.

Each path runs in its own process; steps are timed one by one inside one ``fit``
(:class:`step_timer.StepTimer`), after ``--warmup`` steps; the table gives the ratio of medians and the
median of each round's ratio to ``hf`` (steadier where the machine's speed drifts between rounds).
Peak resident memory of each process is reported (``ru_maxrss``), on a GPU the allocator's peak GPU
memory, and with ``TF_CPU_ALLOCATOR_USE_BFC=true`` in the environment the peak of TensorFlow's CPU
allocator: the tensors alone (model, optimizer state, activations, XLA's buffers), without the
libraries, the compiler and the heap's slack that the resident memory also counts. ``--precision``
sets the Keras global policy in every path (``mixed_float16`` adds the loss scaling ``compile``
gives), ``--jit`` compiles every path with XLA, ``--flops`` adds the model's forward FLOPs per
image (for MFU in ``benchmarks/gpu.py``, which runs the paper's ViT-B/16 at 224x224 through this
script's worker).
The images are random: ``--batch`` x ``--steps`` distinct ones while they fit in 256 MiB, else fewer
batches, repeated. Run: ``python benchmarks/mae_throughput.py`` (``--quick`` for a smoke run,
``--size small`` for the larger preset). Prints images/s and the ratio to ``hf``; writes
``benchmarks/results/mae_throughput.json`` (``--output``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
from results_file import write_results

PATHS = ["hf", "hf_xla", "ours", "ours_xla"]
HERE = os.path.dirname(os.path.abspath(__file__))


def forward_flops_per_image(mae) -> float:
    """Matrix-product and convolution FLOPs of one image's MAE forward pass (encoder on the visible
    patches, decoder on all), by TF's profiler at batch 1 (:func:`gpu.graph_flops`)."""
    from gpu import graph_flops

    from keras_ssl.backend import tf

    size, channels = mae.image_shape[0], mae.image_shape[2]
    return graph_flops(lambda images, noise: mae.forward(images, noise)[0],
                       tf.TensorSpec([1, size, size, channels], tf.float32),
                       tf.TensorSpec([1, mae.num_patches], tf.float32))


def measure(path: str, args) -> dict:
    from gpu import error_line, peak_gpu_mb
    from step_timer import StepTimer

    from keras_ssl import vision
    from keras_ssl.backend import keras, tf

    keras.mixed_precision.set_global_policy(args.precision)  # before the model is built
    keras.utils.set_random_seed(0)
    mae = vision.MAE.from_config(args.image_size, args.patch_size, num_channels=3, size=args.size, seed=0)
    steps = args.warmup + args.steps
    image_bytes = args.image_size * args.image_size * 3 * 4
    distinct = max(1, min(steps, (256 << 20) // (args.batch * image_bytes)))
    images = np.random.default_rng(0).random((args.batch * distinct, args.image_size, args.image_size, 3))
    images = images.astype(np.float32)
    timer = StepTimer()
    jit = args.jit or path.endswith("_xla")
    if path.startswith("hf"):
        model = mae.hf_model
        model.compile(optimizer=keras.optimizers.Adam(1e-4), jit_compile=jit)
        data = tf.data.Dataset.from_tensor_slices({"pixel_values": np.transpose(images * 2.0 - 1.0,
                                                                               (0, 3, 1, 2))})
    else:
        model = mae
        model.compile(optimizer=keras.optimizers.Adam(1e-4), jit_compile=jit)
        data = tf.data.Dataset.from_tensor_slices(images)
    data = data.batch(args.batch, drop_remainder=True).repeat()
    try:
        model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[timer])
    except Exception as err:  # e.g. the documented path under a precision it does not support
        return {"path": path, "error": error_line(err)}
    seconds = timer.seconds[args.warmup:]
    result = {"path": path, "images_per_s": args.batch / statistics.median(seconds),
              "median_step_s": statistics.median(seconds), "first_loss": timer.losses[0],
              "last_loss": timer.losses[-1], "final_loss": timer.losses[-1], "precision": args.precision,
              "jit": jit, "batch_size": args.batch,
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "peak_gpu_mb": peak_gpu_mb()}
    if os.environ.get("TF_CPU_ALLOCATOR_USE_BFC", "").lower() in ("1", "true"):  # tensors on the CPU
        result["peak_cpu_tensors_mb"] = tf.config.experimental.get_memory_info("CPU:0")["peak"] / 2**20
    if args.flops:
        result["forward_flops_per_image"] = forward_flops_per_image(mae)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="tiny", choices=["tiny", "small", "base"])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--patch-size", type=int, default=4)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="all paths N times, interleaved")
    parser.add_argument("--precision", default="float32",
                        choices=["float32", "mixed_bfloat16", "mixed_float16"],
                        help="Keras global policy of every path")
    parser.add_argument("--jit", action="store_true", help="compile every path with XLA")
    parser.add_argument("--flops", action="store_true", help="also count the forward FLOPs per image")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "mae_throughput.json"))
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.warmup, args.rounds = 4, 2, 1
    if args.worker:
        from keras_ssl.quiet import quiet

        quiet()
        print(json.dumps(measure(args.worker, args)))
        return
    results = {path: [] for path in PATHS}
    start = time.perf_counter()
    for _ in range(args.rounds):
        for path in PATHS:
            cmd = [sys.executable, __file__, "--worker", path] + [a for a in sys.argv[1:] if a != "--worker"]
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE)
            if out.returncode != 0:
                raise RuntimeError(f"{path} failed:\n{out.stderr[-3000:]}")
            result = json.loads(out.stdout.strip().splitlines()[-1])
            if "error" in result:
                raise RuntimeError(f"{path} failed: {result['error']}")
            results[path].append(result)
            print(results[path][-1], flush=True)
    base = statistics.median(r["images_per_s"] for r in results["hf"])
    extra = [(key, title) for key, title in (("peak_cpu_tensors_mb", "peak CPU tensors MiB"),
                                             ("peak_gpu_mb", "peak GPU MiB"))
             if all(r.get(key) is not None for runs in results.values() for r in runs)]
    lines = ["| path | images/s (median of rounds) | vs hf | vs hf, median of the rounds' ratios "
             "| peak RSS MB |" + "".join(f" {title} |" for _, title in extra),
             "|---|---|---|---|---|" + "---|" * len(extra)]
    for path, runs in results.items():
        speed = statistics.median(r["images_per_s"] for r in runs)
        paired = statistics.median(r["images_per_s"] / h["images_per_s"] for r, h in zip(runs, results["hf"]))
        rss = max(r["peak_rss_mb"] for r in runs)
        memory = "".join(f" {max(r[key] for r in runs):.1f} |" for key, _ in extra)
        lines.append(f"| {path} | {speed:.1f} | {speed / base:.2f}x | {paired:.2f}x | {rss:.0f} |{memory}")
    table = "\n".join(lines)
    print(table)
    write_results(args.output, args, start, results=results, table=table,
                  tf_cpu_allocator_use_bfc=os.environ.get("TF_CPU_ALLOCATOR_USE_BFC"))


if __name__ == "__main__":
    main()
