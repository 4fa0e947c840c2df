"""benchmarks/gpu.py: FLOP counts against hand computations, the scheduler, the report, and the CPU runs.

The GPU run itself needs a GPU; here: ``--dry-run`` end to end (tiny models on the CPU, the same worker
processes), the fast exit without a GPU, and each piece with made-up inputs.
"""

import json
import os
import subprocess
import sys
import time

import gpu
import numpy as np
import pytest

BENCHMARKS = os.path.dirname(os.path.abspath(gpu.__file__))

RESULT_KEYS = {"benchmark", "path", "precision", "jit", "batch_size", "status", "ratio_vs_reference",
               "ratio_vs_float32_reference", "achieved_tflops", "peak_tflops", "mfu", "mfu_note"}


# --- FLOP counting -----------------------------------------------------------------------------------
def test_graph_flops_of_dense_and_conv_match_hand_counts():
    from keras_ssl.backend import keras, tf

    dense = keras.layers.Dense(5)
    assert gpu.graph_flops(lambda x: dense(x), tf.TensorSpec([3, 7])) == 2 * 3 * 7 * 5
    conv = keras.layers.Conv2D(4, 3, padding="same")  # 8x8 outputs, each 3*3*2 multiply-adds per filter
    assert gpu.graph_flops(lambda x: conv(x), tf.TensorSpec([1, 8, 8, 2])) == 2 * 8 * 8 * 4 * 3 * 3 * 2
    # Element-wise work (bias, activation) is not counted.
    relu_dense = keras.layers.Dense(5, activation="relu")
    assert gpu.graph_flops(lambda x: relu_dense(x) * 2.0, tf.TensorSpec([3, 7])) == 2 * 3 * 7 * 5


def test_bert_formula_matches_a_hand_count_and_the_profiler(minilm_tokenizer):
    from tiny_text import tiny_deterministic_mlm

    from keras_ssl.backend import tf

    layers, hidden, intermediate, vocab, seq = 1, 32, 64, len(minilm_tokenizer), 16
    per_token = (4 * hidden * hidden + 2 * hidden * intermediate + 2 * seq * hidden  # one layer
                 + hidden * hidden + hidden * vocab)  # MLM head: transform + vocabulary projection
    expected = 3 * 2 * per_token * seq
    assert gpu.bert_mlm_train_flops(layers, hidden, intermediate, vocab, seq) == expected
    hf = tiny_deterministic_mlm(minilm_tokenizer).hf_model
    assert hf.config.vocab_size == vocab
    forward = gpu.graph_flops(lambda ids: hf(input_ids=ids, training=False).logits,
                              tf.TensorSpec([1, seq], tf.int32))
    assert 3 * forward == expected


def test_mae_forward_flops_match_a_hand_count():
    import mae_throughput

    from keras_ssl import vision

    mae = vision.MAE.from_config(16, 4, num_channels=3, size="tiny", mask_ratio=0.75, seed=0)
    c = mae.hf_model.config
    patches, pixels = 16, 4 * 4 * 3
    visible, tokens = 4 + 1, patches + 1  # the encoder sees the kept patches and the class token

    def blocks(layers, width, intermediate, n):  # Q/K/V/O, feed-forward, scores and values
        return layers * 2 * n * (4 * width * width + 2 * width * intermediate + 2 * n * width)

    expected = (2 * patches * pixels * c.hidden_size  # patch embedding (a strided convolution)
                + blocks(c.num_hidden_layers, c.hidden_size, c.intermediate_size, visible)
                + 2 * visible * c.hidden_size * c.decoder_hidden_size  # decoder embedding
                + blocks(c.decoder_num_hidden_layers, c.decoder_hidden_size, c.decoder_intermediate_size,
                         tokens)
                + 2 * tokens * c.decoder_hidden_size * pixels)  # pixel prediction
    assert mae_throughput.forward_flops_per_image(mae) == expected


