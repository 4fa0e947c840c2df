"""The GPU benchmark run: MLM, vision and MAE throughput, float32/bf16/fp16, with and without XLA, + MFU.

On a machine with a GPU, ``bash benchmarks/gpu.sh`` (this script with the venv's python) runs, within
``--budget-s`` (default 450 s) of wall time and with no network:

* **MLM** (``benchmarks/mlm_throughput.py``): MiniLM-L6 (``keras_ssl.text.minilm_path()``), seq 128 and
  512, Hugging Face's documented TF path (``hf``, the reference) vs ``MaskedLanguageModel.fit``
  (``ours``);
* **vision** (``benchmarks/vision_throughput.py``): SimCLR ResNet-18 at 32x32, batch 512, the plain
  ``train_step`` (``plain``, the reference) vs ``vision.SimCLR.fit`` (``ours``);
* **MAE** (``benchmarks/mae_throughput.py``): the paper's ViT-B/16 with its 512-d x 8-block decoder at
  224x224, mask ratio 0.75, Hugging Face's documented path (``TFViTMAEForPreTraining`` compiled with its
  built-in loss and ``fit``: ``hf``, the reference) vs ``vision.MAE.fit`` (``ours``);

each at ``float32``, ``mixed_bfloat16`` and ``mixed_float16`` (Keras global policy; loss scaling for
fp16), with and without ``jit_compile=True``. Every row runs in its own process (``--per-run-timeout-s``,
default 150 s): a hung or out-of-memory configuration is recorded as failed and the rest continue; on
an out-of-memory error the row is retried once at half the batch. Rows run in priority order (float32
and bf16 at seq 128 first, then XLA, fp16 and seq 512) and those the budget leaves no time for are
recorded as skipped, so the run never overruns. With two or more GPUs visible it also runs the
one-vs-two-replica check on two GPUs (one optimizer step of SimCLR, BYOL, SwAV and Barlow Twins on one
GPU and under ``MirroredStrategy`` on two; ``relative_step_diff`` as in ``tests/numerics.py``, bound 1e-3).

Batch rule (by GPU memory ``M`` GiB from ``nvidia-smi``; 16 GiB if unknown): MLM tokens per batch =
the largest power of two <= 256 x M (80 GiB: 16384 tokens, batch 128 at seq 128 and 32 at seq 512);
vision batch 512 (256 below 16 GiB); MAE batch 256 (128 below 40 GiB, 64 below 16 GiB). Every row
also reports the TensorFlow allocator's peak GPU memory (``peak_gpu_mb``), for "faster with no more
memory" comparisons.

MFU = achieved model FLOP/s / the device's peak dense FLOP/s for the precision used (``PEAK_TFLOPS``:
bf16 / fp16 tensor cores; float32 counts TF32 where TensorFlow enables it, compute capability >= 8.0).
Model FLOPs per training step are 3 x the forward FLOPs (forward + backward), counting matrix
products and convolutions only:

* MLM, analytically (:func:`bert_mlm_train_flops`): per token ``2 x (L (4 H^2 + 2 H I + 2 S H) + H^2 + H V)``
  (projections, feed-forward, attention scores and values, the MLM head's transform and its full
  vocabulary projection), i.e. the standard ``6 N T`` + attention term; it equals TF's profiler count
  on the traced graph (tested). Every path gets the same count, so ``ours``' MFU credits it with the
  full-logits FLOPs it avoids by projecting only the masked positions;
* vision, TF's profiler (:func:`graph_flops`, Conv2D/MatMul ops of the traced encoder + projection
  forward pass at batch 1), x 2 views;
* MAE, TF's profiler on one image's forward pass (encoder on the visible patches, decoder on all).

Output: one markdown table (benchmark, path, precision, jit, batch, throughput, ratio to the reference
path at the same precision/XLA/seq, ratio to the float32 reference, TFLOP/s, MFU, peak GPU MiB) and
``benchmarks/results/gpu_<device>.json`` with the device name, compute capability, driver, memory,
TensorFlow's CUDA/cuDNN build and every row. Without a visible GPU it exits with status 2 at once.
``--dry-run`` runs the same code path on the CPU with tiny models (seq 16, batch 2, one step; a few
rows) and writes to a temporary file: the test suite runs it.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import glob
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Callable, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
BENCHMARKS = ("mlm", "vision", "mae")
REFERENCE = {"mlm": "hf", "vision": "plain", "mae": "hf"}
NO_GPU_EXIT = 2
STEP_RTOL = 1e-3  # tests/numerics.py
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "TRANSFORMERS_VERBOSITY": "error", "TRANSFORMERS_OFFLINE": "1",
             "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
             "TOKENIZERS_PARALLELISM": "false"}
OOM_PATTERNS = ("ResourceExhausted", "OOM when allocating", "out of memory", "Out of memory")

# Peak dense TFLOP/s (no sparsity) from NVIDIA's data sheets, matched in order against the lower-cased
# device name. "tf32": tensor-core float32 (Ampere and later, TensorFlow's default there); "fp32": CUDA
# cores. None: no such tensor cores (bf16 before Ampere).
PEAK_TFLOPS = (
    ("h200 nvl", "H200 NVL", {"bf16": 835.0, "fp16": 835.0, "tf32": 417.5, "fp32": 60.0}),
    ("h200", "H200 SXM", {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    ("h100 nvl", "H100 NVL", {"bf16": 835.0, "fp16": 835.0, "tf32": 417.5, "fp32": 60.0}),
    ("h100 pcie", "H100 PCIe", {"bf16": 756.5, "fp16": 756.5, "tf32": 378.0, "fp32": 51.2}),
    ("h100", "H100 SXM", {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    ("a100", "A100", {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5}),
    ("l40s", "L40S", {"bf16": 362.1, "fp16": 362.1, "tf32": 183.0, "fp32": 91.6}),
    ("a10g", "A10G", {"bf16": 70.0, "fp16": 70.0, "tf32": 35.0, "fp32": 31.2}),
    ("a10", "A10", {"bf16": 125.0, "fp16": 125.0, "tf32": 62.5, "fp32": 31.2}),
    ("l4", "L4", {"bf16": 121.0, "fp16": 121.0, "tf32": 60.0, "fp32": 30.3}),
    ("v100", "V100", {"bf16": None, "fp16": 125.0, "tf32": None, "fp32": 15.7}),
    ("t4", "T4", {"bf16": None, "fp16": 65.0, "tf32": None, "fp32": 8.1}),
)


# --- FLOP counting ---------------------------------------------------------------------------------
def bert_mlm_train_flops(layers: int, hidden: int, intermediate: int, vocab: int, seq_len: int) -> float:
    """Training FLOPs (3 x forward) of one sequence of a BERT masked LM with full logits.

    Forward per token: ``2 x (L (4 H^2 + 2 H I + 2 S H) + H^2 + H V)`` multiply-adds x 2; the Q/K/V/O
    projections, the feed-forward, attention scores and values, the MLM head's transform and its
    vocabulary projection. Embedding look-ups, norms and element-wise ops are not counted.
    """
    per_token = layers * (4 * hidden**2 + 2 * hidden * intermediate + 2 * seq_len * hidden)
    per_token += hidden**2 + hidden * vocab
    return 3.0 * 2.0 * per_token * seq_len


def graph_flops(fn: Callable, *specs) -> float:
    """FLOPs of the matrix products and convolutions in ``tf.function(fn)`` traced at ``specs``.

    TF's profiler (``tf.compat.v1.profiler``, ``float_operation``) on the traced graph, restricted to
    Conv2D / MatMul / BatchMatMul / depthwise ops (a Dense layer ``[batch, in] -> [batch, out]``
    counts ``2 * batch * in * out``). Shapes must be fully defined.
    """
    from keras_ssl.backend import tf

    graph = tf.function(fn).get_concrete_function(*specs).graph
    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    options = builder(builder.float_operation()).with_empty_output().build()
    options["account_type_regexes"] = ["Conv2D", "MatMul", "BatchMatMul.*", "DepthwiseConv2dNative"]
    return float(tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops)


def peak_tflops(device_name: str, precision: str, tf32: bool = True) -> tuple:
    """``(peak dense TFLOP/s or None, note)`` of ``device_name`` for a Keras ``precision`` policy."""
    kind = {"mixed_bfloat16": "bf16", "mixed_float16": "fp16"}.get(precision, "tf32" if tf32 else "fp32")
    name = (device_name or "").lower()
    for pattern, label, peaks in PEAK_TFLOPS:
        if pattern in name:
            peak = peaks[kind] if peaks[kind] is not None or kind != "tf32" else peaks["fp32"]
            if peak is None:
                return None, f"{label} has no {kind} tensor cores"
            return peak, f"{label} {kind} dense peak {peak:g} TFLOP/s"
    return None, f"no peak known for {device_name!r}: MFU left empty (add it to PEAK_TFLOPS)"


def achieved_flops(result: dict) -> Optional[float]:
    """Model FLOP/s a successful row achieved (see the module docstring), or None."""
    if result.get("benchmark") == "mlm" and "tokens_per_s" in result and result.get("model_dims"):
        dims, seq = result["model_dims"], result["seq_len"]
        return result["tokens_per_s"] / seq * bert_mlm_train_flops(seq_len=seq, **dims)
    per_view = result.get("forward_flops_per_view")
    if result.get("benchmark") == "vision" and "images_per_s" in result and per_view:
        return result["images_per_s"] * 2 * 3 * per_view
    per_image = result.get("forward_flops_per_image")
    if result.get("benchmark") == "mae" and "images_per_s" in result and per_image:
        return result["images_per_s"] * 3 * per_image
    return None


def error_line(err: Exception) -> str:
    """The innermost ``SomeError: message`` line of a (Keras-wrapped) exception, else its first line
    (worker scripts report a failed row with it)."""
    lines = [line.strip() for line in str(err).splitlines() if re.match(r"\s*\w+(Error|Exception): ", line)]
    return (lines[-1] if lines else f"{type(err).__name__}: {str(err).strip().splitlines()[0]}")[:300]


def peak_gpu_mb() -> Optional[float]:
    """The TensorFlow allocator's peak memory on the first GPU in MiB since the process began, or None
    without a GPU (worker scripts add it to their results)."""
    from keras_ssl.backend import tf

    if not tf.config.list_physical_devices("GPU"):
        return None
    return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20


# --- the matrix --------------------------------------------------------------------------------------
@dataclasses.dataclass
class Row:
    """One configuration: a benchmark's path at a precision, with or without XLA."""

    benchmark: str
    path: str
    precision: str
    jit: bool
    batch: int
    seq_len: Optional[int] = None

    @property
    def name(self) -> str:
        seq = f" seq {self.seq_len}" if self.seq_len else ""
        return f"{self.benchmark}{seq} {self.path} {self.precision}{' xla' if self.jit else ''}"


