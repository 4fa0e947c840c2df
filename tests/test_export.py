"""SavedModel exports: served in a fresh process that imports TensorFlow only, equal to the model.

The text exports tokenize raw strings with core TF ops (no ``tensorflow_text``): those ids must be
exactly the Hugging Face fast tokenizer's, on a varied corpus (accents, CJK, punctuation, control
characters, emoji, unknown and over-long words, empty strings, special tokens inside words).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
from numerics import assert_close_to_scale
from test_mlm_model import tiny_hf
from tiny_vision import TINY_HEADS
from transformers import AutoTokenizer, PreTrainedTokenizerFast, TFAutoModelForMaskedLM

from keras_ssl.backend import keras, tf
from keras_ssl.export import CoreWordPiece, ExportError, export_saved_model
from keras_ssl.text import TokenMasker, train_tokenizer
from keras_ssl.text.model import MaskedLanguageModel
from keras_ssl.vision import SimCLR
from keras_ssl.vision.backbones import small_cnn

SERVE = os.path.join(os.path.dirname(__file__), "scripts", "serve_export.py")
CRAFTED = [
    "The capital of France is [MASK].", "", "   ", "\t\n", "Café naïve résumé ÉCOLE Ångström",
    "中文字符 and 日本語のテキスト, 한국어", "x[MASK]y[SEP][CLS]", "[mask] is not special in lower case",
    "supercalifragilisticexpialidocious antidisestablishmentarianism", "a" * 150, "b" * 99 + " ok",
    "tab\there\nnew line\r\nend", "emoji 😀👍🏽 ok", "don't stop-believing... (really?!) #1 @home $5 50%",
    "İstanbul straße ﬁnance ΣΊΣΥΦΟΣ Ωmega", "\x00ctrl\u200bzero\u00a0nbsp\ufeffbom",
    "１２３ ＡＢＣ fullwidth",
    "ﷺ \u0301\u0301 lone accents", "mixed123numbers4567 x86_64 i18n", "[UNK] [PAD]",
    "word " * 300,
]


def fuzz_texts(n: int, seed: int = 0) -> list:
    """Random strings drawn from many Unicode blocks, with spaces and [MASK]s sprinkled in."""
    blocks = [(0x20, 0x7F), (0xA0, 0x250), (0x300, 0x370), (0x370, 0x400), (0x400, 0x500),
              (0x590, 0x700), (0x900, 0x980), (0x2000, 0x2070), (0x3040, 0x3100), (0x4E00, 0x4F00),
              (0xAC00, 0xAC80), (0xE000, 0xE010), (0xFE00, 0xFF00), (0x0, 0x20), (0x1F300, 0x1F650)]
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        text = ""
        for _ in range(rng.randint(0, 40)):
            lo, hi = rng.choice(blocks)
            text += chr(rng.randrange(lo, hi))
            text += " " if rng.random() < 0.2 else ""
            text += "[MASK]" if rng.random() < 0.03 else ""
        out.append(text)
    return out


def assert_same_ids(tokenizer, texts, max_length=128):
    ours = CoreWordPiece(tokenizer, max_length)(texts)
    ref = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="np")
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        assert ours[key].shape == ref[key].shape, key
        bad = np.flatnonzero((ours[key].numpy() != ref[key]).any(axis=1))
        assert not len(bad), f"{key} differ for {[texts[i] for i in bad[:5]]}"


def test_core_wordpiece_equals_fast_tokenizer_on_varied_text(minilm_tokenizer, pydoc_texts):
    lines = [line for text in pydoc_texts for line in text.splitlines()][:1500]
    assert_same_ids(minilm_tokenizer, CRAFTED)
    assert_same_ids(minilm_tokenizer, lines, max_length=512)
    assert_same_ids(minilm_tokenizer, fuzz_texts(1000), max_length=512)


def test_core_wordpiece_equals_a_cased_trained_tokenizer(pydoc_texts):
    tokenizer = train_tokenizer(pydoc_texts[:200], vocab_size=2000, lowercase=False)
    assert_same_ids(tokenizer, CRAFTED + fuzz_texts(300, seed=1))


def bpe_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "<unk>", "<mask>"])
    backend.train_from_iterator(["hello world, a tiny byte level corpus"] * 10, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>",
                                   mask_token="<mask>")


def test_tokenizer_that_core_tf_cannot_express_gets_a_clear_error(tmp_path):
    tokenizer = bpe_tokenizer()
    with pytest.raises(ExportError, match="include_strings=False"):
        CoreWordPiece(tokenizer)
    model = MaskedLanguageModel.from_config(tokenizer, hidden_size=16, num_layers=1, num_heads=2,
                                            max_position_embeddings=32, architecture="roberta", seed=0)
    with pytest.raises(ExportError, match="BPE"):
        export_saved_model(model, str(tmp_path / "strings"))
    assert not os.path.exists(tmp_path / "strings")
    export_saved_model(model, str(tmp_path / "ids"), include_strings=False)
    loaded = tf.saved_model.load(str(tmp_path / "ids"))
    assert sorted(loaded.signatures) == ["from_token_ids", "serving_default"]
    ids = tf.constant([[0, 5, 6, 2, 7]], tf.int32)
    out = loaded.signatures["serving_default"](input_ids=ids, attention_mask=tf.ones_like(ids))
    assert_close_to_scale(out["logits"].numpy(), model({"input_ids": ids}).numpy())


def serve(export_dir: str, calls: list, inputs: dict, tmp_path) -> dict:
    """Run ``calls`` against ``export_dir`` in a fresh Python that imports TensorFlow only."""
    calls_path, in_path, out_path = (str(tmp_path / f) for f in ("calls.json", "in.npz", "out.npz"))
    with open(calls_path, "w") as f:
        json.dump(calls, f)
    np.savez(in_path, **inputs)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TF_USE_LEGACY_KERAS")}
    proc = subprocess.run([sys.executable, SERVE, export_dir, calls_path, in_path, out_path],
                          capture_output=True, text=True, timeout=300, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(np.load(out_path))


@pytest.fixture(scope="module")
def fine_tuned_mlm(minilm_tokenizer, minilm_blocks):
    """A tiny BERT on MiniLM's vocabulary, trained a few steps so its predictions are not uniform."""
    model = MaskedLanguageModel(tiny_hf("bert"), minilm_tokenizer,
                                masker=TokenMasker(minilm_tokenizer, seed=0))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    blocks = minilm_blocks[:32, :64]
    model.fit({"input_ids": blocks, "attention_mask": np.ones_like(blocks)}, batch_size=8, epochs=1,
              verbose=0)
    return model


