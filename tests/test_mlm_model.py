"""MaskedLanguageModel: loss wiring, the gathered-logits fast path, save/load, fill-mask, errors."""

from __future__ import annotations

import numpy as np
import pytest
from numerics import assert_close_to_scale, relative_difference
from transformers import AutoConfig, AutoTokenizer, TFAutoModelForMaskedLM

from keras_ssl.backend import keras, tf
from keras_ssl.text import TokenMasker
from keras_ssl.text.heads import split_masked_lm
from keras_ssl.text.losses import masked_lm_terms
from keras_ssl.text.model import MaskedLanguageModel

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=64)


def tiny_hf(model_type: str, vocab_size: int = 30522):
    if model_type == "distilbert":
        sizes = dict(dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64)
    elif model_type in ("albert", "electra"):
        sizes = dict(TINY, embedding_size=16)
    else:
        sizes = dict(TINY)
    if model_type == "roberta":
        sizes["max_position_embeddings"] = 66
    keras.utils.set_random_seed(0)
    config = AutoConfig.for_model(model_type, vocab_size=vocab_size, **sizes)
    model = TFAutoModelForMaskedLM.from_config(config)
    model(model.dummy_inputs, training=False)
    return model


@pytest.fixture(scope="module")
def tokenizer(minilm_path):
    return AutoTokenizer.from_pretrained(minilm_path)


@pytest.fixture(scope="module")
def tiny_mlm(tokenizer):
    return MaskedLanguageModel(tiny_hf("bert"), tokenizer, masker=TokenMasker(tokenizer, seed=3))


def batch_of(tokenizer, n=4, length=32, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(2000, 20000, (n, length)).astype(np.int32)
    ids[:, 0], ids[:, -1] = tokenizer.cls_token_id, tokenizer.sep_token_id
    return {"input_ids": ids, "attention_mask": np.ones_like(ids)}


@pytest.mark.parametrize("model_type", ["bert", "roberta", "distilbert", "albert", "electra"])
def test_split_head_matches_full_model(model_type):
    hf = tiny_hf(model_type)
    encoder, head = split_masked_lm(hf)
    ids = tf.constant(np.random.default_rng(1).integers(5, 1000, (2, 16)), tf.int32)
    full = hf(input_ids=ids, training=False).logits
    hidden = encoder(ids, None, training=False)
    picked = tf.reshape(hidden, [-1, 1, hidden.shape[-1]])
    assert_close_to_scale(head(picked, False)[:, 0, :].numpy(),
                          tf.reshape(full, [-1, full.shape[-1]]).numpy())


def test_gathered_and_full_logits_give_same_loss_and_gradients(tiny_mlm, tokenizer):
    views = tiny_mlm.pretext(batch_of(tokenizer), training=False)
    results = []
    for gather in (True, False):
        tiny_mlm.gather_logits = gather
        with tf.GradientTape() as tape:
            loss, stats = tiny_mlm.compute_loss_and_stats(views, training=False)
        grads = tape.gradient(loss, tiny_mlm.trainable_variables)
        results.append((loss.numpy(), [0 if g is None else tf.convert_to_tensor(g).numpy() for g in grads]))
    tiny_mlm.gather_logits = True
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5)
    # Relative to the largest gradient over all variables (a per-tensor bound fails where a gradient is ~0).
    assert relative_difference(results[0][1], results[1][1]) <= 1e-4


def test_loss_is_mean_cross_entropy_over_masked_tokens(tiny_mlm, tokenizer):
    views = tiny_mlm.pretext(batch_of(tokenizer), training=False)
    loss, stats = tiny_mlm.compute_loss_and_stats(views, training=False)
    logits = tiny_mlm.hf_model(input_ids=views["input_ids"]).logits.numpy().astype(np.float64)
    labels = views["labels"].numpy()
    sel = labels != -100
    logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
        - logits.max(-1, keepdims=True)
    expected = -np.mean(logp[sel, labels[sel]])
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)
    assert stats["masked_accuracy"][1].numpy() == sel.sum()


def test_validation_masks_are_deterministic_and_training_masks_fresh(tiny_mlm, tokenizer):
    batch = batch_of(tokenizer)
    a = tiny_mlm.pretext(batch, training=False)["labels"].numpy()
    b = tiny_mlm.pretext(batch, training=False)["labels"].numpy()
    np.testing.assert_array_equal(a, b)
    tiny_mlm.compile(optimizer=keras.optimizers.SGD(0.0))
    first = tiny_mlm.pretext(batch, training=True)["labels"].numpy()
    tiny_mlm.optimizer.iterations.assign_add(1)
    second = tiny_mlm.pretext(batch, training=True)["labels"].numpy()
    assert not np.array_equal(first, second)


def test_jit_compile_trains_with_same_loss(tokenizer):
    batch = batch_of(tokenizer, n=8)
    losses = []
    for jit in (False, True):
        mlm = MaskedLanguageModel(tiny_hf("bert"), tokenizer, masker=TokenMasker(tokenizer, seed=5))
        mlm.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=jit)
        history = mlm.fit(tf.data.Dataset.from_tensors(batch).repeat(3), epochs=1, verbose=0)
        losses.append(history.history["loss"][0])
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4)
    assert np.isfinite(losses).all()


