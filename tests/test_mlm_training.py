"""Real learning: the pretrained MiniLM fine-tuned on Python docs, and a from-scratch tiny BERT."""

from __future__ import annotations

import os

import numpy as np
import pytest
from tiny_text import tiny_deterministic_mlm

import keras_ssl
from keras_ssl.backend import keras, tf
from keras_ssl.datasets.pydoc import pydoc_topics
from keras_ssl.text import FillMaskCallback, MaskedLanguageModel
from keras_ssl.text.data import text_dataset
from keras_ssl.text.tokenizer_training import train_tokenizer


def pydoc_documents():
    from pydoc_data.topics import topics

    return [topics[k] for k in sorted(topics)]


@pytest.mark.slow
def test_pretrained_minilm_learns_python_docs(minilm_path):
    """MiniLM ships without an MLM head: warm a fresh one up on the frozen encoder, then fine-tune."""
    keras.utils.set_random_seed(0)
    mlm = MaskedLanguageModel.from_pretrained(minilm_path, seed=0)
    assert mlm.head_is_fresh
    train, val = text_dataset(pydoc_topics(), tokenizer=mlm.tokenizer, max_length=64, batch_size=16,
                              validation_split=0.05, seed=0)
    val = val.take(8).cache()
    steps = 30
    mlm.compile(optimizer=keras_ssl.optimizers.adamw(learning_rate=2e-4, warmup_steps=4, total_steps=steps))
    before = mlm.evaluate(val, return_dict=True, verbose=0)
    head = mlm.fit_head(train, steps=40, learning_rate=3e-3)
    warm = mlm.evaluate(val, return_dict=True, verbose=0)
    callback = FillMaskCallback(["Use the [MASK] statement to leave a loop."], print_fn=lambda s: None)
    history = mlm.fit(train.repeat(), steps_per_epoch=steps // 2, epochs=2, callbacks=[callback], verbose=0)
    after = mlm.evaluate(val, return_dict=True, verbose=0)
    print("before", before, "head warm-up", warm, "after", after)
    assert not mlm.head_is_fresh and np.mean(head["loss"][-5:]) < np.mean(head["loss"][:5])
    assert warm["masked_accuracy"] > before["masked_accuracy"] + 0.06
    assert after["masked_accuracy"] > warm["masked_accuracy"] + 0.03
    assert after["word_accuracy"] > 0.04
    assert after["perplexity"] < 0.1 * before["perplexity"]
    assert history.history["loss"][1] < history.history["loss"][0]
    assert len(callback.history) == 2 and len(callback.history[0][1][0]) == 3


@pytest.mark.slow
def test_from_scratch_tiny_bert_with_trained_tokenizer_learns(tmp_path):
    docs = pydoc_documents()
    tokenizer = train_tokenizer(docs, vocab_size=2000)
    mlm = MaskedLanguageModel.from_config(tokenizer, hidden_size=64, num_layers=2, num_heads=2,
                                          max_position_embeddings=128, seed=0)
    train, val = text_dataset(docs, tokenizer=tokenizer, max_length=64, batch_size=32,
                              validation_split=0.05, seed=0)
    val = val.take(4).cache()
    mlm.compile(optimizer=keras_ssl.optimizers.adamw(learning_rate=1e-3, warmup_steps=10, total_steps=120))
    before = mlm.evaluate(val, return_dict=True, verbose=0)
    mlm.fit(train.repeat(), steps_per_epoch=120, epochs=1, verbose=0)
    after = mlm.evaluate(val, return_dict=True, verbose=0)
    print("before", before, "after", after)
    assert after["perplexity"] < 0.25 * before["perplexity"]
    assert after["masked_accuracy"] > before["masked_accuracy"] + 0.08
    mlm.save_pretrained(str(tmp_path))
    assert MaskedLanguageModel.from_pretrained(str(tmp_path)).tokenizer.vocab_size == len(tokenizer)




class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("simulated crash")


def test_keras_callbacks_checkpoint_backup_early_stopping_tensorboard(minilm_path, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    text = " ".join(pydoc_documents()[:20])
    ids = np.array(tokenizer(text, add_special_tokens=False)["input_ids"][: 40 * 30]).reshape(40, 30)
    ids = np.concatenate([np.full((40, 1), tokenizer.cls_token_id), ids,
                          np.full((40, 1), tokenizer.sep_token_id)], 1).astype(np.int32)
    examples = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    data = tf.data.Dataset.from_tensor_slices(examples).take(24).batch(8)
    val = tf.data.Dataset.from_tensor_slices(examples).skip(24).batch(8)

    reference = tiny_deterministic_mlm(tokenizer)
    reference.fit(data, epochs=4, verbose=0)

    backup = str(tmp_path / "backup")
    resumed = tiny_deterministic_mlm(tokenizer)
    with pytest.raises(RuntimeError, match="simulated crash"):
        resumed.fit(data, epochs=4, verbose=0,
                    callbacks=[keras.callbacks.BackupAndRestore(backup), _Interrupt()])
    resumed = tiny_deterministic_mlm(tokenizer)
    resumed.fit(data, epochs=4, verbose=0, callbacks=[keras.callbacks.BackupAndRestore(backup)])
    assert resumed.optimizer.iterations.numpy() == reference.optimizer.iterations.numpy() == 12
    for a, b in zip(reference.weights, resumed.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, err_msg=a.name)

    weights = str(tmp_path / "ckpt" / "weights")
    model = tiny_deterministic_mlm(tokenizer)
    model.fit(data, validation_data=val, epochs=3, verbose=0, callbacks=[
        keras.callbacks.ModelCheckpoint(weights, save_weights_only=True),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=0, restore_best_weights=False),
        keras.callbacks.TensorBoard(str(tmp_path / "tb")),
    ])
    restored = tiny_deterministic_mlm(tokenizer)
    restored.load_weights(weights)
    batch = next(iter(val))
    np.testing.assert_allclose(restored(batch).numpy(), model(batch).numpy(), atol=1e-6)
    assert any("events" in f for _, _, files in os.walk(tmp_path / "tb") for f in files)
    assert tf.io.gfile.exists(weights + ".index")
