"""The MNIST payoff table: few-label accuracy after self-supervised pretraining, against random init.

For each method and seed, :func:`keras_ssl.evaluation.mnist_protocol.mnist_payoff` pretrains
:func:`~keras_ssl.evaluation.mnist_protocol.mnist_encoder` (small_cnn, width 16, four stride-2
blocks, 28x28 input, 128 features) on ``--images`` unlabelled MNIST training images for ``--epochs``
epochs (the method's ``DIGITS_RECIPES`` batch size and learning rate, ``augment.digits(28)`` views),
then trains an ``ImageClassifier`` on 1, 10 and 100 labels per class (seeded ``few_labels`` of the
training set), as a linear probe (frozen encoder) and fine-tuned, with one recipe
(``MNIST_CLASSIFIER``: Adam, 300 steps of batch <= 64, lr 1e-2 probe / 1e-3 fine-tune), and reports
accuracy on the 10,000 test images. "random init" runs the same recipe on the weights pretraining
starts from; its fine-tuned column is supervised-only (same network, same labels, from scratch).

Run: ``python benchmarks/mnist_payoff.py --seeds 0 1 2 --methods simclr`` (``--quick`` for a smoke
run: 1,000 images, 1 epoch, 1,000 test images; ``--modes probe finetune lp_ft`` adds LP-FT, the probe
then everything at lr 1e-4). Prints a markdown table (mean ± std over seeds)
and writes ``benchmarks/results/mnist_payoff.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from keras_ssl.quiet import quiet

quiet()  # before TensorFlow is imported: keras_ssl's messages only

from keras_ssl.backend import tf  # noqa: E402
from keras_ssl.datasets import mnist  # noqa: E402
from keras_ssl.evaluation.digits_protocol import DIGITS_METHOD_NAMES, DIGITS_RECIPES  # noqa: E402
from keras_ssl.evaluation.mnist_protocol import (  # noqa: E402
    CLASSIFIER_MODES,
    MNIST_CLASSIFIER,
    MNIST_PRETRAIN,
    MNIST_SHOTS,
    mnist_payoff,
)

MODE_NAMES = {"probe": "probe", "finetune": "fine-tune", "lp_ft": "LP-FT"}


def _cell(runs, key):
    values = [r[key] for r in runs]
    mean = f"{float(np.mean(values)):.3f}"
    return f"{mean} ± {float(np.std(values)):.3f}" if len(values) > 1 else mean


def format_table(rows, seeds, shots, budget, test_size=10_000, modes=("probe", "finetune")):
    """The markdown table of ``rows`` (``{name: [run, ...]}``): means, ± std over seeds."""
    names = {"random_init": "random init", **DIGITS_METHOD_NAMES}
    header = ["encoder"] + [f"{MODE_NAMES[mode]} {k}/class" for k in shots for mode in modes]
    seed_list = ", ".join(map(str, seeds))
    lines = [f"MNIST, test accuracy on {test_size:,} images, seeds {seed_list}; pretraining: {budget}. "
             "Fine-tuned random init = supervised only.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, runs in rows.items():
        cells = [_cell(runs, f"{mode}_{k}") for k in shots for mode in modes]
        lines.append(f"| {names.get(key, key)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="pretraining/init/label seeds")
    parser.add_argument("--methods", nargs="+", default=["simclr"], choices=list(DIGITS_RECIPES))
    parser.add_argument("--images", type=int, default=MNIST_PRETRAIN["images"], help="unlabelled images")
    parser.add_argument("--epochs", type=int, default=MNIST_PRETRAIN["epochs"], help="pretraining epochs")
    parser.add_argument("--shots", type=int, nargs="+", default=list(MNIST_SHOTS), help="labels per class")
    parser.add_argument("--modes", nargs="+", default=["probe", "finetune"], choices=list(CLASSIFIER_MODES),
                        help="classifier training: probe, finetune (fresh head), lp_ft (probe, then all)")
    parser.add_argument("--freeze-batchnorm", action="store_true",
                        help="the encoder's batch norm stays in inference mode while fine-tuning")
    parser.add_argument("--test-size", type=int, default=None, help="first N test images (default all)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000 images, 1 epoch, 1,000 tests")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results",
                                                         "mnist_payoff.json"))
    args = parser.parse_args()
    if args.quick:
        args.images, args.epochs, args.test_size = 1000, 1, 1000

    classifier = {"freeze_batchnorm": True} if args.freeze_batchnorm else {}
    start = time.perf_counter()
    data = mnist()
    rows = {"random_init": []}
    for method in args.methods:
        rows[method] = []
        for seed in args.seeds:
            result = mnist_payoff(method, data, seed=seed, shots=args.shots, images=args.images,
                                  epochs=args.epochs, test_size=args.test_size, modes=args.modes,
                                  classifier=classifier)
            if len(rows["random_init"]) < len(args.seeds):  # same encoder, labels and recipe per seed
                rows["random_init"].append(dict(result["random_init"], seed=seed))
            rows[method].append(dict(result["pretrained"], seed=seed, **result["pretrain"]))
            print(method, seed, result, f"{time.perf_counter() - start:.0f} s", flush=True)

    batch = DIGITS_RECIPES[args.methods[0]]["batch_size"]
    wall = np.mean([r["wall_s"] for m in args.methods for r in rows[m]])
    budget = (f"{args.images:,} unlabelled images x {args.epochs} epochs, batch {batch} "
              f"({args.images // batch * args.epochs} steps, {wall:.0f} s wall each, {os.cpu_count()} CPUs)")
    table = format_table(rows, args.seeds, args.shots, budget, args.test_size or len(data["test_y"]),
                         args.modes)
    total = time.perf_counter() - start
    print(table)
    print(f"total wall time {total:.0f} s")

    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"config": {**vars(args), "classifier": {**MNIST_CLASSIFIER, **classifier},
                              "recipes": {m: DIGITS_RECIPES[m] for m in args.methods}},
                   "budget": budget, "total_wall_s": round(total, 1),
                   "machine": platform.platform(), "cpus": os.cpu_count(),
                   "load_average_at_end": os.getloadavg(), "tensorflow": tf.__version__,
                   "results": rows, "table": table}, f, indent=2)


if __name__ == "__main__":
    main()
