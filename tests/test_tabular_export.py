"""Tabular exports serve with stock TensorFlow alone: raw columns in (NaN and unseen categories
included), the Python model's embeddings (or class probabilities) out.

Every export is loaded with ``tf.saved_model.load`` in one subprocess that imports TensorFlow only
(:data:`SERVE`, the pattern of ``tests/scripts/serve_export.py`` for several exports at once).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from numerics import assert_close_to_scale
from test_tabular_methods import dataset, table, tiny_encoder

from keras_ssl import tabular
from keras_ssl.backend import keras, tf
from keras_ssl.export.saved_model import ExportError, export_saved_model

SERVE = r"""
import json, sys
import numpy as np
import tensorflow as tf

already = set(sys.modules)  # stock TensorFlow itself imports the keras package; that is fine
exports, inputs_npz, outputs_npz = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
inputs = np.load(inputs_npz, allow_pickle=False)
results = {}
for name, path in exports.items():
    fn = tf.saved_model.load(path).signatures["serving_default"]
    args = {k: tf.constant(inputs[k].astype(object) if inputs[k].dtype.kind == "U" else inputs[k])
            for k in inputs.files}
    results[name + "__inputs"] = np.array(sorted(fn.structured_input_signature[1]))
    for key, value in fn(**args).items():
        value = value.numpy()
        results[name + "__" + key] = value.astype(str) if value.dtype == object else value
forbidden = sorted(m for m in ("keras_ssl", "tf_keras", "keras", "pandas")
                   if m in sys.modules and m not in already)
assert not forbidden, f"serving imported {forbidden}"
np.savez(outputs_npz, **results)
"""


def serving_rows() -> dict:
    """Raw columns with a NaN numeric, an inf, a category never seen in training and an empty string."""
    raw = table(12, seed=7)
    raw["b"][0] = np.nan
    raw["d"][1] = np.inf
    raw["size"][2] = "enormous"  # not in the vocabulary: the OOV bucket
    raw["colour"][3] = ""
    return raw


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Export SCARF, VIME, a bare encoder and a classifier; serve all of them in one TF-only process."""
    root = tmp_path_factory.mktemp("tabular_export")
    scarf = tabular.SCARF(tiny_encoder(seed=1), projection_units=8)
    vime = tabular.VIME(tiny_encoder(seed=2))
    scarf.compile(optimizer=keras.optimizers.Adam(1e-2))  # one trained model (its step counter too)
    scarf.fit(dataset(64, 32).take(1), epochs=1, verbose=0)
    bare = tiny_encoder(seed=3)
    classifier = tabular.TabularClassifier(tiny_encoder(seed=4), 3, class_names=["x", "y", "z"])
    models = {"scarf": scarf, "vime": vime, "encoder": bare, "classifier": classifier}
    exports = {name: export_saved_model(model, str(root / name)) for name, model in models.items()}
    raw = serving_rows()
    inputs = {k: (v.astype(str) if v.dtype == object else v) for k, v in raw.items()}
    np.savez(root / "inputs.npz", **inputs)
    out = subprocess.run([sys.executable, "-c", SERVE, json.dumps(exports), str(root / "inputs.npz"),
                          str(root / "outputs.npz")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return models, raw, dict(np.load(root / "outputs.npz"))


@pytest.mark.parametrize("name", ["scarf", "vime", "encoder"])
def test_embeddings_served_match_the_python_model(served, name):
    models, raw, results = served
    model = models[name]
    expected = model(raw).numpy()
    assert results[f"{name}__embedding"].dtype == np.float32
    assert_close_to_scale(results[f"{name}__embedding"], expected, 1e-5, f"{name} embedding")
    assert list(results[f"{name}__inputs"]) == sorted(raw)  # one named input per raw column
    assert np.all(np.isfinite(results[f"{name}__embedding"]))  # NaN / inf / unseen values served


def test_missing_and_unseen_values_serve_as_the_preprocessing_defines(served):
    """A NaN behaves as the missing flag + imputed value, an unseen category as the OOV id 0."""
    models, raw, results = served
    encoder = models["encoder"]
    prep = encoder.preprocessing(raw)
    assert prep["missing"].numpy()[0, 1] == 1 and prep["missing"].numpy()[1, 3] == 1
    assert prep["categorical"].numpy()[2, 0] == 0
    other = {k: v.copy() for k, v in raw.items()}
    other["size"][2] = "never seen either"  # the same OOV bucket: the same embedding
    assert_close_to_scale(results["encoder__embedding"][2], encoder(other).numpy()[2], 1e-5, "OOV")


def test_classifier_serves_probabilities_and_labels(served):
    models, raw, results = served
    logits = models["classifier"](raw).numpy()
    probabilities = tf.nn.softmax(logits).numpy()
    assert results["classifier__probabilities"].dtype == np.float32
    assert results["classifier__probabilities"].shape == (12, 3)
    assert_close_to_scale(results["classifier__probabilities"], probabilities, 1e-5, "probabilities")
    assert results["classifier__label"].dtype == np.int64
    np.testing.assert_array_equal(results["classifier__label"], probabilities.argmax(axis=1))
    np.testing.assert_array_equal(results["classifier__class_name"],
                                  np.array(["x", "y", "z"])[probabilities.argmax(axis=1)])


def test_exporting_a_non_tabular_model_names_what_is_accepted(tmp_path):
    with pytest.raises(ExportError, match="tabular model"):
        export_saved_model(object(), str(tmp_path / "x"))
