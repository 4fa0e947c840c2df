"""The ``keras-ssl`` command line, run as a user runs it: subprocesses on tiny settings.

A tiny BERT (``tests/tiny_text.py``, MiniLM's tokenizer) trains for 8 steps on a few pydoc topics:
the run is killed with SIGKILL after its step-4 backup (``tests/scripts/cli_stall.py`` stalls it at
step 5) and finished with ``--resume``; that output is shared by the fill, export and serve-check
tests. The vision commands pretrain SimCLR on 32 random 20x24 PNGs (16 px, a small CNN).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_ssl.cli import build_parser, main
from keras_ssl.quiet import is_noise

HERE = os.path.dirname(os.path.abspath(__file__))
STALL = os.path.join(HERE, "scripts", "cli_stall.py")
QUIET_LOAD = os.path.join(HERE, "scripts", "cli_quiet_load.py")
CLI = [sys.executable, "-m", "keras_ssl"]
TIMEOUT = 400
NOISE = ("All log messages before absl::InitializeLog()", "oneDNN custom operations are on",
         "Could not find cuda drivers", "TensorFlow and JAX classes are deprecated",
         "Some weights of the PyTorch model were not used")
MLM_ARGS = ["--steps", "8", "--max-length", "32", "--batch-size", "4", "--save-steps", "2",
            "--logging-steps", "2", "--validation-split", "0.1", "--seed", "0"]
VISION_ARGS = ["--method", "simclr", "--image-size", "16", "--backbone", "small_cnn", "--width", "8",
               "--hidden-dim", "16", "--projection-dim", "8", "--batch-size", "8", "--epochs", "2"]


def cli(*args, timeout: int = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def assert_clean(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert not [n for n in NOISE if n in stderr], stderr


def test_import_keras_ssl_leaves_tensorflow_unimported():
    """quiet() can hide TensorFlow's start-up noise only if it runs before TensorFlow is imported."""
    done = subprocess.run([sys.executable, "-c", "import sys, keras_ssl; print('tensorflow' in sys.modules)"],
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().endswith("False"), done.stdout + done.stderr


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A folder of text: 24 pydoc topics, one per line, in two files (one in a subfolder)."""
    from pydoc_data.topics import topics

    root = tmp_path_factory.mktemp("corpus")
    lines = [" ".join(topics[key].split()) for key in sorted(topics)[:24]]
    (root / "sub").mkdir()
    (root / "a.txt").write_text("\n".join(lines[:12]) + "\n")
    (root / "sub" / "b.txt").write_text("\n".join(lines[12:]) + "\n")
    return root


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, minilm_tokenizer):
    """A tiny BERT masked LM (hidden 32, one layer, 64 positions) saved with save_pretrained."""
    from tiny_text import tiny_deterministic_mlm

    path = tmp_path_factory.mktemp("tiny_model")
    tiny_deterministic_mlm(minilm_tokenizer).save_pretrained(str(path))
    return path


@pytest.fixture(scope="module")
def trained_text(tmp_path_factory, tiny_model, corpus):
    """``mlm train`` killed (SIGKILL) after its step-4 backup, then finished with ``--resume``."""
    out = tmp_path_factory.mktemp("mlm_run") / "out"
    args = ["mlm", "train", "--model", tiny_model, "--data", corpus, "--output", out, *MLM_ARGS]
    log = out.parent / "stalled.log"
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, STALL, "5", *map(str, args)], stdout=f,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + TIMEOUT
        while "STALL" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "STALL 5" in log.read_text(), log.read_text()[-3000:]
        assert any(".index" in n for _, _, names in os.walk(out / "backup") for n in names)
        assert json.loads((out / "run.json").read_text())["status"] == "running"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert_clean(log.read_text())
    resumed = cli(*args, "--resume")
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-4000:]
    return out, resumed


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """32 random RGB 20x24 PNGs, half of them in a subfolder."""
    from PIL import Image

    root = tmp_path_factory.mktemp("images")
    (root / "more").mkdir()
    rng = np.random.default_rng(0)
    for i in range(32):
        pixels = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / ("more" if i % 2 else ".") / f"image{i}.png")
    return root


@pytest.fixture(scope="module")
def trained_vision(tmp_path_factory, images):
    out = tmp_path_factory.mktemp("vision_run") / "out"
    done = cli("vision", "pretrain", "--images", images, "--output", out, *VISION_ARGS)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return out, done


@pytest.fixture(scope="module")
def trained_swav(tmp_path_factory, images):
    """SwAV with 2 global 16 px and 2 local 8 px crops: the encoder takes any image size."""
    out = tmp_path_factory.mktemp("swav_run") / "out"
    args = [a if a != "simclr" else "swav" for a in VISION_ARGS]
    done = cli("vision", "pretrain", "--images", images, "--output", out, *args, "--local-crops", "2",
               "--prototypes", "10", "--epsilon", "0.03")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return out, done


# --- usage ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["mlm"], ["mlm", "train"], ["mlm", "fill"], ["vision"],
                                     ["vision", "pretrain"], ["export"], ["serve-check"]])
def test_help_of_every_command(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: keras-ssl {' '.join(command)}".rstrip())
    if command[-1:] == ["train"]:
        assert "--resume" in out and "--head-steps" in out and "(default: 32)" in out


def test_console_script_and_module_answer_help_without_tensorflow():
    script = shutil.which("keras-ssl", path=os.path.dirname(sys.executable))
    assert script, "no keras-ssl console script: pip install -e ."
    done = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "mlm" in done.stdout and "serve-check" in done.stdout
    probe = ("import sys\nfrom keras_ssl.cli import main\ntry:\n    main(['mlm', 'train', '--help'])\n"
             "except SystemExit:\n    pass\nprint('TF', 'tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert "TF False" in done.stdout, done.stdout + done.stderr


def test_parser_defaults_follow_run_mlm():
    args = build_parser().parse_args(["mlm", "train", "--model", "m", "--data", "d", "--output", "o"])
    assert (args.max_length, args.batch_size, args.learning_rate, args.mask_rate) == (128, 32, 5e-5, 0.15)
    assert (args.masking, args.validation_split, args.head_steps, args.verbose) == ("token", 0.05, 200, False)
    assert args.steps is None and args.epochs is None  # 3 epochs
    args = build_parser().parse_args(["-v", "vision", "pretrain", "--method", "byol", "--images", "x",
                                      "--output", "o"])
    assert args.verbose and args.backbone == "resnet18" and args.image_size == 32


# --- mistakes: one line, no traceback ---------------------------------------------------------------


def _usage_cases(tmp):
    return {
        "no --data": (["mlm", "train", "--model", tmp, "--output", tmp / "o"], 2,
                      "the following arguments are required: --data"),
        "unknown method": (["vision", "pretrain", "--method", "simclr2", "--images", tmp, "--output",
                            tmp / "o"], 2, "invalid choice: 'simclr2'"),
        "resume and overwrite": (["vision", "pretrain", "--method", "byol", "--images", tmp, "--output",
                                  tmp / "o", "--resume", "--overwrite"], 2, "not allowed with argument"),
        "bad number": (["mlm", "fill", "--model", tmp, "x [MASK]", "--top-k", "0"], 2, "must be a positive"),
    }


@pytest.mark.parametrize("case", ["no --data", "unknown method", "resume and overwrite", "bad number"])
def test_usage_errors_exit_2(case, tmp_path):
    args, code, message = _usage_cases(tmp_path)[case]
    done = cli(*args)
    assert done.returncode == code, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_input_errors_exit_1_with_one_line(tiny_model, tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "file.txt").write_text("x")
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "x").write_text("x")
    cases = {
        "missing data": (["mlm", "train", "--model", tiny_model, "--data", tmp_path / "nope.txt", "--output",
                          tmp_path / "o"], "--data", "no such file or folder"),
        "output in use": (["mlm", "train", "--model", tiny_model, "--data", tiny_model / "vocab.txt",
                           "--output", tmp_path / "used"], "exists and is not empty", "--overwrite"),
        "nothing to resume": (["mlm", "train", "--model", tiny_model, "--data", tiny_model / "vocab.txt",
                               "--output", tmp_path / "used", "--resume"], "no backup", "without --resume"),
        "missing images": (["vision", "pretrain", "--method", "byol", "--images", tmp_path / "none",
                            "--output", tmp_path / "o"], "--images", "no such folder"),
        "local crops too big": (["vision", "pretrain", "--method", "swav", "--images", tmp_path / "used",
                                 "--output", tmp_path / "o", "--image-size", "16", "--local-size", "32"],
                                "--local-size 32 is larger", "smaller"),
        "not a model": (["export", tmp_path / "used", tmp_path / "e"], "nothing to export", "config.json"),
        "export exists": (["export", tiny_model, tmp_path / "export"], "exists and is not empty",
                          "--overwrite"),
        "not an export": (["serve-check", tmp_path / "used", "x"], "saved_model.pb", "keras-ssl export"),
    }
    for name, (args, *messages) in cases.items():
        done = cli(*args)
        lines = [line for line in done.stderr.strip().splitlines() if not is_noise(line)]
        assert done.returncode == 1, (name, done.stderr)
        assert len(lines) == 1 and lines[0].startswith("keras-ssl: error: "), (name, done.stderr)
        assert all(m in lines[0] for m in messages), (name, lines[0])


def test_undecodable_images_are_named_without_a_traceback(images, tmp_path):
    import shutil

    folder = tmp_path / "images"
    shutil.copytree(images, folder)
    (folder / "more" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    done = cli("vision", "pretrain", "--images", folder, "--output", tmp_path / "o", *VISION_ARGS)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("keras-ssl: error: 1 file(s) under --images"), last
    assert str(folder / "more" / "broken.jpg") in last and "delete or re-save" in last, last


def test_errors_raised_by_keras_ssl_are_one_line(tiny_model, corpus, tmp_path):
    done = cli("mlm", "train", "--model", tiny_model, "--data", corpus, "--output", tmp_path / "o",
               "--max-length", "100", "--steps", "1")
    assert done.returncode == 1, done.stderr[-3000:]
    assert_clean(done.stderr)
    assert done.stderr.strip().splitlines()[-1].startswith("keras-ssl: error: max_length=100 exceeds")


# --- quiet logs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["quiet", "verbose"])
def test_quiet_hides_noise_but_not_keras_ssl_warnings(mode):
    done = subprocess.run([sys.executable, QUIET_LOAD, mode],
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0 and "LOADED" in done.stdout, done.stderr[-3000:]
    assert "has no masked-LM head weights" in done.stderr  # keras_ssl's own warning always shows
    shown = [n for n in NOISE if n in done.stderr]
    if mode == "quiet":
        assert not shown, done.stderr
    else:  # transformers' messages, whatever the machine
        assert {"TensorFlow and JAX classes are deprecated", "Some weights of the PyTorch model were not used"
                } <= set(shown), done.stderr


@pytest.mark.parametrize("verbose", [False, True])
def test_warnings_print_on_one_line_unless_verbose(verbose, tmp_path, monkeypatch, capsys):
    import warnings

    from keras_ssl import cli
    from keras_ssl.cli import serve

    (tmp_path / "saved_model.pb").write_bytes(b"")

    def warn(args):
        warnings.warn("/data/x.txt: 1 line(s) are not valid UTF-8; their undecodable bytes were\n"
                      "replaced by U+FFFD", UnicodeWarning, stacklevel=2)
        return 0

    monkeypatch.setattr(serve, "run_serve", warn)  # serve-check: a command that imports no TensorFlow
    showwarning = warnings.showwarning
    if verbose:  # Python's own handling (pytest records it here)
        with pytest.warns(UnicodeWarning, match="not valid UTF-8"):
            assert cli.main(["serve-check", str(tmp_path), "x", "--verbose"]) == 0
    else:
        assert cli.main(["serve-check", str(tmp_path), "x"]) == 0
    assert warnings.showwarning is showwarning  # restored for whoever called main()
    stderr = capsys.readouterr().err
    if verbose:
        assert "keras-ssl: warning" not in stderr, stderr
    else:
        assert stderr == ("keras-ssl: warning: /data/x.txt: 1 line(s) are not valid UTF-8; their undecodable "
                          "bytes were replaced by U+FFFD\n"), stderr


# --- text ------------------------------------------------------------------------------------------


def test_mlm_train_killed_and_resumed_finishes_all_steps(trained_text):
    out, resumed = trained_text
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "finished" and run["resumed"]
    assert run["resumed_from_step"] == 4 and run["global_step"] == run["total_steps"] == 8
    assert run["args"]["max_length"] == 32 and run["versions"]["tensorflow"]
    assert set(run["validation"]) >= {"loss", "masked_accuracy", "perplexity"}
    assert np.isfinite(run["validation"]["loss"]) and np.isfinite(run["train"]["loss"])
    assert not (out / "backup").exists()  # deleted once training ended
    assert any((out / "logs").rglob("events.out.tfevents*"))
    assert {"config.json", "tf_model.h5", "tokenizer.json", "keras_ssl_masker.json"} <= set(os.listdir(out))
    assert_clean(resumed.stderr)
    again = cli("mlm", "train", "--model", out, "--data", out / "vocab.txt", "--output", out, "--resume")
    assert again.returncode == 1 and "that run finished" in again.stderr


def test_mlm_fill_prints_top_k_per_mask(trained_text):
    out, _ = trained_text
    done = cli("mlm", "fill", "--model", out, "The [MASK] statement.", "A [MASK] and a [MASK].",
               "--top-k", "3")
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "The [MASK] statement." and lines[2] == "A [MASK] and a [MASK]."
    assert lines[1].startswith("  [MASK] 1: ") and lines[1].count("(") == 3
    assert lines[3].startswith("  [MASK] 1: ") and lines[4].startswith("  [MASK] 2: ")
    assert_clean(done.stderr)


def test_text_export_and_serve_check(trained_text, tmp_path):
    out, _ = trained_text
    export = tmp_path / "export"
    done = cli("export", out, export, "--top-k", "4")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (export / "saved_model.pb").is_file()
    served = cli("serve-check", export, "The [MASK] statement.", "no mask here")
    assert served.returncode == 0, served.stderr[-3000:]
    lines = served.stdout.splitlines()
    assert lines[0] == "The [MASK] statement." and lines[1].startswith("  mask 1: ")
    assert lines[1].count("(") == 4 and lines[3] == "  (no mask token)"
    assert_clean(done.stderr + served.stderr)


# --- vision ----------------------------------------------------------------------------------------


def test_vision_pretrain_saves_encoder_and_run(trained_vision):
    out, done = trained_vision
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "finished" and run["global_step"] == 8  # 32 images / 8 per batch x 2 epochs
    assert run["encoder"] == {"file": "encoder.keras", "input_shape": [16, 16, 3], "features": 32,
                              "serving_image_size": 16}
    assert np.isfinite(run["train"]["loss"]) and not (out / "backup").exists()
    assert_clean(done.stderr)


def test_swav_pretrains_an_any_size_encoder(trained_swav):
    out, done = trained_swav
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "finished" and run["global_step"] == 8
    assert run["encoder"]["input_shape"] == [None, None, 3] and run["encoder"]["serving_image_size"] == 16
    assert 0.0 < run["train"]["cluster_entropy"] <= 1.0 and np.isfinite(run["train"]["loss"])
    assert run["args"]["epsilon"] == 0.03
    assert_clean(done.stderr)


@pytest.mark.parametrize("method", ["nnclr", "dino", "autoencoder", "rotation", "jigsaw"])
def test_every_vision_method_builds_and_trains_from_its_arguments(method):
    """The methods not run end to end below: built from parsed arguments, one step, metrics finite."""
    from keras_ssl.backend import keras
    from keras_ssl.cli.vision import ANY_SIZE, build_method

    args = build_parser().parse_args(["vision", "pretrain", "--images", "x", "--output", "o", *VISION_ARGS,
                                      "--queue-size", "32", "--out-dim", "32", "--local-crops", "2"])
    args.method = method
    model = build_method(args, channels=3, total_steps=4)
    assert type(model).__name__.lower().startswith(method[:4])
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    images = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    history = model.fit(images, batch_size=8, epochs=1, verbose=0).history
    assert all(np.isfinite(v[-1]) for v in history.values()), history
    size = None if method in ANY_SIZE else 16
    assert model.encoder.inputs[0].shape[1:] == (size, size, 3)


@pytest.mark.parametrize("run", ["trained_vision", "trained_swav"])
def test_vision_export_and_serve_check(run, images, tmp_path, request):
    """SimCLR's fixed-size encoder and SwAV's any-size one: served images are resized to the
    trained --image-size (run.json), so the served embedding is the encoder's on the resized image."""
    from keras_ssl.backend import keras, tf

    out, _ = request.getfixturevalue(run)
    export = tmp_path / "export"
    done = cli("export", out, export)
    assert done.returncode == 0, done.stderr[-3000:]
    paths = [images / "image0.png", images / "more" / "image1.png"]
    served = cli("serve-check", export, *paths)
    assert served.returncode == 0, served.stderr[-3000:]
    assert_clean(done.stderr + served.stderr)
    encoder = keras.models.load_model(str(out / "encoder.keras"), compile=False)
    lines = served.stdout.splitlines()
    assert len(lines) == 2
    for path, line in zip(paths, lines):
        image = tf.io.decode_png(tf.io.read_file(str(path)), channels=3)
        expected = encoder(tf.image.resize(tf.cast(image, tf.float32)[None] / 255.0, (16, 16)))[0].numpy()
        assert line.startswith(f"{path}: embedding shape [32], norm ")
        assert float(line.rsplit(" ", 1)[1]) == pytest.approx(float(np.linalg.norm(expected)), rel=2e-3)
