"""The digits table: the vision methods of DIGITS_RECIPES against raw pixels and their random-init encoder.

Each method pretrains :func:`keras_ssl.evaluation.digits_protocol.digits_encoder` (small_cnn, width
16, four stride-2 blocks) on the 1,000 unlabelled training digits of :func:`keras_ssl.datasets.digits`
with its :data:`~keras_ssl.evaluation.digits_protocol.DIGITS_RECIPES` settings (two-view methods with the
:func:`keras_ssl.augment.digits` views; :func:`~keras_ssl.evaluation.digits_protocol.pretrain_on_digits`),
then :func:`~keras_ssl.evaluation.digits_protocol.digits_report` measures its encoder output:

* ``probe``: logistic regression on 1,000 labelled training digits, accuracy on the 797 test digits;
* ``probe_shifted``: the same probe on the test digits shifted by up to 4 pixels (zero fill);
* ``nn_5shot``: 1-NN (cosine) with 5 labelled digits per class, on the test digits.

"Random init" is ``digits_encoder(seed)``, the weights every method starts from, measured the same
way; "raw pixels" measures the 1,024 pixels. Pretraining time is CPU seconds of this process
(``time.process_time``, all threads) and wall seconds.

Run: ``python benchmarks/digits_table.py`` (``--seeds 0 1`` for several seeds, ``--methods simclr``
for a subset). Prints a markdown table and writes ``benchmarks/results/digits_table.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from keras_ssl.backend import tf
from keras_ssl.datasets import digits
from keras_ssl.evaluation.digits_protocol import (
    DIGITS_ENCODER,
    DIGITS_METHOD_NAMES,
    DIGITS_RECIPES,
    digits_encoder,
    digits_report,
    pretrain_on_digits,
)

MEASURES = ("probe", "probe_shifted", "nn_5shot")


def _mean(rows, key):
    return float(np.mean([r[key] for r in rows]))


def format_table(rows, seeds):
    """The markdown table of ``rows`` (``{encoder: [run, ...]}``): means, ± std over seeds."""
    names = {"raw_pixels": "raw pixels", "random_init": "random init", **DIGITS_METHOD_NAMES}
    seed_list = ", ".join(str(s) for s in seeds)
    lines = [f"| encoder (seed{'s' if len(seeds) > 1 else ''} {seed_list}) | probe, 1,000 labels "
             "| probe, test shifted ±4 px | 1-NN, 5 labels/class | pretraining CPU s (wall s) |",
             "|---|---|---|---|---|"]
    for key, runs in rows.items():
        cells = [f"{_mean(runs, m):.3f}" for m in MEASURES]
        if len(runs) > 1:
            cells = [f"{c} ± {float(np.std([r[m] for r in runs])):.3f}" for c, m in zip(cells, MEASURES)]
        time_cell = (f"{_mean(runs, 'cpu_s'):.0f} ({_mean(runs, 'wall_s'):.0f})" if "cpu_s" in runs[0]
                     else "–")
        lines.append(f"| {names[key]} | " + " | ".join(cells) + f" | {time_cell} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="pretraining/init seeds")
    parser.add_argument("--methods", nargs="+", default=list(DIGITS_RECIPES), choices=list(DIGITS_RECIPES))
    parser.add_argument("--epochs", type=int, default=None, help="override every recipe's epochs")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results",
                                                         "digits_table.json"))
    args = parser.parse_args()

    data = digits()
    rows = {"raw_pixels": [dict(digits_report(None, data), seed=None)]}
    rows["random_init"] = [dict(digits_report(digits_encoder(seed), data), seed=seed) for seed in args.seeds]
    for method in args.methods:
        rows[method] = []
        for seed in args.seeds:
            cpu, wall = time.process_time(), time.perf_counter()
            model = pretrain_on_digits(method, data, epochs=args.epochs, seed=seed)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            losses = model.history.history["loss"]
            report = digits_report(model.encoder, data)
            rows[method].append(dict(report, seed=seed, cpu_s=round(cpu, 1), wall_s=round(wall, 1),
                                     first_loss=float(losses[0]), last_loss=float(losses[-1]),
                                     epochs=len(losses)))
            print(method, rows[method][-1], flush=True)

    table = format_table(rows, args.seeds)
    print(table)

    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"config": {**vars(args), "encoder": {k: list(v) if isinstance(v, tuple) else v
                                                         for k, v in DIGITS_ENCODER.items()},
                              "recipes": DIGITS_RECIPES},
                   "machine": platform.platform(), "cpus": os.cpu_count(),
                   "load_average_at_end": os.getloadavg(), "tensorflow": tf.__version__,
                   "results": rows, "table": table}, f, indent=2)


if __name__ == "__main__":
    main()
