"""keras_ssl.distribute: strategy choice, and a real two-process MultiWorkerMirroredStrategy run.

The multi-worker test starts two worker processes on 127.0.0.1 (free ports), each with its own
TF_CONFIG, trains a tiny-BERT MaskedLanguageModel and a SimCLR (SyncBN) on the same global batches,
and checks that both workers end with the same weights and losses, equal to a one-process run.
"""

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from numerics import STEP_RTOL, close, relative_step_difference

from keras_ssl.backend import tf
from keras_ssl.distribute import auto_strategy, explain_strategy, global_batch_size, strategy_name

SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "multiworker_worker.py")
TIMEOUT_S = 420


def test_default_strategy_on_cpu_without_tf_config(monkeypatch, capsys):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    for name in ("TPU_NAME", "COLAB_TPU_ADDR", "KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS", "TPU_WORKER_ID"):
        monkeypatch.delenv(name, raising=False)
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has GPUs")
    strategy = auto_strategy()
    assert strategy is tf.distribute.get_strategy()
    assert strategy_name(strategy) == "default strategy"
    assert strategy.num_replicas_in_sync == 1
    line = capsys.readouterr().out
    assert "because no GPU" in line and line.count("\n") == 1
    assert global_batch_size(32) == 32
    assert "1 replica" in explain_strategy(strategy)


def test_one_worker_tf_config_is_not_multi_worker(monkeypatch, capsys):
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 0}}))
    strategy = auto_strategy(verbose=False)
    assert not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    assert capsys.readouterr().out == ""


def test_global_batch_size_and_explanation_for_mirrored():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    assert global_batch_size(16, strategy) == 16
    assert "GLOBAL batch size" in explain_strategy(strategy)
    with pytest.raises(ValueError, match="positive integer"):
        global_batch_size(0)


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _run_all(commands, timeout):
    """Start all ``(argv, env)`` at once; wait; kill every process on timeout and fail with stderr."""
    procs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for argv, env in commands]
    deadline = time.monotonic() + timeout
    outputs = []
    try:
        for proc in procs:
            try:
                outputs.append(proc.communicate(timeout=max(1.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                for p in procs:
                    p.kill()
                errs = [p.communicate()[1][-2000:] for p in procs]
                pytest.fail(f"worker processes timed out after {timeout}s; stderr:\n" + "\n---\n".join(errs))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
    return [{r["model"]: r for r in (json.loads(line) for line in out.splitlines() if line.startswith("{"))}
            for out, _ in outputs]


def _weights(path):
    data = np.load(path)
    count = len(data.files) // 2
    return [data[f"before_{i}"] for i in range(count)], [data[f"after_{i}"] for i in range(count)]


def test_two_workers_match_each_other_and_one_process(minilm_path, tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    base = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    base["CUDA_VISIBLE_DEVICES"] = ""
    configs = [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}) for i in range(2)]
    commands = [([sys.executable, SCRIPT, minilm_path, str(tmp_path / f"worker{i}_")],
                 {**base, "TF_CONFIG": c}) for i, c in enumerate(configs)]
    commands.append(([sys.executable, SCRIPT, minilm_path, str(tmp_path / "single_"), "--single"], base))
    worker0, worker1, single = _run_all(commands, TIMEOUT_S)
    for model in ("mlm", "simclr"):
        a, b, ref = worker0[model], worker1[model], single[model]
        assert a["strategy"] == b["strategy"] == "MultiWorkerMirroredStrategy", a
        assert a["replicas"] == b["replicas"] == 2
        assert ref["replicas"] == 1
        start, one = _weights(tmp_path / f"single_{model}.npz")
        worker_start, w0 = _weights(tmp_path / f"worker0_{model}.npz")
        _, w1 = _weights(tmp_path / f"worker1_{model}.npz")
        assert all(np.array_equal(x, y) for x, y in zip(start, worker_start))  # same initial weights
        between_workers = relative_step_difference(start, w0, w1)
        to_one_process = relative_step_difference(start, one, w0)
        print(json.dumps({"model": model, "loss": [a["loss"], b["loss"], ref["loss"]],
                          "workers": between_workers, "one_process": to_one_process}))  # shown with -s
        assert between_workers == 0.0, model  # the workers hold the same variables, bit for bit
        assert to_one_process <= STEP_RTOL, (model, to_one_process)
        for la, lb, lr in zip(a["loss"], b["loss"], ref["loss"]):
            assert la == lb and close(la, lr, 1e-4), (model, a["loss"], b["loss"], ref["loss"])
