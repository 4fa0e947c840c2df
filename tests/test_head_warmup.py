"""``fit_head``: warm-starting a fresh MLM head on frozen encoder features; ``word_accuracy``; the
cleaned pydoc corpus the demo trains on."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_text import tiny_deterministic_mlm

from keras_ssl.backend import tf
from keras_ssl.text import MaskedLanguageModel, head_variables
from keras_ssl.text.head_warmup import init_fresh_head
from keras_ssl.text.model import word_token_table


@pytest.fixture()
def tiny(minilm_tokenizer):
    return tiny_deterministic_mlm(minilm_tokenizer)


@pytest.fixture(scope="module")
def batches(pack_text, minilm_tokenizer):
    blocks = pack_text(minilm_tokenizer, 32)[:64]
    return tf.data.Dataset.from_tensor_slices(
        {"input_ids": blocks, "attention_mask": np.ones_like(blocks)}
    ).batch(16)


def test_only_head_variables_change_and_encoder_is_bitwise_unchanged(tiny, batches):
    head = {v.ref() for v in head_variables(tiny)}
    word_embeddings = tiny.hf_model.bert.embeddings.weight
    assert head and word_embeddings.ref() not in head  # the tied decoder stays frozen
    before = {v.ref(): v.numpy().copy() for v in tiny.weights}
    tiny.fit_head(batches, steps=5, learning_rate=1e-2)
    for v in tiny.weights:
        changed = not np.array_equal(before[v.ref()], v.numpy())
        assert changed == (v.ref() in head), v.name
    assert int(tiny.optimizer.iterations.numpy()) == 0  # the compiled optimizer is untouched


def test_loss_decreases_and_history_has_one_value_per_step(tiny, batches):
    lines = []
    history = tiny.fit_head(batches, steps=40, learning_rate=0.1, log_every=20, print_fn=lines.append)
    assert len(history["loss"]) == len(history["masked_accuracy"]) == 40
    assert np.mean(history["loss"][-8:]) < np.mean(history["loss"][:8]) - 0.5
    assert len(lines) == 2 and lines[-1].startswith("head warm-up 40/40")
    assert tiny.head_is_fresh is False


def test_fit_then_ordinary_fit_still_trains(tiny, batches):
    tiny.fit_head(batches, steps=3)
    before = tiny.evaluate(batches, return_dict=True, verbose=0)
    tiny.fit(batches, epochs=2, verbose=0)
    after = tiny.evaluate(batches, return_dict=True, verbose=0)
    assert after["loss"] < before["loss"]
    assert set(after) == {"loss", "masked_accuracy", "perplexity", "word_accuracy"}


def test_init_fresh_head_sets_identity_transform_and_unigram_bias(tiny, batches, minilm_tokenizer):
    assert init_fresh_head(tiny, batches, batches=2) == ["kernel", "bias"]
    predictions = tiny.hf_model.mlm.predictions
    np.testing.assert_array_equal(predictions.transform.dense.kernel.numpy(), np.eye(32, dtype=np.float32))
    ids = np.concatenate([b["input_ids"].numpy().ravel() for b in batches.take(2)])
    counts = np.bincount(ids, minlength=len(minilm_tokenizer))
    counts[minilm_tokenizer.all_special_ids] = 0  # special tokens are never predicted
    bias = predictions.bias.numpy()
    assert bias.argmax() == counts.argmax()
    assert bias[minilm_tokenizer.cls_token_id] == bias.min()  # counted as never seen
    np.testing.assert_allclose(bias.mean(), 0.0, atol=1e-4)


@pytest.mark.parametrize("architecture", ["bert", "roberta", "distilbert"])
def test_head_variables_exclude_the_encoder(minilm_tokenizer, architecture):
    mlm = MaskedLanguageModel.from_config(minilm_tokenizer, hidden_size=16, num_layers=1, num_heads=2,
                                          max_position_embeddings=32, architecture=architecture)
    head = head_variables(mlm)
    body = getattr(mlm.hf_model, mlm.hf_model.base_model_prefix)
    assert head and not {v.ref() for v in head} & {v.ref() for v in body.weights}
    assert any(v.shape == (len(minilm_tokenizer),) for v in head)  # the output bias


def test_head_is_fresh_for_minilm_and_not_after_save_pretrained(minilm_path, tmp_path):
    mlm = MaskedLanguageModel.from_pretrained(minilm_path)
    assert mlm.head_is_fresh is True
    assert len(head_variables(mlm)) == 5  # dense kernel/bias, LayerNorm gamma/beta, output bias
    mlm.save_pretrained(str(tmp_path))
    assert MaskedLanguageModel.from_pretrained(str(tmp_path)).head_is_fresh is False


def test_head_is_fresh_for_a_headless_tensorflow_checkpoint(minilm_tokenizer, tmp_path):
    from transformers import AutoConfig, TFAutoModel

    config = AutoConfig.for_model("bert", vocab_size=len(minilm_tokenizer), hidden_size=16,
                                  num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                  max_position_embeddings=64)
    encoder = TFAutoModel.from_config(config)
    encoder(encoder.dummy_inputs)
    encoder.save_pretrained(str(tmp_path))  # tf_model.h5: the encoder only, no MLM head
    minilm_tokenizer.save_pretrained(str(tmp_path))
    assert MaskedLanguageModel.from_pretrained(str(tmp_path)).head_is_fresh is True


def test_bad_input_errors(tiny, batches):
    with pytest.raises(ValueError, match="steps >= 1"):
        tiny.fit_head(batches, steps=0)
    with pytest.raises(ValueError, match="positive learning_rate"):
        tiny.fit_head(batches, learning_rate=0.0)
    with pytest.raises(TypeError, match="text_dataset"):
        tiny.fit_head(np.zeros((4, 8), np.int32))
    with pytest.raises(ValueError, match="empty dataset"):
        tiny.fit_head(batches.take(0))
    with pytest.raises(ValueError, match="raw strings"):
        tiny.fit_head(tf.data.Dataset.from_tensor_slices(["some text"]).batch(1))


def test_word_tokens_are_alphabetic_pieces(minilm_tokenizer):
    table = word_token_table(minilm_tokenizer, len(minilm_tokenizer))
    ids = minilm_tokenizer.convert_tokens_to_ids
    assert table[ids("the")] and table[ids("##ing")]
    for token in ("-", ",", "\"", "3", "[MASK]", "[CLS]", "[PAD]"):
        assert not table[ids(token)], token


def test_cleaned_pydoc_keeps_prose_and_code_without_table_rules():
    from pydoc_data.topics import topics

    from keras_ssl.datasets import pydoc_topics

    raw, clean = pydoc_topics(clean=False), pydoc_topics()
    assert raw == [topics[k] for k in sorted(topics)] and len(clean) == len(raw)
    text = "\n".join(clean)
    assert "+----" not in text and "====" not in text and "****" not in text
    assert all(any(c.isalnum() for c in line) for line in text.splitlines() if line.strip())
    # prose is kept with its inline quotes unwrapped; indented code keeps its layout
    assert "will call bool() on such value" in text and "\n   comp_operator ::=" in text
    assert 0.85 * len("".join(raw)) < len(text) < len("".join(raw))
