"""One MLM optimizer step on 1 replica and on a 2-replica MirroredStrategy; prints the max differences.

Run as a subprocess: the two logical CPU devices must be configured before TensorFlow starts.
"""

import json
import sys

import numpy as np
from _devices import two_cpu_devices

from keras_ssl.backend import keras, tf

DEVICES = two_cpu_devices()

from numerics import relative_step_difference  # noqa: E402
from transformers import AutoConfig, AutoTokenizer, TFAutoModelForMaskedLM  # noqa: E402

from keras_ssl.text import MaskedLanguageModel, TokenMasker  # noqa: E402

tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
optimizer_name = sys.argv[2] if len(sys.argv) > 2 else "sgd"
# No dropout: its randomness is per replica, so it would differ between 1 and 2 replicas.
config = AutoConfig.for_model("bert", vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                              num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                              hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
rng = np.random.default_rng(0)
ids = rng.integers(2000, 20000, (8, 24)).astype(np.int32)
ids[:, 0], ids[:, -1] = tokenizer.cls_token_id, tokenizer.sep_token_id
ids[5, 12:] = tokenizer.pad_token_id  # uneven masked counts across the two replicas
data = tf.data.Dataset.from_tensors({"input_ids": ids, "attention_mask": (ids != 0).astype(np.int32)})


def run(strategy, weights=None):
    with strategy.scope():
        keras.utils.set_random_seed(0)
        hf = TFAutoModelForMaskedLM.from_config(config)
        hf(hf.dummy_inputs, training=False)
        if weights is not None:
            hf.set_weights(weights)
        mlm = MaskedLanguageModel(hf, tokenizer, masker=TokenMasker(tokenizer, seed=7, mask_rate=0.3))
        # Adam's first step is lr * g / (|g| + epsilon): for gradients near epsilon, float32 rounding
        # in g (a sum over the batch, in another order on two replicas) is amplified ~|g|/epsilon times.
        # A larger epsilon keeps the test about replica exactness, not about that amplification.
        optimizer = (keras.optimizers.SGD(1.0) if optimizer_name == "sgd"
                     else keras.optimizers.Adam(1e-3, epsilon=1e-4))
        mlm.compile(optimizer=optimizer)
    start = [w.copy() for w in hf.get_weights()]
    history = mlm.fit(data, epochs=1, verbose=0).history
    return start, hf.get_weights(), history


start, single_weights, single = run(tf.distribute.get_strategy())
mirrored = tf.distribute.MirroredStrategy(DEVICES)
_, multi_weights, multi = run(mirrored, start)
# With SGD(lr=1) the weight change is the gradient itself.
grad_diff = max(float(np.max(np.abs((s0 - a) - (s0 - b))))
                for s0, a, b in zip(start, single_weights, multi_weights))
print(json.dumps({
    "replicas": mirrored.num_replicas_in_sync,
    "loss": [single["loss"][0], multi["loss"][0]],
    "masked_accuracy": [single["masked_accuracy"][0], multi["masked_accuracy"][0]],
    "max_weight_diff": grad_diff,
    "relative_step_diff": relative_step_difference(start, single_weights, multi_weights),
    "weights_moved": max(float(np.max(np.abs(s0 - a))) for s0, a in zip(start, single_weights)),
}))
