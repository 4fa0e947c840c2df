"""Every notebook in ``notebooks/`` runs top to bottom, with small settings, in a fresh kernel.

The notebooks read their sizes from ``KERAS_SSL_NB_*`` environment variables (see each notebook's
first code cell); the kernel inherits this process's environment, runs in a temporary working
directory, and is the ``python3`` kernel installed into the test environment
(``python -m ipykernel install --sys-prefix --name python3``, done by ``make setup``), so it imports
the same ``keras_ssl`` as the tests.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL = "python3"
CELL_TIMEOUT_S = 600
SMALL_SETTINGS = {
    "KERAS_SSL_NB_STEPS": "4",
    "KERAS_SSL_NB_EPOCHS": "2",
    "KERAS_SSL_NB_MAX_LENGTH": "32",
    "KERAS_SSL_NB_BATCH": "8",
    "KERAS_SSL_NB_VAL_BATCHES": "4",
    "KERAS_SSL_NB_SHOTS": "8",
    "KERAS_SSL_NB_TEST_SIZE": "64",
    "KERAS_SSL_NB_ROWS": "256",
    "KERAS_SSL_NB_LABELS": "50",
}
# What each notebook must print (substrings of its stream output), beyond running without error.
EXPECTED_OUTPUT = {
    "mae_mnist.ipynb": [
        "epochs=2 batch=8 rows=256 finetune_steps=4 test_size=64",  # the overrides reached the kernel
        "data: ",
        "epoch 2: loss ",
        "held-out masked-patch loss",
        "rows: 5",  # reconstructions over training
        "fine-tuned, 10 labels/class",
        "MAE - random init: 1-NN",
        "served features match: True",
    ],
    "mlm_finetune.ipynb": [
        "steps/epoch=4 epochs=2 max_length=32 batch=8",  # the overrides reached the kernel
        "in 8 files",  # the custom corpus folder was written
        "before: masked accuracy",
        "Epoch 2/2",
        "[epoch 2] Use the [MASK] statement",  # FillMaskCallback ran every epoch
        "cosine(loop, loop)",
        "reloaded logits identical: True",
    ],
    "export_serve.ipynb": [
        "epochs=2 steps=4 max_length=32 batch=8",  # the overrides reached the kernel
        "outputs['embedding'] tensor_info:",  # saved_model_cli ran
        "served process imported keras_ssl: False",
        "embedding max |difference|",
        "; matches: True",
        "signatures: ['from_token_ids', 'serving_default', 'tokenize']",
        "served process imported: []",
        "num_masks: [1, 1, 0]",
        "identical top-k: True",
    ],
    "tabular_adult.ipynb": [
        "epochs=2 rows=256 batch=8 steps=4 labels=[50] test_size=64",  # the overrides reached the kernel
        "unseen category -> OOV id: 0",  # the preprocessing demo
        "Epoch 2/2",
        "contrastive accuracy by epoch:",
        "50 labels: best ",  # the few-label comparison ran
        "SCARF fine-tuned - MLP from scratch AUC",
        "served process imported: []",
        "served probabilities match: True",
    ],
    "text_classifier_payoff.ipynb": [
        "adapt_steps=4 head_steps=4 labels_per_class=8 epochs=2 max_length=32 batch=8 test_size=64",
        "16 labelled, 64 test reviews",
        "adapted: masked accuracy",
        "MiniLM adapted to the reviews",
        "TF-IDF + logistic regression",
        "reloaded probabilities equal: True",
        "served process imported: []",
        "served probabilities match: True",
    ],
    "vision_multicrop_swav.ipynb": [
        "epochs=2 batch=8 steps=4",  # the overrides reached the kernel
        "grid (128, 224, 3) uint8",  # render_views of a multi-crop set
        "rebuilt from its config, identical views: True",
        "epoch  2: loss",  # per-epoch loss / cluster entropy printed
        "purity: SwAV prototypes",
        "purity: k-means",
        "CollapseWarning: SwAV: cluster_entropy",
        "stopped at epoch ",  # HealthMonitor stopped the broken run
    ],
    "vision_digits.ipynb": [
        "epochs=2 batch=8 method=simclr",  # the overrides reached the kernel
        "grid (192, 160, 3) uint8",  # render_views ran
        "before training: knn_accuracy =",
        "Epoch 2: knn_accuracy =",  # KNNMonitor ran (every epoch at 2 epochs)
        "collapsed: False",  # CollapseMonitor ran and found no collapse
        "probe_shifted gain over random init",  # the digits_report table
        "linear probe accuracy (shifted test digits)",
        "reloaded features identical: True",
    ],
}
EXECUTABLE_MARK = "kernel executable: "


def _stream_text(nb) -> str:
    return "".join(
        out.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream"
    )


def _has_image(nb) -> bool:
    return any(
        "image/png" in out.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )


def test_notebooks_are_committed_without_outputs():
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOK_DIR}"
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
        dirty = [i for i, c in code if c.outputs or c.execution_count]
        assert not dirty, f"{path.name}: clear the outputs of code cells {dirty} before committing"
        assert nb.metadata.get("kernelspec", {}).get("name") == KERNEL


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        pytest.fail(
            f"No Jupyter kernel named {KERNEL!r}. Fix: {sys.executable} -m ipykernel install "
            f"--sys-prefix --name {KERNEL}   (make setup does this)"
        )
    for name, value in SMALL_SETTINGS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KERAS_SSL_NB_WORKDIR", str(tmp_path / "work"))
    monkeypatch.setenv("MPLBACKEND", "Agg")  # never try a GUI backend, whatever the notebook says

    nb = nbformat.read(path, as_version=4)
    # One extra cell, in memory only: which Python the kernel runs.
    nb.cells.append(nbformat.v4.new_code_cell(f"import sys; print({EXECUTABLE_MARK!r} + sys.executable)"))
    client = nbclient.NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(tmp_path)}},  # the kernel's working directory
    )
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:
        pytest.fail(f"{path.name} failed:\n{err}")

    text = _stream_text(nb)
    executable = text.split(EXECUTABLE_MARK, 1)[1].splitlines()[0].strip()
    assert os.path.realpath(executable) == os.path.realpath(sys.executable), (
        f"the {KERNEL!r} kernel runs {executable}, not the tests' Python {sys.executable}"
    )
    missing = [s for s in EXPECTED_OUTPUT.get(path.name, []) if s not in text]
    assert not missing, f"{path.name}: expected output missing: {missing}\n--- output ---\n{text[-4000:]}"
    if path.name == "mlm_finetune.ipynb":
        assert _has_image(nb), "the learning-curve plot was not displayed"
        assert (tmp_path / "work" / "minilm-mlm-custom" / "config.json").is_file()
        assert len(list((tmp_path / "work" / "corpus").glob("*.txt"))) == 8