def test_achieved_flops_and_mfu_follow_the_throughput():
    mlm = {"benchmark": "mlm", "path": "ours", "precision": "mixed_bfloat16", "jit": False, "seq_len": 128,
           "tokens_per_s": 128_000.0, "model_dims": {"layers": 6, "hidden": 384, "intermediate": 1536,
                                                     "vocab": 30522}}
    vision = {"benchmark": "vision", "path": "plain", "precision": "float32", "jit": False,
              "images_per_s": 1000.0, "forward_flops_per_view": 1.0e9}
    mae = {"benchmark": "mae", "path": "ours", "precision": "float32", "jit": True,
           "images_per_s": 500.0, "forward_flops_per_image": 2.0e9}
    per_sequence = gpu.bert_mlm_train_flops(6, 384, 1536, 30522, 128)
    assert gpu.achieved_flops(mlm) == pytest.approx(1000 * per_sequence, rel=1e-12)
    assert gpu.achieved_flops(vision) == pytest.approx(1000 * 2 * 3 * 1.0e9, rel=1e-12)
    assert gpu.achieved_flops(mae) == pytest.approx(500 * 3 * 2.0e9, rel=1e-12)  # one view per image
    assert gpu.achieved_flops({**mae, "forward_flops_per_image": None}) is None
    results = [mlm, vision]
    gpu.add_ratios_and_mfu(results, "NVIDIA H100 80GB HBM3", tf32=True)
    assert mlm["peak_tflops"] == 989.4 and vision["peak_tflops"] == 494.7  # bf16; float32 runs as TF32
    assert mlm["mfu"] == pytest.approx(1000 * per_sequence / 989.4e12, rel=1e-12)
    assert vision["mfu"] == pytest.approx(6e12 / 494.7e12, rel=1e-12)


@pytest.mark.parametrize("name,precision,tf32,peak", [
    ("NVIDIA H100 80GB HBM3", "mixed_float16", True, 989.4),
    ("NVIDIA H100 PCIe", "mixed_bfloat16", True, 756.5),
    ("NVIDIA H200", "float32", False, 66.9),
    ("NVIDIA A100-SXM4-40GB", "float32", True, 156.0),
    ("NVIDIA A10G", "mixed_bfloat16", True, 70.0),  # not A100's
    ("NVIDIA L40S", "mixed_bfloat16", True, 362.1),  # not L4's
    ("NVIDIA L4", "mixed_bfloat16", True, 121.0),
    ("Tesla T4", "float32", True, 8.1),  # no TF32 before Ampere: the CUDA-core peak
    ("Tesla T4", "mixed_bfloat16", True, None),
    ("AMD EPYC 7B13", "float32", True, None),
])
def test_peak_table(name, precision, tf32, peak):
    value, note = gpu.peak_tflops(name, precision, tf32)
    assert value == peak and note
    if peak is None:
        assert "no" in note


# --- batch sizes, matrix and scheduler -------------------------------------------------------------------
def test_batch_rule():
    assert gpu.mlm_batch(80, 128) == 128 and gpu.mlm_batch(80, 512) == 32
    assert gpu.mlm_batch(141, 128) == 256  # H200: 36096 tokens -> 32768
    assert gpu.mlm_batch(0.001, 512) == 1
    assert gpu.vision_batch(80) == 512 and gpu.vision_batch(15) == 256
    assert [gpu.mae_batch(m) for m in (141, 80, 40, 24, 16, 8)] == [256, 256, 256, 128, 128, 64]


