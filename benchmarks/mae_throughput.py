"""MAE throughput: images/second of ``vision.MAE.fit`` against Hugging Face's documented path, same run.

Every path trains the same ``TFViTMAEForPreTraining`` (one config, one seed) on the same random
images, batch and optimizer (Adam 1e-4), mask ratio 0.75, ``norm_pix_loss``:

* ``hf``: Hugging Face's documented path: ``model.compile(optimizer)`` and ``model.fit`` on
  ``{"pixel_values": NCHW}`` batches, the model's internal loss (random masks from ``tf.random``);
* ``hf_xla``: the same with ``jit_compile=True``;
* ``ours``: ``vision.MAE(model).fit(NHWC images)``: counter-based masks, global-batch loss;
* ``ours_xla``: the same with ``jit_compile=True``.

Each path runs in its own process; steps are timed one by one inside one ``fit``
(:class:`step_timer.StepTimer`), after ``--warmup`` steps. Peak resident memory of each process is
reported (``ru_maxrss``). Run: ``python benchmarks/mae_throughput.py`` (``--quick`` for a smoke run,
``--size small`` for the larger preset). Prints images/s and the ratio to ``hf``; writes
``benchmarks/results/mae_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

PATHS = ["hf", "hf_xla", "ours", "ours_xla"]


def measure(path: str, args) -> dict:
    from step_timer import StepTimer

    from keras_ssl import vision
    from keras_ssl.backend import keras, tf

    keras.utils.set_random_seed(0)
    mae = vision.MAE.from_config(args.image_size, args.patch_size, num_channels=3, size=args.size, seed=0)
    steps = args.warmup + args.steps
    images = np.random.default_rng(0).random((args.batch * steps, args.image_size, args.image_size, 3))
    images = images.astype(np.float32)
    timer = StepTimer()
    jit = path.endswith("_xla")
    if path.startswith("hf"):
        model = mae.hf_model
        model.compile(optimizer=keras.optimizers.Adam(1e-4), jit_compile=jit)
        pixels = np.transpose(images * 2.0 - 1.0, (0, 3, 1, 2))
        data = tf.data.Dataset.from_tensor_slices({"pixel_values": pixels}).batch(args.batch)
        model.fit(data, epochs=1, verbose=0, callbacks=[timer])
    else:
        mae.compile(optimizer=keras.optimizers.Adam(1e-4), jit_compile=jit)
        data = tf.data.Dataset.from_tensor_slices(images).batch(args.batch)
        mae.fit(data, epochs=1, verbose=0, callbacks=[timer])
    seconds = timer.seconds[args.warmup:]
    return {"path": path, "images_per_s": args.batch / statistics.median(seconds),
            "median_step_s": statistics.median(seconds), "first_loss": timer.losses[0],
            "last_loss": timer.losses[-1],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="tiny", choices=["tiny", "small", "base"])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--patch-size", type=int, default=4)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="all paths N times, interleaved")
    parser.add_argument("--quick", action="store_true")
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
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=os.path.dirname(__file__))
            if out.returncode != 0:
                raise RuntimeError(f"{path} failed:\n{out.stderr[-3000:]}")
            results[path].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(results[path][-1], flush=True)
    base = statistics.median(r["images_per_s"] for r in results["hf"])
    lines = ["| path | images/s (median of rounds) | vs hf | peak RSS MB |", "|---|---|---|---|"]
    for path, runs in results.items():
        speed = statistics.median(r["images_per_s"] for r in runs)
        rss = max(r["peak_rss_mb"] for r in runs)
        lines.append(f"| {path} | {speed:.1f} | {speed / base:.2f}x | {rss:.0f} |")
    table = "\n".join(lines)
    print(table)
    os.makedirs(os.path.join(os.path.dirname(__file__), "results"), exist_ok=True)
    with open(os.path.join(os.path.dirname(__file__), "results", "mae_throughput.json"), "w") as f:
        json.dump({"config": vars(args), "machine": platform.platform(), "cpus": os.cpu_count(),
                   "load_average_at_end": os.getloadavg(),
                   "total_wall_s": round(time.perf_counter() - start, 1),
                   "results": results, "table": table}, f, indent=2)


if __name__ == "__main__":
    main()
