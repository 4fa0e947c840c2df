"""Does interpolating the adapted and the original encoder rescue few-label fine-tuning?

WiSE-FT (Wortsman et al., 2022, "Robust fine-tuning of zero-shot models") averages the weights of a
fine-tuned model with those of the model it started from. Here the pair is MiniLM adapted to the
task's unlabelled text (``text_protocol.adapt``, the default recipe) and the original MiniLM: the
encoder becomes ``alpha * adapted + (1 - alpha) * original`` (``alpha`` 0: unadapted, 1: adapted),
and each blend is scored as in ``benchmarks/text_payoff.py`` (``classifier_scores``): the probe and the
fine-tuned classifier with 16 labels per class, and the probe with 256 labels per class, on 1,000
seeded Rotten Tomatoes test snippets.

Run: ``python benchmarks/text_weight_interpolation.py --seeds 0 1 2 --alphas 0 0.3 1`` (about 25 min
per seed and three alphas on 2 idle cores). Prints one line per (seed, alpha) and writes
``benchmarks/results/text_weight_interpolation.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

from keras_ssl.quiet import quiet

quiet()  # before TensorFlow is imported: keras_ssl's messages only

from keras_ssl.evaluation.text_protocol import (  # noqa: E402
    adapt,
    classifier_scores,
    load_task,
    text_labels,
)
from keras_ssl.text import MaskedLanguageModel, minilm_path  # noqa: E402


def _encoder_weights(mlm):
    """The encoder's variables (the MLM head excluded), in creation order."""
    return getattr(mlm.hf_model, mlm.hf_model.base_model_prefix).weights


def _relative_name(variable) -> str:
    """The variable's name below its model (two instances of one model differ only in the first part)."""
    return variable.name.split("/", 1)[1]


def interpolation_scores(seed: int, alphas, test_size: int = 1000, **adapt_overrides) -> dict:
    """``{alpha: {"p16", "ft16", "p256"}}`` (accuracies) for one seed; ``adapt_overrides`` replace
    entries of the adaptation recipe."""
    data = load_task("rotten_tomatoes", test_size=test_size, seed=seed)
    test = (data["test_x"], data["test_y"])
    labels_16, labels_256 = text_labels(data, 16, seed=seed), text_labels(data, 256, seed=seed)
    mlm = adapt(data["train_x"], max_length=64, seed=seed, **adapt_overrides)
    adapted = [w.numpy() for w in _encoder_weights(mlm)]
    original = {_relative_name(w): w.numpy() for w in _encoder_weights(MaskedLanguageModel.from_pretrained(
        minilm_path()))}
    names = [_relative_name(w) for w in _encoder_weights(mlm)]
    if sorted(names) != sorted(original):
        raise RuntimeError("the adapted and the original encoder have different variables")
    out = {}
    for alpha in alphas:
        for variable, weight, name in zip(_encoder_weights(mlm), adapted, names):
            variable.assign(alpha * weight + (1 - alpha) * original[name])
        with tempfile.TemporaryDirectory(prefix="keras_ssl_blend_") as directory:
            mlm.save_pretrained(directory)
            few = classifier_scores(directory, labels_16, test, 64, seed)
            many = classifier_scores(directory, labels_256, test, 64, seed, finetune=False)
        out[str(alpha)] = {"p16": few["probe"]["accuracy"], "ft16": few["finetune"]["accuracy"],
                           "p256": many["probe"]["accuracy"]}
        print(seed, alpha, out[str(alpha)], flush=True)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.3, 1.0])
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="smoke run: 10 adaptation steps, 200 tests")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results",
                                                         "text_weight_interpolation.json"))
    args = parser.parse_args()
    start = time.perf_counter()
    overrides = {"steps": 10, "head_steps": 5} if args.quick else {}
    if args.quick:
        args.seeds, args.test_size = args.seeds[:1], 200
    results = {}
    for seed in args.seeds:
        results[str(seed)] = interpolation_scores(seed, args.alphas, args.test_size, **overrides)
        with open(args.output, "w") as f:  # after every seed: a killed run keeps what it measured
            json.dump({"config": vars(args), "machine": platform.platform(), "cpus": os.cpu_count(),
                       "overrides": overrides, "wall_s": round(time.perf_counter() - start, 1),
                       "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
