"""Resume without loss: a run killed (SIGKILL) mid-epoch resumes from BackupAndRestore and ends with
the same state as an uninterrupted run.

``tests/scripts/resume_worker.py`` trains MoCo (EMA key network + queue, finite dataset), BYOL
(cosine EMA momentum over the steps, seeded augmentations, a repeated shuffled stream with
``steps_per_epoch``), a denoising Autoencoder (corruption drawn fresh every step) and a tiny
from-config BERT MLM (masks keyed on the optimizer step), each with
``BackupAndRestore(save_freq=N steps)`` and deterministic ops. The chain of runs is killed once per
model, two steps after a mid-epoch backup, and restarted; a reference process trains the same
models without interruption. Every variable must match: model weights (EMA targets, queue, queue
pointer, metric state), optimizer iterations and slots, augmentation step counters. The MLM chain
is marked slow (three BERT traces); an in-process test covers ``fit`` on NumPy arrays.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from crash import CrashAtStep
from numerics import RESUME_RTOL, state_difference

from keras_ssl.backend import keras

SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "resume_worker.py")
STEPS = {"moco": 18, "byol": 18, "autoencoder": 18, "mlm": 12}  # 3 epochs of 6, 6, 6 and 4 steps
TIMEOUT = 300


def _start(workdir, log, models, *flags):
    out = open(log, "w")
    proc = subprocess.Popen([sys.executable, SCRIPT, str(workdir), *models, *flags], stdout=out,
                            stderr=subprocess.STDOUT, text=True)
    out.close()
    return proc


def _lines(log):
    with open(log) as f:
        return f.read().splitlines()


def _wait_for(proc, log, prefix):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if any(line.startswith(prefix) for line in _lines(log)):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"no {prefix!r} line from the worker:\n" + "\n".join(_lines(log)[-40:]))


def _done(log):
    return {d["model"]: d for d in (json.loads(line[5:]) for line in _lines(log) if line.startswith("DONE "))}


def _chain(root, models):
    """Kill a run once per model and restart it; a concurrent process trains without interruption."""
    reference = _start(root / "reference", root / "reference.log", models)
    procs = [reference]
    try:
        done = {}
        for i, model in enumerate(models):  # each run finishes the killed model, then stalls on the next
            log = root / f"run{i}.log"
            proc = _start(root / "resumed", log, models, "--stall")
            procs.append(proc)
            _wait_for(proc, log, f"STALL {model} ")
            lines = _lines(log)
            stall = next(k for k, line in enumerate(lines) if line.startswith(f"STALL {model} "))
            assert any(line.startswith(f"CKPT {model} ") for line in lines[:stall]), lines
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=60) == -signal.SIGKILL
            done.update(_done(log))
        log = root / "final.log"
        final = _start(root / "resumed", log, models)
        procs.append(final)
        assert final.wait(timeout=TIMEOUT) == 0, "\n".join(_lines(log)[-40:])
        done.update(_done(log))
        assert reference.wait(timeout=TIMEOUT) == 0, "\n".join(_lines(root / "reference.log")[-40:])
        return root, done, _done(root / "reference.log")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def vision_runs(tmp_path_factory):
    return _chain(tmp_path_factory.mktemp("resume_vision"), ("moco", "byol", "autoencoder"))


@pytest.fixture(scope="module")
def mlm_runs(tmp_path_factory):
    return _chain(tmp_path_factory.mktemp("resume_mlm"), ("mlm",))


# The MLM chain traces a (tiny) BERT train step in three processes, ~40 s of CPU: slow.
@pytest.mark.parametrize("model", ["moco", "byol", "autoencoder",
                                   pytest.param("mlm", marks=pytest.mark.slow)])
def test_killed_run_resumes_to_the_uninterrupted_state(request, model):
    root, resumed, reference = request.getfixturevalue("mlm_runs" if model == "mlm" else "vision_runs")
    # The killed run had trained two steps past its last backup, mid-epoch (epoch 1, batch 1).
    assert resumed[model]["resumed_from"] == [1, 1]
    assert reference[model]["resumed_from"] is None
    assert resumed[model]["iterations"] == reference[model]["iterations"] == STEPS[model]
    assert resumed[model]["backup_deleted"]
    a, b = np.load(root / "reference" / f"{model}.npz"), np.load(root / "resumed" / f"{model}.npz")
    assert sorted(a.files) == sorted(b.files)
    names = " ".join(a.files)
    assert "optimizer/000/iteration" in names and any(k.startswith("optimizer/001") for k in a.files)
    if model in ("moco", "byol"):  # every variable of the EMA target networks is part of the state
        assert resumed[model]["target_variables"] == reference[model]["target_variables"] > 10
    if model == "moco":
        assert "queue" in names and "pointer" in names
        pointer = next(k for k in a.files if "pointer" in k)
        assert int(b[pointer]) == (STEPS[model] * 8) % 40  # the queue wrapped around
    if model == "byol":
        assert sum("rng_state" in k and k.startswith("augment") for k in a.files) == 3
    if model == "autoencoder":  # the counters of the corruption and the augmentation are model weights
        assert sum("rng_state" in k and k.startswith("model") for k in a.files) == 2
        assert sum("rng_state" in k and k.startswith("augment") for k in a.files) == 1
    diffs = {k: float(np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)), initial=0.0))
             for k in a.files}
    worst = max(diffs, key=diffs.get)
    error = state_difference(dict(a), dict(b))
    print(f"{model}: {len(diffs)} variables, max |resumed - uninterrupted| = {diffs[worst]:.3g} ({worst}), "
          f"relative to the largest value {error:.3g}")
    assert error <= RESUME_RTOL, worst  # measured: 0 (bit for bit); integer state must be equal


def test_numpy_arrays_resume_in_process(tmp_path):
    """``fit(arrays, shuffle=False)``: Keras reads arrays as one stream over all epochs; a crash two
    steps after the backup of epoch 1, batch 1 resumes 8 batches into the stream."""
    from keras_ssl import vision
    from keras_ssl.vision import heads as H
    from keras_ssl.vision.backbones import small_cnn

    images = np.random.default_rng(0).random((48, 16, 16, 3)).astype(np.float32)

    def build():
        keras.utils.set_random_seed(0)
        model = vision.MoCo(small_cnn((16, 16, 3), width=4), projection=H.moco_projection(16, 8),
                            queue_size=40, momentum=0.9, temperature=0.5)
        model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
        return model

    fit = dict(x=images, batch_size=8, shuffle=False, epochs=3, verbose=0)
    reference = build()
    reference.fit(**fit)
    backup = str(tmp_path / "backup")
    crashed = build()
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashed.fit(**fit, callbacks=[keras.callbacks.BackupAndRestore(backup, save_freq=4), CrashAtStep(10)])
    resumed = build()
    resumed.fit(**fit, callbacks=[keras.callbacks.BackupAndRestore(backup, save_freq=4)])
    pairs = list(zip(reference.weights + reference.optimizer.variables(),
                     resumed.weights + resumed.optimizer.variables()))
    assert len(pairs) == len(resumed.weights) + len(resumed.optimizer.variables())
    error = state_difference([a.numpy() for a, _ in pairs], [b.numpy() for _, b in pairs])
    print(f"moco arrays in-process: max |resumed - uninterrupted| / largest value = {error:.3g}")
    assert int(resumed.queue.pointer.numpy()) == (18 * 8) % 40
    assert error <= RESUME_RTOL  # measured: 0 (bit for bit); integer state must be equal
