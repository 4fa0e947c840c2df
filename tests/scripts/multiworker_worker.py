"""One worker of a CPU multi-worker run (or, with ``--single``, the one-process reference run).

Usage: ``TF_CONFIG=... python multiworker_worker.py TOKENIZER_DIR OUT_PREFIX [--single]``

Trains a tiny-BERT ``MaskedLanguageModel`` and a ``vision.SimCLR`` (small_cnn with synchronised
batch norm, no augmentation) for a few steps on the same global batches, under the strategy that
``keras_ssl.distribute.auto_strategy()`` picks (MultiWorkerMirroredStrategy when TF_CONFIG names two
workers), and prints one JSON line per model: the strategy, its replica count and the per-step
losses. The weights before and after training go to ``OUT_PREFIX{model}.npz`` (``before_i``, ``after_i``).
"""

import json
import sys

import numpy as np

from keras_ssl.backend import keras, tf
from keras_ssl.distribute import auto_strategy, strategy_name

single = "--single" in sys.argv
# The strategy must exist before any other TensorFlow op runs (MultiWorkerMirroredStrategy needs it).
strategy = tf.distribute.get_strategy() if single else auto_strategy()

from transformers import AutoConfig, AutoTokenizer, TFAutoModelForMaskedLM  # noqa: E402

from keras_ssl import vision  # noqa: E402
from keras_ssl.text import MaskedLanguageModel, TokenMasker  # noqa: E402
from keras_ssl.vision import heads as H  # noqa: E402
from keras_ssl.vision.backbones import small_cnn  # noqa: E402

STEPS, GLOBAL_BATCH = 3, 8


def distributed(array) -> tf.data.Dataset:
    """``STEPS`` global batches; every worker builds the same dataset and the strategy shards it."""
    data = tf.data.Dataset.from_tensor_slices(array).batch(GLOBAL_BATCH, drop_remainder=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return data.with_options(options)


def report(name, model, before, history):
    after = model.get_weights()
    np.savez(f"{sys.argv[2]}{name}.npz", **{f"before_{i}": w for i, w in enumerate(before)},
             **{f"after_{i}": w for i, w in enumerate(after)})
    print(json.dumps({"model": name, "strategy": strategy_name(strategy),
                      "replicas": strategy.num_replicas_in_sync, "loss": history["loss"]}), flush=True)


def mlm(tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = AutoConfig.for_model("bert", vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    rng = np.random.default_rng(0)
    ids = rng.integers(2000, 20000, (STEPS * GLOBAL_BATCH, 24)).astype(np.int32)
    ids[:, 0], ids[:, -1] = tokenizer.cls_token_id, tokenizer.sep_token_id
    ids[5, 12:] = tokenizer.pad_token_id  # uneven masked counts across replicas
    data = distributed({"input_ids": ids, "attention_mask": (ids != 0).astype(np.int32)})
    with strategy.scope():
        keras.utils.set_random_seed(0)
        hf = TFAutoModelForMaskedLM.from_config(config)
        hf(hf.dummy_inputs, training=False)
        model = MaskedLanguageModel(hf, tokenizer, masker=TokenMasker(tokenizer, seed=7, mask_rate=0.3))
        model.compile(optimizer=keras.optimizers.Adam(1e-3, epsilon=1e-4))  # see mlm_replicas.py
    before = hf.get_weights()
    history = model.fit(data, epochs=1, verbose=0).history
    report("mlm", hf, before, history)


def simclr():
    images = np.random.default_rng(1).random((STEPS * GLOBAL_BATCH, 12, 12, 1)).astype(np.float32)
    with strategy.scope():
        keras.utils.set_random_seed(0)
        encoder = small_cnn((12, 12, 1), width=4, sync_batchnorm=True)
        model = vision.SimCLR(encoder, augment=None, temperature=0.5,
                              projection=H.simclr_projection(output_dim=8, hidden_dim=16))
        model.compile(optimizer=keras.optimizers.SGD(0.5))
    before = model.get_weights()
    history = model.fit(distributed(images), epochs=1, verbose=0).history
    report("simclr", model, before, history)


mlm(sys.argv[1])
simclr()
