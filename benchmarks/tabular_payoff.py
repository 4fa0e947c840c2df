"""The tabular payoff table: few-label accuracy and AUC after SCARF/VIME pretraining, against the
baselines a practitioner would use (keras_ssl.evaluation.tabular_protocol).

For each seed: the preprocessing is fitted on the training split, SCARF and VIME pretrain
``tabular_encoder(prep, seed)`` on all training rows without their labels, then for each label budget
(``--labels``; ``all`` = every training row) a stratified subset of the training rows is labelled
and every model is scored on the test split:

* ``scratch``: the same MLP + linear head trained on the labels alone (``TABULAR_FINETUNE``);
* ``scarf`` / ``vime``: the pretrained encoder fine-tuned with the same schedule;
* ``scarf probe`` / ``vime probe``: logistic regression on the frozen pretrained embeddings;
* ``logistic``: logistic regression on the preprocessed features;
* ``gbdt``: ``HistGradientBoostingClassifier`` with default settings.

Run: ``python benchmarks/tabular_payoff.py --table adult --seeds 0 1 2`` (``--quick``: 2 pretraining
epochs, 50 and 200 labels, 2,000 test rows). Prints markdown tables (mean ± std over seeds) and writes
``benchmarks/results/tabular_payoff_<table>.json``; ``--update`` replaces only the budgets run now in
that file (every run is deterministic per seed, so the columns of separate runs fit together).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from keras_ssl import datasets
from keras_ssl.backend import tf
from keras_ssl.evaluation.tabular_protocol import (
    TABULAR_ENCODER,
    TABULAR_FINETUNE,
    TABULAR_PRETRAIN,
    fine_tune,
    gradient_boosting,
    label_subset,
    logistic_regression,
    pretrain_tabular,
    probe,
    tabular_encoder,
)
from keras_ssl.tabular import tabular_dataset

TABLES = {"adult": ("income", datasets.adult), "protein": ("target", datasets.protein_homology)}
MODELS = ["scratch", "scarf", "scarf probe", "vime", "vime probe", "logistic", "gbdt"]


def _cell(runs, key):
    values = [r[key] for r in runs if key in r]
    if not values:
        return "-"
    mean = f"{float(np.mean(values)):.3f}"
    return f"{mean} ± {float(np.std(values)):.3f}" if len(values) > 1 else mean


def format_table(results, budgets, metric, title):
    header = ["model"] + [f"{b} labels" if b != "all" else "all labels" for b in budgets]
    lines = [title, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model in MODELS:
        cells = [_cell(results[str(b)][model], metric) for b in budgets]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        return None


def _copy(encoder, prep, seed):
    copy = tabular_encoder(prep, seed)
    copy.set_weights(encoder.get_weights())
    return copy


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table", choices=sorted(TABLES), default="adult")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--labels", nargs="+", default=["50", "200", "1000", "all"],
                        help="label budgets (rows), or 'all'")
    parser.add_argument("--epochs", type=int, default=None, help="pretraining epochs (default: the recipes')")
    parser.add_argument("--test-rows", type=int, default=None, help="score on the first N test rows")
    parser.add_argument("--quick", action="store_true", help="smoke run")
    parser.add_argument("--output", default=None)
    parser.add_argument("--update", action="store_true", help="keep the other budgets already in --output")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.labels, args.test_rows = 2, ["50", "200"], 2000
    label, load = TABLES[args.table]
    budgets = [b if b == "all" else int(b) for b in args.labels]
    results = {str(b): {m: [] for m in MODELS} for b in budgets}
    timings = {}
    start = time.time()
    for seed in args.seeds:
        train_df, test_df = load(seed=seed)
        if args.test_rows:
            test_df = test_df.iloc[:args.test_rows]
        _, prep = tabular_dataset(train_df, label=label)
        encoders = {}
        for method in ("scarf", "vime"):
            t = time.time()
            encoders[method] = pretrain_tabular(method, train_df, prep, seed=seed, epochs=args.epochs).encoder
            timings[f"pretrain_{method}_s"] = round(time.time() - t, 1)
            print(f"seed {seed}: {method} pretrained in {timings[f'pretrain_{method}_s']} s", flush=True)
        for budget in budgets:
            labelled = label_subset(train_df, label, None if budget == "all" else budget, seed=seed)
            row = {
                "scratch": fine_tune(tabular_encoder(prep, seed), prep, labelled, test_df, seed),
                "logistic": logistic_regression(prep, labelled, test_df, seed),
                "gbdt": gradient_boosting(prep, labelled, test_df, seed),
            }
            for method, encoder in encoders.items():
                row[method] = fine_tune(_copy(encoder, prep, seed), prep, labelled, test_df, seed)
                row[f"{method} probe"] = probe(encoder, prep, labelled, test_df, seed)
            for model, scores in row.items():
                results[str(budget)][model].append(scores)
            scores = ", ".join(f"{m} {s['accuracy']:.3f}/{s.get('auc', float('nan')):.3f}"
                               for m, s in row.items())
            print(f"seed {seed}, {budget} labels (accuracy/AUC): {scores}", flush=True)
    output = args.output or os.path.join(os.path.dirname(__file__), "results",
                                         f"tabular_payoff_{args.table}{'_quick' if args.quick else ''}.json")
    if args.update and os.path.exists(output):
        with open(output) as f:
            previous = json.load(f)
        if previous["seeds"] != args.seeds:
            raise SystemExit(f"--update: {output} has seeds {previous['seeds']}, not {args.seeds}.")
        results = {**previous["results"], **results}
        order = ["50", "200", "1000", "all"]
        budgets = sorted({*previous["budgets"], *map(str, budgets)},
                         key=lambda b: order.index(b) if b in order else int(b))
    seeds = ", ".join(map(str, args.seeds))
    tables = [format_table(results, budgets, metric,
                           f"{args.table}, test {metric} ({len(test_df):,} rows), seeds {seeds}")
              for metric in ("accuracy", "auc")]
    print("\n\n".join(tables))
    os.makedirs(os.path.dirname(output), exist_ok=True)
    with open(output, "w") as f:
        json.dump({"table": args.table, "seeds": args.seeds, "budgets": [str(b) for b in budgets],
                   "results": results, "tables_markdown": tables, "encoder": TABULAR_ENCODER,
                   "pretrain": TABULAR_PRETRAIN, "finetune": TABULAR_FINETUNE,
                   "pretrain_epochs": args.epochs, "timings": timings,
                   "total_s": round(time.time() - start, 1),
                   "machine": {"cpu_model": _cpu_model(), "processor": platform.machine(),
                               "cpus": os.cpu_count(), "tensorflow": tf.__version__}}, f, indent=1)
    print("wrote", output)


if __name__ == "__main__":
    main()
