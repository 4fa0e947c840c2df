"""How much of a few-label fine-tuned score is the fine-tune's own luck: classifier restarts, same labels.

``text_payoff.py`` fine-tunes one ``TextClassifier`` per seed, encoder and label budget, so one
unlucky fine-tune (its dropout masks and batch order) can flip a paired gain. Here, for each seed, the
same labelled texts (``text_labels(data, k, seed)``) train ``--restarts`` classifiers from the
unadapted MiniLM and from MiniLM adapted to the task's unlabelled text (``adapt``, ``--recipe``), with
classifier seeds ``seed`` (restart 0: exactly ``text_payoff.py``'s run) and ``seed + 1000 r``. Same
protocol otherwise (``TEXT_CLASSIFIER``, LP-FT, ``--test-size`` held-out texts). Reports each
restart's probe and fine-tuned score and, per seed, the gain of the adapted encoder's mean over
restarts against the unadapted one's: the gain the encoder buys once the fine-tune's luck averages out.

Run: ``python benchmarks/text_finetune_restarts.py --task clothing_reviews --seeds 0 1 2 --shots 16
--restarts 3`` (``--quick``: 10 adaptation steps, 2 restarts, 200 test texts); writes
``benchmarks/results/text_finetune_restarts_<task>.json`` after every seed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from results_file import write_results

if __name__ == "__main__":  # before TensorFlow is imported: keras_ssl's messages only (not when a test
    from keras_ssl.quiet import quiet  # imports summarise: that would quieten the rest of its session)

    quiet()

from keras_ssl.evaluation.text_protocol import (  # noqa: E402
    ADAPT_RECIPES,
    DEFAULT_RECIPE,
    TEXT_TASKS,
    adapt,
    classifier_scores,
    load_task,
    text_labels,
)
from keras_ssl.text import minilm_path  # noqa: E402


def summarise(seeds_out: dict, metric: str) -> dict:
    """Per seed and budget: mean fine-tuned/probe score over restarts of each encoder and the paired
    gain (adapted mean minus unadapted mean); over seeds: mean and std of that gain."""
    summary = {}
    budgets = sorted({k for s in seeds_out.values() for k in s["unadapted"]}, key=int)
    for k in budgets:
        row = {}
        for mode in ("probe", "finetune"):
            gains = []
            for seed, out in seeds_out.items():
                means = {enc: float(np.mean([r[mode][metric] for r in out[enc][k]]))
                         for enc in ("unadapted", "adapted")}
                gains.append(means["adapted"] - means["unadapted"])
                row.setdefault(seed, {})[mode] = {**means, "gain": gains[-1]}
            row[f"{mode}_gain_mean"], row[f"{mode}_gain_std"] = float(np.mean(gains)), float(np.std(gains))
        summary[k] = row
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="clothing_reviews", choices=sorted(TEXT_TASKS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--shots", type=int, nargs="+", default=[16])
    parser.add_argument("--restarts", type=int, default=4)
    parser.add_argument("--recipe", default=DEFAULT_RECIPE, choices=sorted(ADAPT_RECIPES))
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=None, help="adaptation steps (default: the recipe's)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.restarts, args.test_size = 10, 2, 200
    args.output = args.output or os.path.join(os.path.dirname(__file__), "results",
                                              f"text_finetune_restarts_{args.task}.json")
    metric, max_length = TEXT_TASKS[args.task]["metric"], TEXT_TASKS[args.task]["max_length"]
    overrides = {"steps": args.steps} if args.steps else {}
    start, seeds_out = time.perf_counter(), {}
    for seed in args.seeds:
        data = load_task(args.task, test_size=args.test_size, seed=seed)
        test = (data["test_x"], data["test_y"])
        labelled = {str(k): text_labels(data, k, seed=seed) for k in args.shots}
        mlm = adapt(data["train_x"], args.recipe, max_length=max_length, seed=seed, **overrides)
        out = {"adapt_wall_s": round(mlm.adapt_seconds, 1)}
        with tempfile.TemporaryDirectory(prefix="keras_ssl_adapted_") as adapted:
            mlm.save_pretrained(adapted)
            del mlm
            for name, source in (("unadapted", minilm_path()), ("adapted", adapted)):
                out[name] = {}
                for k, train in labelled.items():
                    out[name][k] = []
                    for restart in range(args.restarts):
                        scores = classifier_scores(source, train, test, max_length,
                                                   seed=seed + 1000 * restart)
                        out[name][k].append(scores)
                        print(f"seed {seed} {name} {k}/class restart {restart}: probe "
                              f"{scores['probe'][metric]:.3f} fine-tuned {scores['finetune'][metric]:.3f}",
                              flush=True)
        seeds_out[str(seed)] = out
        summary = summarise(seeds_out, metric)
        write_results(args.output, args, start, metric=metric, seeds=seeds_out, summary=summary)
        for k, row in summary.items():
            gains = ", ".join(f"{row[s]['finetune']['gain']:+.3f}" for s in seeds_out)
            print(f"{k}/class, fine-tuned {metric}: gains of the restart means per seed {gains}; "
                  f"mean {row['finetune_gain_mean']:+.3f} ± {row['finetune_gain_std']:.3f}", flush=True)


if __name__ == "__main__":
    main()
