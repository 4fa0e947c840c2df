"""One TextClassifier step on 1 replica and on a 2-replica MirroredStrategy; prints the differences.

Run as a subprocess: the two logical CPU devices must be configured before TensorFlow starts.
Usage: text_classifier_replicas.py TOKENIZER_DIR POOLING [POOLING ...]; one JSON line each. Uneven class
weights, uneven padding and layer-wise learning-rate decay with AdamW: every per-replica share and
per-variable rate is exercised.
"""

import json
import sys

import numpy as np
from _devices import two_cpu_devices

from keras_ssl.backend import keras, tf

DEVICES = two_cpu_devices()

from transformers import (  # noqa: E402
    AutoConfig,
    AutoTokenizer,
    TFAutoModel,
    TFAutoModelForSequenceClassification,
)

import keras_ssl  # noqa: E402
from keras_ssl.text import TextClassifier  # noqa: E402

tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
# No dropout: its randomness is per replica, so it would differ between 1 and 2 replicas.
config = AutoConfig.for_model("bert", vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                              num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                              hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                              classifier_dropout=0.0, num_labels=3)
rng = np.random.default_rng(0)
ids = rng.integers(2000, 20000, (8, 24)).astype(np.int32)
ids[:, 0], ids[:, -1] = tokenizer.cls_token_id, tokenizer.sep_token_id
ids[5, 12:] = tokenizer.pad_token_id
ids[6, 4:] = tokenizer.pad_token_id
labels = np.array([0, 0, 0, 1, 2, 2, 2, 2], np.int32)  # replica 0 sees classes 0/1, replica 1 class 2
features = {"input_ids": ids, "attention_mask": (ids != 0).astype(np.int32)}
data = tf.data.Dataset.from_tensors((features, labels))


def run(pooling, strategy, weights=None):
    with strategy.scope():
        keras.utils.set_random_seed(0)
        cls = TFAutoModelForSequenceClassification if pooling == "hf" else TFAutoModel
        hf = cls.from_config(config)
        hf(hf.dummy_inputs, training=False)
        clf = TextClassifier(hf, tokenizer, 3, pooling=pooling, dropout=0.0, class_weight=[1.0, 3.0, 0.5],
                             layerwise_lr_decay=0.5)
        if weights is not None:
            for variable, value in zip(clf.trainable_variables, weights):
                variable.assign(value)
        clf.compile(optimizer=keras_ssl.optimizers.adamw(1e-3, total_steps=10, weight_decay=0.1))
    start = [v.numpy() for v in clf.trainable_variables]
    history = clf.fit(data, epochs=1, verbose=0).history
    return start, [v.numpy() for v in clf.trainable_variables], history


mirrored = tf.distribute.MirroredStrategy(DEVICES)  # one per process: collective keys
for pooling in sys.argv[2:] or ["mean"]:
    start, single_weights, single = run(pooling, tf.distribute.get_strategy())
    _, multi_weights, multi = run(pooling, mirrored, start)
    print(json.dumps({
        "pooling": pooling,
        "replicas": mirrored.num_replicas_in_sync,
        "loss": [single["loss"][0], multi["loss"][0]],
        "accuracy": [single["accuracy"][0], multi["accuracy"][0]],
        "macro_f1": [single["macro_f1"][0], multi["macro_f1"][0]],
        "max_weight_diff": max(float(np.max(np.abs(a - b))) for a, b in zip(single_weights, multi_weights)),
        "weights_moved": max(float(np.max(np.abs(s0 - a))) for s0, a in zip(start, single_weights)),
    }))
