"""Every method trains under mixed_float16 (with loss scaling), mixed_bfloat16 and jit_compile.

Tiny models, two steps each: the losses are finite, the weights move, and the loss that
``compute_loss_and_stats`` returns is float32 whatever the compute dtype.
"""

import numpy as np
import pytest
from tiny_vision import TINY_HEADS, tiny_images, tiny_mae

from keras_ssl import vision
from keras_ssl.backend import keras, tf
from keras_ssl.vision.backbones import small_cnn

MODES = ["mixed_float16", "mixed_bfloat16", "jit"]

VISION = TINY_HEADS


def _train(model, data, batch, mode, optimizer):
    model.compile(optimizer=optimizer, jit_compile=(mode == "jit"))
    if mode == "mixed_float16":  # tf_keras wraps the optimizer in compile under mixed_float16
        assert isinstance(model.optimizer, keras.mixed_precision.LossScaleOptimizer)
    loss_share, _ = model.compute_loss_and_stats(model.pretext(batch, training=True), training=True)
    assert loss_share.dtype == tf.float32
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(data, epochs=1, verbose=0).history
    assert all(np.isfinite(history["loss"])), history
    moved = max(float(np.max(np.abs(w.numpy() - b))) for w, b in zip(model.trainable_weights, before))
    assert moved > 0, "the optimizer did not update the weights"
    return history


# XLA compilation dominates (~5-25 s per model on a busy 2-core CPU): SimCLR covers jit by default,
# the other methods' jit cases are marked slow (deselect with -m "not slow").
CASES = [pytest.param(name, mode, marks=[pytest.mark.slow] if mode == "jit" and name != "SimCLR" else [])
         for name in sorted(VISION) for mode in MODES]


@pytest.mark.parametrize("name,policy", CASES, indirect=["policy"])
def test_vision_method_trains(policy, name):
    images = tiny_images(name, np.random.default_rng(0), 16, 8)
    keras.utils.set_random_seed(0)
    encoder = small_cnn((8, 8, 1), width=4)
    model = getattr(vision, name)(encoder, augment=None, **VISION[name]())
    if policy != "jit":
        assert model.encoder.layers[-1].compute_dtype == policy.split("_")[1]
    data = tf.data.Dataset.from_tensor_slices(images).batch(8)  # two steps
    _train(model, data, images[:8], policy, keras.optimizers.SGD(0.1))


@pytest.mark.parametrize("policy", MODES, indirect=True)
def test_mae_trains(policy):
    images = np.random.default_rng(0).random((16, 8, 8, 1)).astype(np.float32)
    keras.utils.set_random_seed(0)
    model = tiny_mae(8)
    data = tf.data.Dataset.from_tensor_slices(images).batch(8)
    _train(model, data, images[:8], policy, keras.optimizers.SGD(0.1))


@pytest.mark.parametrize("policy", MODES, indirect=True)
def test_masked_language_model_trains(policy, minilm_tokenizer):
    from transformers import AutoConfig, TFAutoModelForMaskedLM

    from keras_ssl.text import MaskedLanguageModel, TokenMasker

    tokenizer = minilm_tokenizer
    config = AutoConfig.for_model("bert", vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=64, max_position_embeddings=32,
                                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    ids = np.random.default_rng(0).integers(2000, 20000, (8, 16)).astype(np.int32)
    ids[:, 0], ids[:, -1] = tokenizer.cls_token_id, tokenizer.sep_token_id
    ids[3, 9:] = tokenizer.pad_token_id
    features = {"input_ids": ids, "attention_mask": (ids != 0).astype(np.int32)}
    keras.utils.set_random_seed(0)
    hf = TFAutoModelForMaskedLM.from_config(config)
    hf(hf.dummy_inputs, training=False)
    model = MaskedLanguageModel(hf, tokenizer, masker=TokenMasker(tokenizer, seed=3, mask_rate=0.3))
    data = tf.data.Dataset.from_tensor_slices(features).batch(4)  # two steps
    batch = {k: v[:4] for k, v in features.items()}
    _train(model, data, batch, policy, keras.optimizers.Adam(1e-3))
