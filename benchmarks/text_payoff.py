"""The text payoff table: few-label classification after adapting MiniLM to the task's own text.

For each task and seed, :func:`keras_ssl.evaluation.text_protocol.text_payoff` adapts the offline
all-MiniLM-L6-v2 with ``MaskedLanguageModel`` on the task's unlabelled training texts (each
recipe of ``ADAPT_RECIPES``: ``naive`` fits straight away, ``keras_ssl`` warms the fresh MLM head up
first), then fine-tunes a ``TextClassifier`` (mean pooling, ``TEXT_CLASSIFIER``) on 16, 64 and 256
labels per class drawn with the seed, from the adapted and from the unadapted MiniLM, and fits
TF-IDF + logistic regression on the same labels. Reports test accuracy and macro-F1.

Run: ``python benchmarks/text_payoff.py --tasks rotten_tomatoes clothing_reviews --seeds 0 1 2``
(``--quick`` for a smoke run: 10 adaptation steps, 16 labels, 200 test texts). Prints a markdown
table (mean ± std over seeds) and writes ``benchmarks/results/text_payoff.json``, with the gains over
the unadapted encoder paired by seed. Seeds or recipes run separately (one process each) merge with
``--combine seed0.json seed1.json ... --output all.json``, which recomputes tables and gains (a seed
run with two recipes in two files must reproduce its baselines exactly).
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

from keras_ssl.evaluation.text_protocol import (  # noqa: E402
    ADAPT_RECIPES,
    TEXT_CLASSIFIER,
    TEXT_SHOTS,
    TEXT_TASKS,
    text_payoff,
)

ROW_NAMES = {"unadapted": "MiniLM, unadapted", "naive": "adapted, naive recipe",
             "keras_ssl": "adapted, keras_ssl recipe", "tfidf": "TF-IDF + logistic regression"}


def _cell(runs, k, mode, metric):
    values = [r[k][mode][metric] if mode else r[k][metric] for r in runs]
    mean = f"{float(np.mean(values)):.3f}"
    return f"{mean} ± {float(np.std(values)):.3f}" if len(values) > 1 else mean


def format_table(task, rows, seeds, shots, test_size):
    """The markdown table of one task (its headline metric): ``rows`` is ``{name: [result per seed]}``."""
    metric = TEXT_TASKS[task]["metric"]
    header = ["encoder"] + [f"{mode} {k}/class" for k in shots for mode in ("probe", "fine-tune")]
    lines = [f"{task}: {metric.replace('_', '-')} on {test_size:,} test texts, mean ± std over seeds "
             f"{', '.join(map(str, seeds))}.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, runs in rows.items():
        name = ROW_NAMES.get(key, key)
        if [r["seed"] for r in runs] != list(seeds):  # a row run on fewer seeds says which
            name += f" (seeds {', '.join(str(r['seed']) for r in runs)})"
        if key == "tfidf":
            cells = [c for k in shots for c in (_cell(runs, str(k), None, metric), "–")]
        else:
            cells = [_cell(runs, str(k), mode, metric) for k in shots for mode in ("probe", "finetune")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_gains(task, rows, shots) -> dict:
    """Each adapted row minus the unadapted one, seed by seed (same labels), on the task's metric:
    ``{"<recipe> <probe|finetune> <k>": {"mean", "std", "per_seed"}}``."""
    metric = TEXT_TASKS[task]["metric"]
    base = {r["seed"]: r for r in rows["unadapted"]}
    gains = {}
    for name, runs in rows.items():
        if name in ("unadapted", "tfidf"):
            continue
        for k in shots:
            for mode in ("probe", "finetune"):
                per_seed = [round(r[str(k)][mode][metric] - base[r["seed"]][str(k)][mode][metric], 3)
                            for r in runs if r["seed"] in base]
                gains[f"{name} {mode} {k}"] = {"mean": round(float(np.mean(per_seed)), 3),
                                               "std": round(float(np.std(per_seed)), 3), "per_seed": per_seed}
    return gains


BASELINES = ("unadapted", "tfidf")  # rows every run of a seed repeats, whatever its recipes


def combine(paths, output) -> str:
    """Merge result files of separate seeds or recipes (same tasks, shots and test size) into ``output``.

    A seed may appear in several files when they ran different recipes: its baselines (unadapted,
    TF-IDF) must then be identical in each, and are kept once (the protocol is deterministic on one
    machine). The same recipe and seed twice is an error.
    """
    parts = []
    for path in paths:
        with open(path) as f:
            parts.append(json.load(f))
    config = dict(parts[0]["config"], output=output)
    for key in ("shots", "test_size", "classifier"):
        if any(p["config"][key] != config[key] for p in parts):
            raise SystemExit(f"--combine: the files differ in {key}; only runs of one protocol merge.")
    config["recipes"] = {name: recipe for p in parts
                         for name, recipe in p["config"].get("recipes", {}).items()}
    results = {}
    for part in parts:
        for task, rows in part["results"].items():
            merged = results.setdefault(task, {})
            for name, runs in rows.items():
                kept = merged.setdefault(name, [])
                for run in runs:
                    same_seed = [r for r in kept if r["seed"] == run["seed"]]
                    if name in BASELINES and same_seed:
                        if same_seed[0] != run:
                            raise SystemExit(f"--combine: seed {run['seed']}'s {name} baseline differs "
                                             "between files; runs of one seed merge only if they "
                                             "reproduce it.")
                        continue
                    if same_seed:
                        raise SystemExit(f"--combine: seed {run['seed']} of {name} appears in more than one "
                                         "file.")
                    kept.append(run)
    order = [name for name in ROW_NAMES if name != "tfidf"]  # baselines first and last, recipes between
    for task, rows in results.items():
        for name in rows:
            rows[name].sort(key=lambda r: r["seed"])
        rank = {name: order.index(name) if name in order else len(order) for name in rows}
        rank["tfidf"] = len(order) + 1
        results[task] = dict(sorted(rows.items(), key=lambda item: rank[item[0]]))
    config["seeds"] = sorted({r["seed"] for rows in results.values() for r in rows["unadapted"]})
    config["combined_from"] = [os.path.relpath(p) for p in paths]
    args = argparse.Namespace(**config)
    wall = sum(p["total_wall_s"] for p in parts)
    return write(args, config.get("overrides", {}), results, wall, config)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TEXT_TASKS), choices=list(TEXT_TASKS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--recipes", nargs="+", default=list(ADAPT_RECIPES), choices=list(ADAPT_RECIPES))
    parser.add_argument("--shots", type=int, nargs="+", default=list(TEXT_SHOTS), help="labels per class")
    parser.add_argument("--test-size", type=int, default=1000, help="seeded test subset (0: all)")
    parser.add_argument("--steps", type=int, default=None, help="adaptation steps (default: the recipe's)")
    parser.add_argument("--quick", action="store_true", help="smoke run")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results",
                                                         "text_payoff.json"))
    parser.add_argument("--combine", nargs="+", metavar="RESULTS_JSON",
                        help="merge the result files of separate seeds into --output; runs nothing")
    args = parser.parse_args()
    if args.combine:
        print(combine(args.combine, args.output))
        return
    overrides = {}
    if args.quick:
        args.shots, args.test_size, args.seeds = [16], 200, args.seeds[:1]
        overrides = {"steps": 10, "head_steps": 5}
    if args.steps is not None:
        overrides["steps"] = args.steps

    start = time.perf_counter()
    results = {}
    for task in args.tasks:
        rows = {name: [] for name in ("unadapted", *args.recipes, "tfidf")}
        results[task] = rows
        for seed in args.seeds:
            result = text_payoff(task, seed=seed, shots=args.shots, recipes=args.recipes,
                                 test_size=args.test_size or None, **overrides)
            for name in rows:
                rows[name].append(dict(result[name], seed=seed, **({"adapt": result["adapt"][name]}
                                                                  if name in result["adapt"] else {})))
            print(task, seed, json.dumps(result), f"{time.perf_counter() - start:.0f} s", flush=True)
            write(args, overrides, results, time.perf_counter() - start)  # a killed run keeps its seeds
    print(write(args, overrides, results, time.perf_counter() - start))
    print(f"total wall time {time.perf_counter() - start:.0f} s")


def write(args, overrides, results, wall, config=None) -> str:
    """Write the results so far (tables over the seeds done, paired gains) to ``args.output``; return
    the tables. ``config``: the configuration to record (default: this run's arguments)."""
    tables = [format_table(task, rows, [r["seed"] for r in rows["unadapted"]], args.shots, args.test_size)
              for task, rows in results.items() if rows["unadapted"]]
    table = "\n\n".join(tables)
    gains = {task: paired_gains(task, rows, args.shots)
             for task, rows in results.items() if rows["unadapted"]}
    if config is None:
        config = {**vars(args), "classifier": TEXT_CLASSIFIER, "overrides": overrides,
                  "recipes": {r: ADAPT_RECIPES[r] for r in args.recipes}}
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"config": config, "total_wall_s": round(wall, 1), "machine": platform.platform(),
                   "cpu": _cpu_name(), "cpus": os.cpu_count(), "load_average_at_end": os.getloadavg(),
                   "results": results, "table": table, "paired_gains_vs_unadapted": gains}, f, indent=2)
    return table


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        return platform.processor()


if __name__ == "__main__":
    main()