def test_matrix_covers_every_combination_in_priority_order():
    rows = gpu.matrix(["mlm", "vision"], [128, 512], gpu.PRECISIONS, [False, True], {128: 128, 512: 32}, 512)
    assert len(rows) == 2 * 3 * 2 * 2 + 3 * 2 * 2
    assert len({(r.benchmark, r.seq_len, r.precision, r.jit, r.path) for r in rows}) == len(rows)
    assert [r.name for r in rows[:4]] == ["mlm seq 128 hf float32", "mlm seq 128 ours float32",
                                          "vision plain float32", "vision ours float32"]
    for reference, ours in zip(rows[::2], rows[1::2]):  # each reference directly before its "ours"
        assert reference.path == gpu.REFERENCE[reference.benchmark] and ours.path == "ours"
        assert (reference.benchmark, reference.seq_len, reference.precision, reference.jit) == \
               (ours.benchmark, ours.seq_len, ours.precision, ours.jit)
    assert rows[4].precision == "mixed_bfloat16" and not rows[4].jit
    assert all(r.batch == (32 if r.seq_len == 512 else 128 if r.seq_len else 512) for r in rows)
    with_mae = gpu.matrix(list(gpu.BENCHMARKS), [128], ["float32"], [False], {128: 128}, 512, 64)
    assert [(r.name, r.batch) for r in with_mae] == [
        ("mlm seq 128 hf float32", 128), ("mlm seq 128 ours float32", 128), ("vision plain float32", 512),
        ("vision ours float32", 512), ("mae hf float32", 64), ("mae ours float32", 64)]


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_scheduler_skips_rows_past_the_budget_and_halves_the_batch_on_oom():
    clock = FakeClock()
    rows = [gpu.Row("vision", "plain", "float32", False, 512),
            gpu.Row("vision", "ours", "float32", False, 512),
            gpu.Row("vision", "plain", "mixed_bfloat16", False, 512)]
    calls = []

    def runner(row, timeout_s):
        calls.append((row.path, row.batch, timeout_s))
        clock.now += 40.0
        if row.path == "ours" and row.batch == 512:
            return {"status": "oom", "benchmark": "vision"}
        return {"status": "ok", "batch_size": row.batch, "images_per_s": 10.0}

    results = gpu.run_matrix(rows, runner, budget_s=100.0, per_run_timeout_s=50.0, min_row_s=15.0,
                             clock=clock, log=lambda s: None)
    assert calls == [("plain", 512, 50.0), ("ours", 512, 50.0), ("ours", 256, 20.0)]
    assert results[1]["batch_size"] == 256 and results[1]["oom_batch"] == 512
    assert results[2]["status"] == "skipped" and "budget" in results[2]["error"]


def test_markdown_table_has_one_row_per_result_and_leaves_unknowns_empty():
    results = [
        {"benchmark": "mlm", "seq_len": 128, "path": "hf", "precision": "float32", "jit": False,
         "batch_size": 128, "status": "ok", "tokens_per_s": 1000.0},
        {"benchmark": "mlm", "seq_len": 128, "path": "ours", "precision": "float32", "jit": False,
         "batch_size": 128, "status": "ok", "tokens_per_s": 1600.0},
        {"benchmark": "vision", "path": "ours", "precision": "mixed_float16", "jit": True, "batch_size": 512,
         "status": "timeout"},
    ]
    results[1]["peak_gpu_mb"] = 2047.6
    gpu.add_ratios_and_mfu(results, "unknown device", tf32=True)
    lines = gpu.markdown_table(results).splitlines()
    assert len(lines) == 2 + 3 and all(line.count("|") == 13 for line in lines)
    assert "| 1.60x |" in lines[3] and "1600.0 tokens/s" in lines[3] and "| 2048 | ok |" in lines[3]
    assert results[1]["ratio_vs_float32_reference"] == pytest.approx(1.6) and results[1]["mfu"] is None
    assert lines[4].endswith("| timeout |") and "x |" not in lines[4]


@pytest.mark.parametrize("argv,fragment", [
    (["--steps", "0"], "--steps, --repeats and --warmup must be >= 1"),
    (["--seq-lens", "128", "2"], "--seq-lens > 2"),
    (["--budget-s", "0"], "--budget-s > 0"),
    (["--precisions", "bf16"], "invalid choice: 'bf16'"),
])
def test_bad_options_are_refused_with_the_fix(argv, fragment, capsys):
    with pytest.raises(SystemExit) as exit_info:
        gpu.parse_args(argv)
    assert exit_info.value.code == 2 and fragment in capsys.readouterr().err