@pytest.fixture(scope="module")
def text_export(fine_tuned_mlm, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("text") / "export" / "1")
    export_saved_model(fine_tuned_mlm, path, top_k=4, max_length=64)
    return path


TEXTS = ["The [MASK] statement is used to raise an exception.", "no mask token here",
         "[MASK] and [MASK] are both masks!", "", "Ünïcödé [MASK] 中文 text " * 12]


def test_text_export_serves_the_same_numbers_with_tensorflow_only(fine_tuned_mlm, text_export, tmp_path):
    model, tokenizer = fine_tuned_mlm, fine_tuned_mlm.tokenizer
    enc = tokenizer(TEXTS, padding=True, truncation=True, max_length=64, return_tensors="np")
    ids, mask = enc["input_ids"].astype(np.int32), enc["attention_mask"].astype(np.int32)
    out = serve(text_export, [
        {"name": "fill", "signature": "serving_default", "inputs": ["text"]},
        {"name": "tok", "signature": "tokenize", "inputs": ["text"]},
        {"name": "ids", "signature": "from_token_ids", "inputs": ["input_ids", "attention_mask"]},
    ], {"fill__text": np.array(TEXTS), "tok__text": np.array(TEXTS),
        "ids__input_ids": ids, "ids__attention_mask": mask}, tmp_path)
    assert sorted(out["__signatures"]) == ["from_token_ids", "serving_default", "tokenize"]
    # tokenize: exactly the fast tokenizer's ids (truncated at max_length=64)
    np.testing.assert_array_equal(out["tok__input_ids"], ids)
    np.testing.assert_array_equal(out["tok__attention_mask"], mask)
    # from_token_ids: logits and mean-pooled embeddings
    logits = model({"input_ids": ids, "attention_mask": mask}).numpy()
    assert_close_to_scale(out["ids__logits"], logits)
    assert_close_to_scale(out["ids__embedding"], model.encode(TEXTS, max_length=64))
    assert_close_to_scale(out["fill__embedding"], model.encode(TEXTS, max_length=64))
    # fill-mask: per text, per mask, the same top-k tokens (in order) and scores as model.fill_mask
    fill = model.fill_mask(TEXTS, top_k=4)
    np.testing.assert_array_equal(out["fill__num_masks"], [1, 0, 2, 0, 12])
    for row, result in enumerate(fill):
        per_mask = [result] if result and isinstance(result[0], dict) else result
        assert out["fill__num_masks"][row] == len(per_mask)
        positions = np.flatnonzero(ids[row] == tokenizer.mask_token_id)
        np.testing.assert_array_equal(out["fill__mask_positions"][row][:len(per_mask)], positions)
        assert (out["fill__mask_positions"][row][len(per_mask):] == -1).all()
        for m, options in enumerate(per_mask):
            assert list(out["fill__top_k_ids"][row, m]) == [o["token"] for o in options]
            assert list(out["fill__top_k_tokens"][row, m]) == [o["token_str"] for o in options]
            np.testing.assert_allclose(out["fill__top_k_scores"][row, m], [o["score"] for o in options],
                                       atol=1e-5)
        # a row's unused mask slots (a text without [MASK]): defined padding, not garbage
        assert (out["fill__top_k_ids"][row, len(per_mask):] == -1).all()
        assert (out["fill__top_k_tokens"][row, len(per_mask):] == "").all()