def test_nothing_maskable_gives_zero_loss_and_a_warning(tiny_mlm, tokenizer, capfd):
    ids = np.full((2, 16), tokenizer.pad_token_id, np.int32)
    ids[:, 0] = tokenizer.cls_token_id
    batch = {"input_ids": ids, "attention_mask": (ids != tokenizer.pad_token_id).astype(np.int32)}
    tiny_mlm.compile(optimizer=keras.optimizers.SGD(0.1))
    result = tiny_mlm.evaluate(tf.data.Dataset.from_tensors(batch), return_dict=True, verbose=0)
    assert result["loss"] == 0.0 and np.isfinite(result["perplexity"])
    assert "no maskable tokens" in capfd.readouterr().err


def test_clear_errors(tokenizer):
    with pytest.raises(ValueError, match="resize_token_embeddings"):
        MaskedLanguageModel(tiny_hf("bert", vocab_size=1000), tokenizer)
    mlm = MaskedLanguageModel(tiny_hf("bert"), tokenizer, masker=TokenMasker(tokenizer, seed=0))
    too_long = batch_of(tokenizer, length=80)
    with pytest.raises(ValueError, match="position"):
        mlm.pretext(too_long, training=False)
    with pytest.raises(ValueError, match="raw strings"):
        mlm.pretext({"input_ids": tf.constant([["a b"]])}, training=False)
    with pytest.raises(ValueError, match="input_ids"):
        mlm.pretext({"ids": tf.constant([[1, 2]])}, training=False)


def test_fill_mask_follows_pipeline_format(tiny_mlm):
    one = tiny_mlm.fill_mask("the capital of france is [MASK].", top_k=3)
    assert len(one) == 3 and set(one[0]) == {"score", "token", "token_str", "sequence"}
    assert one[0]["score"] >= one[1]["score"] >= one[2]["score"]
    assert one[0]["sequence"] == f"the capital of france is {one[0]['token_str']}."
    two = tiny_mlm.fill_mask("[MASK] is [MASK].", top_k=2)
    assert len(two) == 2 and all(len(options) == 2 for options in two)
    # each mask's sequences keep the other mask, without [CLS]/[SEP]
    for options in two:
        for option in options:
            sequence = option["sequence"]
            assert sequence.count("[MASK]") == 1 and "[CLS]" not in sequence and "[SEP]" not in sequence
    assert two[0][0]["sequence"].endswith(" is [MASK].") and two[1][0]["sequence"].startswith("[MASK] is")
    assert tiny_mlm.fill_mask("no mask here") == []
    batch = tiny_mlm.fill_mask(["a [MASK].", "no mask"], top_k=1)
    assert len(batch) == 2 and batch[1] == []
    assert tiny_mlm.fill_mask([]) == []
    with pytest.raises(ValueError, match=r"Text 1 .*writes <mask>, but this model's mask token is \[MASK\]"):
        tiny_mlm.fill_mask(["a [MASK].", "the capital of france is <mask>."])  # RoBERTa's spelling
    limit = tiny_mlm.hf_model.config.max_position_embeddings
    with pytest.raises(ValueError, match=r"Text 1 .*has a \[MASK\] beyond the first \d+ tokens.*shorten"):
        tiny_mlm.fill_mask(["a [MASK].", "word " * limit + "[MASK]"])
    cut_after = tiny_mlm.fill_mask("[MASK] " + "word " * limit, top_k=1)  # the mask itself was read
    assert len(cut_after) == 1 and cut_after[0]["token_str"]


def test_encode_is_masked_mean_of_hidden_states(tiny_mlm):
    texts = ["short", "a much longer sentence with more words in it"]
    emb = tiny_mlm.encode(texts)
    assert emb.shape == (2, 32)
    single = tiny_mlm.encode(texts[0])
    assert_close_to_scale(emb[0], single[0])  # padding does not leak in


def test_save_pretrained_round_trip(tiny_mlm, tmp_path):
    tiny_mlm.save_pretrained(str(tmp_path))
    batch = {"input_ids": tf.constant([[101, 2000, 103, 3000, 102]])}
    expected = tiny_mlm(batch).numpy()
    hf = TFAutoModelForMaskedLM.from_pretrained(str(tmp_path))
    assert_close_to_scale(hf(**batch).logits.numpy(), expected)
    again = MaskedLanguageModel.from_pretrained(str(tmp_path))
    assert_close_to_scale(again(batch).numpy(), expected)
    assert again.masker.get_config() == tiny_mlm.masker.get_config()


def test_masked_lm_terms_count_only_labelled_positions():
    logits = tf.constant(np.random.default_rng(0).normal(size=(2, 3, 5)), tf.float32)
    labels = tf.constant([[1, -100, 2], [-100, -100, 4]])
    _, _, count = masked_lm_terms(logits, labels)
    assert count.numpy() == 3
