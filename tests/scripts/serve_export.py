"""Serve a keras_ssl export in a process that imports TensorFlow only (no keras_ssl, Keras, transformers).

Usage: serve_export.py EXPORT_DIR CALLS_JSON INPUTS_NPZ OUTPUTS_NPZ
``CALLS_JSON``: ``[{"name": call, "signature": sig, "inputs": [arg, ...]}, ...]``; the input
``arg`` of ``call`` is ``INPUTS_NPZ[call + "__" + arg]``. Every output ``out`` lands in
``OUTPUTS_NPZ[call + "__" + out]`` (strings decoded to str). Also writes ``__signatures``.
"""

import json
import sys

import numpy as np
import tensorflow as tf

ALREADY = set(sys.modules)  # stock TensorFlow itself imports the keras package; that is fine
export_dir, calls_json, inputs_npz, outputs_npz = sys.argv[1:5]
loaded = tf.saved_model.load(export_dir)
inputs = np.load(inputs_npz)
results = {"__signatures": np.array(sorted(loaded.signatures))}
for call in json.load(open(calls_json)):
    fn = loaded.signatures[call["signature"]]
    args = {}
    for arg in call["inputs"]:
        value = inputs[call["name"] + "__" + arg]
        args[arg] = tf.constant(value.astype(object) if value.dtype.kind == "U" else value)
    for key, value in fn(**args).items():
        value = value.numpy()
        if value.dtype == object:
            value = np.vectorize(lambda b: b.decode("utf-8"), otypes=[str])(value) if value.size else \
                value.astype(str)
        results[call["name"] + "__" + key] = value
forbidden = sorted(m for m in ("keras_ssl", "transformers", "tf_keras", "keras", "tensorflow_text")
                   if m in sys.modules and m not in ALREADY)
assert not forbidden, f"serving imported {forbidden}"
np.savez(outputs_npz, **results)
print("served", len(results) - 1, "outputs")