def test_saved_model_cli_lists_the_documented_signatures(text_export):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    proc = subprocess.run([cli, "show", "--dir", text_export, "--all"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    shown = proc.stdout
    for signature in ("serving_default", "tokenize", "from_token_ids"):
        assert f"signature_def['{signature}']" in shown
    for name in ("top_k_tokens", "top_k_scores", "top_k_ids", "mask_positions", "num_masks", "embedding",
                 "logits", "input_ids", "attention_mask", "token_type_ids", "text"):
        assert f"['{name}']" in shown, name


def test_save_pretrained_of_a_fine_tuned_model_loads_in_transformers(fine_tuned_mlm, tmp_path):
    fine_tuned_mlm.save_pretrained(str(tmp_path))
    batch = {"input_ids": tf.constant([[101, 1996, 103, 4861, 2003, 102]], tf.int32)}
    expected = fine_tuned_mlm(batch).numpy()
    hf = TFAutoModelForMaskedLM.from_pretrained(str(tmp_path))
    assert_close_to_scale(hf(**batch).logits.numpy(), expected, rtol=1e-6)
    again = MaskedLanguageModel.from_pretrained(str(tmp_path))
    assert_close_to_scale(again(batch).numpy(), expected, rtol=1e-6)
    assert AutoTokenizer.from_pretrained(str(tmp_path))("a [MASK]")["input_ids"] == \
        fine_tuned_mlm.tokenizer("a [MASK]")["input_ids"]


@pytest.fixture(scope="module")
def simclr():
    keras.utils.set_random_seed(0)
    model = SimCLR(small_cnn((16, 16, 1), width=8), **TINY_HEADS["SimCLR"]())
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    images = np.random.default_rng(0).integers(0, 256, (32, 16, 16, 1)).astype(np.uint8)
    model.fit(images, batch_size=16, epochs=1, verbose=0)  # BN statistics move away from init
    return model


def test_vision_export_serves_embeddings_and_projections_from_raw_images(simclr, tmp_path):
    path = str(tmp_path / "vision" / "1")
    export_saved_model(simclr, path)
    rng = np.random.default_rng(1)
    same = rng.integers(0, 256, (5, 16, 16, 1)).astype(np.uint8)
    other = rng.integers(0, 256, (3, 40, 24, 1)).astype(np.uint8)
    out = serve(path, [
        {"name": "same", "signature": "serving_default", "inputs": ["images"]},
        {"name": "other", "signature": "serving_default", "inputs": ["images"]},
        {"name": "float", "signature": "serve_float", "inputs": ["images"]},
    ], {"same__images": same, "other__images": other, "float__images": same.astype(np.float32) / 255},
        tmp_path)
    assert sorted(out["__signatures"]) == ["serve_float", "serving_default"]
    embedding = simclr.predict(same, verbose=0)
    assert_close_to_scale(out["same__embedding"], embedding)
    assert_close_to_scale(out["float__embedding"], embedding)
    projection = simclr.projection(embedding, training=False).numpy()
    assert_close_to_scale(out["same__projection"], projection)
    resized = tf.image.resize(other.astype(np.float32) / 255, (16, 16)).numpy()
    assert_close_to_scale(out["other__embedding"], simclr.predict(resized, verbose=0))


def test_plain_keras_encoder_exports_and_unbuilt_one_errors(simclr, tmp_path):
    export_saved_model(simclr.encoder, str(tmp_path / "enc"))
    loaded = tf.saved_model.load(str(tmp_path / "enc"))
    images = np.full((2, 16, 16, 1), 128, np.uint8)
    out = loaded.signatures["serving_default"](images=tf.constant(images))
    assert set(out) == {"embedding"}
    assert_close_to_scale(out["embedding"].numpy(), simclr.predict(images, verbose=0))
    unbuilt = keras.Sequential([keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D()])
    with pytest.raises(ExportError, match="not built"):
        export_saved_model(unbuilt, str(tmp_path / "unbuilt"))
    with pytest.raises(ExportError, match="Cannot export a dict"):
        export_saved_model({"not": "a model"}, str(tmp_path / "dict"))


class _ScaleFromTable(keras.layers.Layer):
    """Multiplies by a value read from a lookup table: a resource that is not a variable."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        keys, values = tf.constant([0, 1], tf.int64), tf.constant([2.0, 3.0])
        self.table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, values), 1.0)

    def call(self, x):
        return x * self.table.lookup(tf.constant(1, tf.int64))


def test_encoder_holding_a_lookup_table_exports(tmp_path):
    """Export tracks only the variables the signatures read; a model with other resources (here a
    lookup table inside a layer) is tracked whole instead, and serves the same features."""
    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Dense(4)(keras.layers.Flatten()(_ScaleFromTable()(inputs)))
    encoder = keras.Model(inputs, outputs)
    export_saved_model(encoder, str(tmp_path / "table"))
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".export-")]  # no staging left behind
    images = np.random.default_rng(0).random((2, 8, 8, 1)).astype(np.float32)
    serve = tf.saved_model.load(str(tmp_path / "table")).signatures["serve_float"]
    served = serve(images=tf.constant(images))
    assert_close_to_scale(served["embedding"].numpy(), encoder(images).numpy())


def test_existing_export_is_kept_unless_overwrite(simclr, tmp_path):
    path = tmp_path / "v1"
    export_saved_model(simclr.encoder, str(path))
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_saved_model(simclr.encoder, str(path))
    before = sorted(os.listdir(path))
    with pytest.raises(ExportError):  # a failing export leaves the old one intact
        export_saved_model(keras.Sequential([keras.layers.Dense(2)]), str(path), overwrite=True)
    assert sorted(os.listdir(path)) == before
    export_saved_model(simclr, str(path), overwrite=True)
    assert "serve_float" in tf.saved_model.load(str(path)).signatures
    assert [p for p in os.listdir(tmp_path) if p.startswith(".export-")] == []


@pytest.mark.slow
def test_export_of_a_model_trained_under_mirrored_strategy(tmp_path):
    script = os.path.join(os.path.dirname(__file__), "scripts", "export_distributed.py")
    proc = subprocess.run([sys.executable, script, str(tmp_path / "export")], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    check = np.load(str(tmp_path / "export" / "check.npz"))
    out = serve(str(tmp_path / "export" / "vision"),
                [{"name": "v", "signature": "serving_default", "inputs": ["images"]}],
                {"v__images": check["images"]}, tmp_path)
    assert_close_to_scale(out["v__embedding"], check["embedding"])
    assert_close_to_scale(out["v__projection"], check["projection"])
    out = serve(str(tmp_path / "export" / "text"),
                [{"name": "t", "signature": "from_token_ids", "inputs": ["input_ids", "attention_mask"]}],
                {"t__input_ids": check["ids"], "t__attention_mask": np.ones_like(check["ids"])}, tmp_path)
    assert "tokenize" in out["__signatures"]
    assert_close_to_scale(out["t__logits"], check["logits"])


@pytest.mark.parametrize("variant", ["distilbert", "bert_without_split"])
def test_other_architectures_export_the_same_logits(variant, minilm_tokenizer, tmp_path):
    hf_model = tiny_hf("distilbert" if variant == "distilbert" else "bert")
    model = MaskedLanguageModel(hf_model, minilm_tokenizer)
    if variant == "bert_without_split":
        model._split = None  # an architecture without a known encoder/head split: full logits path
    export_saved_model(model, str(tmp_path / "e"), max_length=64)
    loaded = tf.saved_model.load(str(tmp_path / "e"))
    texts = ["a [MASK] here", "and [MASK] [MASK] there, longer text"]
    enc = minilm_tokenizer(texts, padding=True, return_tensors="np")
    ids, mask = enc["input_ids"].astype(np.int32), enc["attention_mask"].astype(np.int32)
    out = loaded.signatures["from_token_ids"](input_ids=tf.constant(ids), attention_mask=tf.constant(mask))
    logits = model({"input_ids": ids, "attention_mask": mask}).numpy()
    assert_close_to_scale(out["logits"].numpy(), logits)
    assert_close_to_scale(out["embedding"].numpy(), model.encode(texts))
    fill = loaded.signatures["serving_default"](text=tf.constant(texts))
    expected = model.fill_mask(texts, top_k=5)
    assert list(fill["top_k_ids"][0, 0].numpy()) == [o["token"] for o in expected[0]]
    second = [[o["token"] for o in options] for options in expected[1]]
    assert [list(row) for row in fill["top_k_ids"][1].numpy()] == second


def test_mixed_precision_model_exports_float32_outputs(tmp_path):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(0)
        encoder = small_cnn((16, 16, 1), width=8)
        model = SimCLR(encoder, **TINY_HEADS["SimCLR"]())
    finally:
        keras.mixed_precision.set_global_policy("float32")
    export_saved_model(model, str(tmp_path / "mp"))
    loaded = tf.saved_model.load(str(tmp_path / "mp"))
    images = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 1)).astype(np.uint8)
    out = loaded.signatures["serving_default"](images=tf.constant(images))
    assert out["embedding"].dtype == tf.float32 and out["projection"].dtype == tf.float32
    np.testing.assert_allclose(out["embedding"].numpy(),
                               tf.cast(model(images), tf.float32).numpy(), rtol=1e-3, atol=1e-3)


def test_unbuilt_text_model_gets_a_clear_error(minilm_tokenizer, tmp_path):
    from transformers import AutoConfig

    config = AutoConfig.for_model("bert", vocab_size=len(minilm_tokenizer), hidden_size=16,
                                  num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    hf_model = TFAutoModelForMaskedLM.from_config(config)
    assert not hf_model.built  # weights are created on the first call
    with pytest.raises(ExportError, match="weights do not exist yet"):
        export_saved_model(MaskedLanguageModel(hf_model, minilm_tokenizer), str(tmp_path / "e"))