def mlm_batch(memory_gib: float, seq_len: int) -> int:
    """The largest power of two <= ``256 * memory_gib / seq_len`` (at least 1)."""
    tokens = max(1, int(256 * memory_gib))
    batch = max(1, tokens // seq_len)
    return 1 << (batch.bit_length() - 1)


def vision_batch(memory_gib: float) -> int:
    return 512 if memory_gib >= 16 else 256


def mae_batch(memory_gib: float) -> int:
    return 256 if memory_gib >= 40 else 128 if memory_gib >= 16 else 64


def matrix(benchmarks, seq_lens, precisions, jits, mlm_batches: dict, vision_batch_size: int,
           mae_batch_size: int = 256) -> list:
    """Every row, in priority order: ``precision rank + 2 x jit + 3 x (not the first seq)``, then
    benchmark, seq, precision, jit and path (reference first), so a reference and ``ours`` stay adjacent."""
    rank = {p: i for i, p in enumerate(PRECISIONS)}
    rows = []
    for benchmark in benchmarks:
        for seq in (seq_lens if benchmark == "mlm" else [None]):
            for precision in precisions:
                for jit in jits:
                    for path in (REFERENCE[benchmark], "ours"):
                        batch = {"mlm": mlm_batches.get(seq), "vision": vision_batch_size,
                                 "mae": mae_batch_size}[benchmark]
                        rows.append(Row(benchmark, path, precision, jit, batch, seq))

    def priority(row: Row):
        later_seq = int(row.seq_len is not None and row.seq_len != seq_lens[0])
        tier = rank[row.precision] + 2 * int(row.jit) + 3 * later_seq
        return (tier, BENCHMARKS.index(row.benchmark), row.seq_len or 0, rank[row.precision], row.jit,
                row.path != REFERENCE[row.benchmark])

    return sorted(rows, key=priority)


def worker_command(row: Row, settings: argparse.Namespace) -> list:
    """The throughput script's own single-path worker for ``row``."""
    common = ["--batch-size", str(row.batch), "--steps", str(settings.steps), "--repeats",
              str(settings.repeats), "--warmup", str(settings.warmup), "--precision", row.precision,
              *(["--jit"] if row.jit else []), *(["--tiny"] if settings.dry_run else [])]
    if row.benchmark == "mlm":
        return [sys.executable, os.path.join(HERE, "mlm_throughput.py"), "--only", row.path, "--json",
                "--seq-len", str(row.seq_len), *common]
    if row.benchmark == "mae":
        shape = ["tiny", "32", "4"] if settings.dry_run else ["base", "224", "16"]
        return [sys.executable, os.path.join(HERE, "mae_throughput.py"), "--worker", row.path, "--flops",
                "--batch", str(row.batch), "--steps", str(settings.steps * settings.repeats), "--warmup",
                str(settings.warmup), "--precision", row.precision, *(["--jit"] if row.jit else []),
                "--size", shape[0], "--image-size", shape[1], "--patch-size", shape[2]]
    return [sys.executable, os.path.join(HERE, "vision_throughput.py"), "--worker", row.path, "--flops",
            *common]


def worker_env(first_gpu_only: bool) -> dict:
    env = {**os.environ, **QUIET_ENV}
    if first_gpu_only:
        visible = env.get("CUDA_VISIBLE_DEVICES", "").strip()
        env["CUDA_VISIBLE_DEVICES"] = visible.split(",")[0] if visible else "0"
    return env


def run_row(row: Row, settings: argparse.Namespace, timeout_s: float) -> dict:
    """Run ``row`` in its own process; its result dict, or ``status`` failed/timeout/oom with the reason."""
    start = time.monotonic()
    base = {**dataclasses.asdict(row), "batch_size": row.batch}
    try:
        proc = subprocess.run(worker_command(row, settings), capture_output=True, text=True,
                              timeout=timeout_s, env=worker_env(first_gpu_only=not settings.dry_run))
    except subprocess.TimeoutExpired:
        return {**base, "status": "timeout", "error": f"no result within {timeout_s:.0f} s",
                "wall_s": time.monotonic() - start}
    wall = time.monotonic() - start
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {}
    if proc.returncode or not lines or "error" in result:
        text = result.get("error") or "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        status = "oom" if any(p in text or p in proc.stderr for p in OOM_PATTERNS) else "failed"
        return {**base, "status": status, "error": text[-1500:], "returncode": proc.returncode,
                "wall_s": wall}
    return {**result, **base, "status": "ok", "wall_s": wall}


def run_matrix(rows: list, runner: Callable, budget_s: float, per_run_timeout_s: float,
               min_row_s: float = 20.0, clock: Callable = time.monotonic, log=print) -> list:
    """Run ``rows`` in order with ``runner(row, timeout_s)``, within ``budget_s`` seconds in all.

    A row gets ``min(per_run_timeout_s, time left)``; once less than ``min_row_s`` is left the
    remaining rows are recorded as ``skipped``. An ``oom`` row is retried once at half its batch.
    """
    deadline = clock() + budget_s
    results = []
    for row in rows:
        left = deadline - clock()
        if left < min_row_s:
            results.append({**dataclasses.asdict(row), "batch_size": row.batch, "status": "skipped",
                            "error": f"time budget of {budget_s:.0f} s spent"})
            log(f"  {row.name}: skipped (budget)")
            continue
        result = runner(row, min(per_run_timeout_s, left))
        if result.get("status") == "oom" and row.batch > 1 and deadline - clock() >= min_row_s:
            halved = dataclasses.replace(row, batch=row.batch // 2)
            log(f"  {row.name}: out of memory at batch {row.batch}; retrying at {halved.batch}")
            result = {**runner(halved, min(per_run_timeout_s, deadline - clock())), "oom_batch": row.batch}
        results.append(result)
        rate = result.get("tokens_per_s") or result.get("images_per_s")
        log(f"  {row.name}: " + (f"{rate:.1f}/s ({result.get('wall_s', 0):.0f} s)" if rate is not None
                                else f"{result.get('status')}: {str(result.get('error', ''))[-200:]}"))
    return results


# --- the report ---------------------------------------------------------------------------------------
def _throughput(result: dict) -> Optional[float]:
    return result.get("tokens_per_s", result.get("images_per_s"))


def add_ratios_and_mfu(results: list, device_name: str, tf32: bool) -> None:
    """Add ``ratio_vs_reference`` (same benchmark, seq, precision and XLA), ``ratio_vs_float32_reference``,
    ``achieved_tflops``, ``peak_tflops``, ``mfu`` and ``mfu_note`` to each result, in place."""
    def key(r, precision, jit, path):
        return r["benchmark"], r.get("seq_len"), precision, jit, path

    def reference(r, precision, jit):
        wanted = key(r, precision, jit, REFERENCE[r["benchmark"]])
        return next((_throughput(o) for o in results
                     if key(o, o["precision"], o["jit"], o["path"]) == wanted), None)

    for r in results:
        rate = _throughput(r)
        same, base = reference(r, r["precision"], r["jit"]), reference(r, "float32", False)
        r["ratio_vs_reference"] = rate / same if rate and same else None
        r["ratio_vs_float32_reference"] = rate / base if rate and base else None
        flops = achieved_flops(r)
        peak, note = peak_tflops(device_name, r["precision"], tf32)
        r["achieved_tflops"] = flops / 1e12 if flops else None
        r["peak_tflops"] = peak
        r["mfu"] = flops / (peak * 1e12) if flops and peak else None
        r["mfu_note"] = note


def markdown_table(results: list) -> str:
    def fmt(value, spec, suffix=""):
        return "" if value is None else f"{value:{spec}}{suffix}"

    lines = ["| benchmark | path | precision | jit | batch | throughput | vs reference | vs fp32 reference "
             "| TFLOP/s | MFU | peak GPU MiB | status |", "|" + "---|" * 12]
    for r in results:
        name = r["benchmark"] + (f" seq {r['seq_len']}" if r.get("seq_len") else "")
        unit = "tokens/s" if r["benchmark"] == "mlm" else "images/s"
        rate = _throughput(r)
        lines.append(
            f"| {name} | {r['path']} | {r['precision']} | {'xla' if r['jit'] else ''} | {r['batch_size']} | "
            f"{fmt(rate, '.1f', ' ' + unit)} | {fmt(r.get('ratio_vs_reference'), '.2f', 'x')} | "
            f"{fmt(r.get('ratio_vs_float32_reference'), '.2f', 'x')} | "
            f"{fmt(r.get('achieved_tflops'), '.3g')} | {fmt(r.get('mfu'), '.1%')} | "
            f"{fmt(r.get('peak_gpu_mb'), '.0f')} | {r['status']} |")
    return "\n".join(lines)


# --- the machine --------------------------------------------------------------------------------------
def gpu_hint() -> Optional[str]:
    """Why a GPU may be here (a driver tool or device node), or None: checked before TensorFlow loads."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in ("", "-1"):
        return None
    for where in ("/dev/nvidia0", "/dev/nvidiactl", "/dev/kfd", *glob.glob("/proc/driver/nvidia/gpus/*")):
        if os.path.exists(where):
            return where
    return shutil.which("nvidia-smi")


def nvidia_smi() -> list:
    """``[{name, driver_version, memory_total_mib}]`` per GPU from nvidia-smi ([] if unavailable)."""
    tool = shutil.which("nvidia-smi")
    if not tool:
        return []
    try:
        out = subprocess.run([tool, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            memory = re.match(r"(\d+)", parts[2])
            gpus.append({"name": parts[0], "driver_version": parts[1],
                         "memory_total_mib": int(memory.group(1)) if memory else None})
    return gpus


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "CPU")
    except OSError:
        return platform.processor() or "CPU"


def machine(gpus: list) -> dict:
    """Device, driver and TensorFlow build details (no TensorFlow op runs: no GPU memory is taken)."""
    from keras_ssl.backend import tf

    build = dict(tf.sysconfig.get_build_info())
    details = [dict(tf.config.experimental.get_device_details(g)) for g in gpus]
    smi = nvidia_smi()
    first = details[0] if details else {}
    capability = first.get("compute_capability")
    memory_mib = smi[0]["memory_total_mib"] if smi else None
    return {
        "device_name": first.get("device_name") or (smi[0]["name"] if smi else cpu_model()),
        "device_kind": "GPU" if gpus else "CPU",
        "gpu_count": len(gpus),
        "compute_capability": list(capability) if capability else None,
        "driver_version": smi[0]["driver_version"] if smi else None,
        "memory_total_mib": memory_mib,
        "gpus": [{**d, **({"compute_capability": list(d["compute_capability"])}
                          if d.get("compute_capability") else {})} for d in details],
        "nvidia_smi": smi,
        "tf_version": tf.__version__,
        "tf_build": {k: build.get(k) for k in ("is_cuda_build", "is_rocm_build", "cuda_version",
                                               "cudnn_version", "cuda_compute_capabilities")},
        "tensor_float_32": bool(tf.config.experimental.tensor_float_32_execution_enabled()),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "device"


# --- the replica check ----------------------------------------------------------------------------------
REPLICA_METHODS = ("SimCLR", "BYOL", "SwAV", "BarlowTwins")


def replica_worker(on_cpu: bool) -> int:
    """One optimizer step of each of :data:`REPLICA_METHODS` on one device and on two; a JSON line each.

    The logic of ``tests/scripts/vision_replicas.py`` on two real GPUs (``on_cpu``: two logical CPU
    devices, as the test suite does).
    """
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from keras_ssl.backend import keras, tf

    if on_cpu:
        tf.config.set_logical_device_configuration(
            tf.config.list_physical_devices("CPU")[0],
            [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
        devices = ["/cpu:0", "/cpu:1"]
    else:
        devices = ["/gpu:0", "/gpu:1"]
    import numpy as np
    from numerics import relative_step_difference
    from tiny_vision import TINY_HEADS, tiny_images

    from keras_ssl import vision
    from keras_ssl.vision.backbones import small_cnn

    def step(name, strategy, start=None):
        data = tf.data.Dataset.from_tensors(tiny_images(name, np.random.default_rng(0), 16, 12))
        with strategy.scope():
            keras.utils.set_random_seed(0)
            encoder = small_cnn((12, 12, 1), width=4, sync_batchnorm=True)
            model = getattr(vision, name)(encoder, augment=None, **TINY_HEADS[name]())
            if start is not None:
                model.set_weights(start)
            model.compile(optimizer=keras.optimizers.SGD(0.5))
        before = [w.copy() for w in model.get_weights()]
        history = model.fit(data, epochs=1, verbose=0).history
        return before, model.get_weights(), history["loss"][0]

    mirrored = tf.distribute.MirroredStrategy(devices)
    for name in REPLICA_METHODS:
        start, one, loss_one = step(name, tf.distribute.get_strategy())
        _, two, loss_two = step(name, mirrored, start)
        print(json.dumps({"method": name, "loss": [loss_one, loss_two], "devices": devices,
                          "relative_step_diff": relative_step_difference(start, one, two)}), flush=True)
    return 0


def replica_check(on_cpu: bool, timeout_s: float) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--replica-worker", *(["--dry-run"] if on_cpu else [])]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=worker_env(False))
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "error": f"no result within {timeout_s:.0f} s"}
    methods = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or len(methods) != len(REPLICA_METHODS):
        return {"status": "failed", "methods": methods,
                "error": "\n".join(proc.stderr.strip().splitlines()[-8:])}
    worst = max(m["relative_step_diff"] for m in methods)
    return {"status": "ok", "methods": methods, "max_relative_step_diff": worst, "bound": STEP_RTOL,
            "passed": worst <= STEP_RTOL}


# --- main ------------------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="CPU smoke run of the same code path: tiny models, seq 16, batch 2, 1 step")
    parser.add_argument("--budget-s", type=float, default=450.0, help="wall-time budget for all rows")
    parser.add_argument("--per-run-timeout-s", type=float, default=150.0)
    parser.add_argument("--benchmarks", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--jit", choices=("both", "on", "off"), default="both")
    parser.add_argument("--seq-lens", nargs="+", type=int, default=[128, 512])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (tracing, XLA)")
    parser.add_argument("--replica-check", choices=("auto", "on", "off"), default="auto",
                        help="auto: when two or more GPUs are visible")
    parser.add_argument("--output", help="JSON path (default benchmarks/results/gpu_<device>.json; "
                                         "a temporary file with --dry-run)")
    parser.add_argument("--replica-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.dry_run:
        args.steps, args.repeats, args.warmup = 1, 1, 1
        if args.seq_lens == [128, 512]:
            args.seq_lens = [16]
    if min(args.steps, args.repeats, args.warmup, min(args.seq_lens) - 2) < 1 or args.budget_s <= 0:
        parser.error("--steps, --repeats and --warmup must be >= 1, --seq-lens > 2 and --budget-s > 0.")
    return args


def dry_run_rows(rows: list) -> list:
    """The dry run's few rows (each a worker process; a few on 2 cores): MLM's reference and ``ours`` at
    mixed_bfloat16, vision's plain step at mixed_float16 (its loss scaling) and MAE's ``ours`` at
    float32, no XLA (compiling dominates on a CPU)."""
    keep = {("mlm", "mixed_bfloat16", "hf"), ("mlm", "mixed_bfloat16", "ours"),
            ("vision", "mixed_float16", "plain"), ("mae", "float32", "ours")}
    return [r for r in rows if (r.benchmark, r.precision, r.path) in keep and not r.jit]


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.replica_worker:
        return replica_worker(on_cpu=args.dry_run)
    start = time.monotonic()
    if not args.dry_run and gpu_hint() is None:
        print("benchmarks/gpu.py: no GPU visible (no NVIDIA/ROCm device or driver found, or "
              "CUDA_VISIBLE_DEVICES hides them); run it on a GPU machine, or pass --dry-run for the CPU "
              "smoke run.", file=sys.stderr)
        return NO_GPU_EXIT
    from keras_ssl.backend import tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus and not args.dry_run:
        build = tf.sysconfig.get_build_info()
        print(f"benchmarks/gpu.py: TensorFlow {tf.__version__} sees no GPU (CUDA build: "
              f"{build.get('is_cuda_build')}, CUDA {build.get('cuda_version')}); check the driver and "
              "`pip install tensorflow[and-cuda]`, or pass --dry-run for the CPU smoke run.", file=sys.stderr)
        return NO_GPU_EXIT
    info = machine(gpus)
    memory_gib = (info["memory_total_mib"] or 16 * 1024) / 1024
    if args.dry_run:
        mlm_batches, vision_batch_size, mae_batch_size = {s: 2 for s in args.seq_lens}, 2, 2
    else:
        mlm_batches = {s: mlm_batch(memory_gib, s) for s in args.seq_lens}
        vision_batch_size, mae_batch_size = vision_batch(memory_gib), mae_batch(memory_gib)
    jits = {"both": [False, True], "on": [True], "off": [False]}[args.jit]
    rows = matrix(args.benchmarks, args.seq_lens, args.precisions, jits, mlm_batches, vision_batch_size,
                  mae_batch_size)
    if args.dry_run:
        rows = dry_run_rows(rows)
    replicas = args.replica_check == "on" or (args.replica_check == "auto" and len(gpus) >= 2)
    replica_reserve = 120.0 if replicas else 0.0
    print(f"gpu benchmark: {info['device_name']} ({info['device_kind']}, {len(gpus)} GPU(s), "
          f"{info['memory_total_mib'] or '?'} MiB, driver {info['driver_version']}), TF {info['tf_version']} "
          f"CUDA {info['tf_build']['cuda_version']}; {len(rows)} rows in a {args.budget_s:.0f} s budget"
          f"{' (dry run)' if args.dry_run else ''}", flush=True)
    has_datasets = importlib.util.find_spec("datasets") is not None
    if not has_datasets and "mlm" in args.benchmarks:
        print("WARNING: `datasets` is not installed: the hf reference rows are skipped and MLM has no "
              "ratios; install the bench extra first: pip install -e '.[bench]'", flush=True)

    def runner(row, timeout_s):
        if row.path == "hf" and not has_datasets:
            return {**dataclasses.asdict(row), "batch_size": row.batch, "status": "skipped",
                    "error": "the hf path needs the bench extra: pip install -e '.[bench]' (datasets)"}
        return run_row(row, args, timeout_s)

    elapsed = time.monotonic() - start
    results = run_matrix(rows, runner, args.budget_s - replica_reserve - elapsed, args.per_run_timeout_s,
                         min_row_s=5.0 if args.dry_run else 20.0, log=lambda s: print(s, flush=True))
    add_ratios_and_mfu(results, info["device_name"] if gpus else "", info["tensor_float_32"])
    replica = replica_check(on_cpu=not gpus, timeout_s=replica_reserve) if replicas else None
    table = markdown_table(results)
    print()
    print(table)
    if replica:
        verdict = "PASS" if replica.get("passed") else "FAIL"
        detail = (f", max relative step difference {replica['max_relative_step_diff']:.2e} "
                  f"(bound {STEP_RTOL:g})" if replica["status"] == "ok" else f": {replica.get('error')}")
        print(f"\none vs two replicas: {verdict if replica['status'] == 'ok' else replica['status']}{detail}")
    output = args.output or (os.path.join(tempfile.gettempdir(), "keras_ssl_gpu_dry_run.json") if args.dry_run
                             else os.path.join(RESULTS, f"gpu_{slug(info['device_name'])}.json"))
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    report = {
        "benchmark": "gpu",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "dry_run": args.dry_run,
        "config": {k: getattr(args, k) for k in ("budget_s", "per_run_timeout_s", "benchmarks", "precisions",
                                                 "jit", "seq_lens", "steps", "repeats", "warmup")},
        "batch_rule": {"memory_gib": memory_gib, "mlm": {str(k): v for k, v in mlm_batches.items()},
                       "vision": vision_batch_size, "mae": mae_batch_size},
        "machine": info,
        "results": results,
        "replica_check": replica,
        "table": table,
        "wall_s": time.monotonic() - start,
    }
    with open(output, "w") as f:
        json.dump(report, f, indent=2)
    print(f"\nresults: {output} ({report['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