def test_dry_run_defaults_are_tiny():
    args = gpu.parse_args(["--dry-run"])
    assert (args.steps, args.repeats, args.warmup, args.seq_lens) == (1, 1, 1, [16])
    rows = gpu.dry_run_rows(gpu.matrix(gpu.BENCHMARKS, args.seq_lens, gpu.PRECISIONS, [False, True],
                                       {16: 2}, 2))
    assert [r.name for r in rows] == ["mae ours float32", "mlm seq 16 hf mixed_bfloat16",
                                      "mlm seq 16 ours mixed_bfloat16", "vision plain mixed_float16"]
    commands = [gpu.worker_command(r, args) for r in rows]
    assert all(c[c.index("--precision") + 1] == r.precision for c, r in zip(commands, rows))
    assert all("--tiny" in c for c in commands[1:]) and "--flops" in commands[3]
    assert commands[1][commands[1].index("--seq-len") + 1] == "16"
    mae = commands[0]  # the tiny MAE preset at 32x32 in the dry run, ViT-B/16 at 224 on a GPU
    assert mae[1].endswith("mae_throughput.py") and mae[mae.index("--worker") + 1] == "ours"
    shape_flags = ("--size", "--image-size", "--patch-size")
    assert [mae[mae.index(flag) + 1] for flag in shape_flags] == ["tiny", "32", "4"]
    args.dry_run = False
    full = gpu.worker_command(gpu.Row("mae", "hf", "mixed_bfloat16", True, 256), args)
    assert [full[full.index(flag) + 1] for flag in ("--size", "--image-size", "--patch-size", "--batch")] == [
        "base", "224", "16", "256"] and "--jit" in full and "--flops" in full


# --- the script on this CPU ---------------------------------------------------------------------------
def _script(*args, timeout):
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    return subprocess.run([sys.executable, os.path.join(BENCHMARKS, "gpu.py"), *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_without_a_gpu_it_exits_2_at_once_with_a_clear_line():
    from keras_ssl.backend import tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    start = time.monotonic()
    done = _script(timeout=60)
    assert done.returncode == gpu.NO_GPU_EXIT, done.stderr[-2000:]
    assert time.monotonic() - start < 20
    assert "no GPU visible" in done.stderr and "--dry-run" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_dry_run_end_to_end(tmp_path):
    output = tmp_path / "gpu.json"
    done = _script("--dry-run", "--output", str(output), timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads(output.read_text())
    assert report["dry_run"] and report["machine"]["device_kind"] in ("CPU", "GPU")
    assert {"device_name", "driver_version", "compute_capability", "tf_build", "tf_version"} <= set(
        report["machine"])
    results = report["results"]
    assert [(r["benchmark"], r["path"], r["precision"], r["jit"]) for r in results] == [
        ("mae", "ours", "float32", False), ("mlm", "hf", "mixed_bfloat16", False),
        ("mlm", "ours", "mixed_bfloat16", False), ("vision", "plain", "mixed_float16", False)]
    for r in results:
        assert RESULT_KEYS <= set(r), r
        assert r["mfu"] is None or 0 < r["mfu"] < 1
        if r["path"] == "hf" and r["status"] == "skipped":  # without the bench extra (datasets)
            assert "bench" in r["error"]
            continue
        assert r["status"] == "ok", r
        assert r["batch_size"] == 2 and np.isfinite(r["final_loss"])
        assert r["achieved_tflops"] > 0
        assert r["peak_gpu_mb"] is None  # no GPU in the dry run
    mae, hf, ours = results[0], results[1], results[2]
    if hf["status"] == "ok":
        assert ours["ratio_vs_reference"] == pytest.approx(ours["tokens_per_s"] / hf["tokens_per_s"])
    assert results[3]["ratio_vs_reference"] == 1.0  # the reference itself
    assert mae["ratio_vs_reference"] is None  # its reference (hf) is not in the dry run
    assert mae["forward_flops_per_image"] > 0 and np.isfinite(mae["images_per_s"])
    assert report["table"] in done.stdout and len(report["table"].splitlines()) == 2 + len(results)


def test_a_failed_row_reports_the_innermost_error_line():
    """Hugging Face's MAE path fails under mixed_float16 inside Keras's wrapping; the row names the cause."""
    wrapped = TypeError("Exception encountered when calling layer 'vit' (type TFViTMAEForPreTraining).\n\n"
                        "in user code:\n    File \"x.py\", line 1\n"
                        "        TypeError: Input 'y' of 'Mul' Op has type float32 that does not match type "
                        "float16 of argument 'x'.\n\nCall arguments received:\n"
                        "  • interpolate_pos_encoding=False")
    assert gpu.error_line(wrapped).startswith("TypeError: Input 'y' of 'Mul' Op has type float32")
    assert gpu.error_line(ValueError("bad\nsecond")) == "ValueError: bad"
