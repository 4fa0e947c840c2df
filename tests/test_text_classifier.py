"""TextClassifier: learns real text, exact metrics and loss, bad input, transformers round trip, export,
replicas and layer-wise learning rates."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import f1_score
from test_export import serve
from tiny_text import tiny_deterministic_mlm
from transformers import AutoConfig, TFAutoModel, TFAutoModelForSequenceClassification

import keras_ssl
from keras_ssl.backend import keras, tf
from keras_ssl.export import export_saved_model
from keras_ssl.text import TextClassifier, labelled_text_dataset
from keras_ssl.training.metrics import MacroF1

REPLICAS = os.path.join(os.path.dirname(__file__), "scripts", "text_classifier_replicas.py")
SUBJECTS = ["The movie", "This book", "The restaurant", "The hotel", "Our trip", "The concert",
            "This phone", "The service"]
POSITIVE = ["was wonderful and I loved it", "was excellent, highly recommended", "made me really happy",
            "was a delight from start to finish"]
NEGATIVE = ["was terrible and I hated it", "was awful, a complete waste of money", "made me really angry",
            "was a disappointment from start to finish"]


def sentiment(subjects):
    """Real English reviews: label 1 positive, 0 negative, balanced."""
    texts, labels = [], []
    for subject in subjects:
        for good, bad in zip(POSITIVE, NEGATIVE):
            texts += [f"{subject} {good}.", f"{subject} {bad}."]
            labels += [1, 0]
    return texts, labels


def tiny(tokenizer, num_labels=2, pooling="mean", layers=2, model_type="bert", **kwargs):
    """A tiny random BERT (no dropout) on MiniLM's vocabulary, wrapped in a TextClassifier."""
    keras.utils.set_random_seed(0)
    sizes = dict(hidden_size=32, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=64,
                 max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    if model_type in ("albert", "electra"):
        sizes["embedding_size"] = 16
    config = AutoConfig.for_model(model_type, vocab_size=len(tokenizer), num_labels=num_labels, **sizes)
    hf = (TFAutoModelForSequenceClassification if pooling == "hf" else TFAutoModel).from_config(config)
    hf(hf.dummy_inputs, training=False)
    kwargs.setdefault("dropout", 0.0)
    return TextClassifier(hf, tokenizer, num_labels, pooling=pooling, **kwargs)


def batch(tokenizer, texts, labels):
    data = labelled_text_dataset(texts, labels, tokenizer=tokenizer, max_length=32, batch_size=len(texts))
    return next(iter(data))


# --- metrics and loss -------------------------------------------------------------------------------


def test_macro_f1_equals_sklearn_over_several_updates():
    rng = np.random.default_rng(0)
    metric = MacroF1(5)
    truth, guess = [], []
    for size in (7, 1, 30, 12):
        t = rng.integers(0, 4, size)  # class 4 never occurs in the labels...
        g = rng.integers(0, 5, size)  # ...but may be predicted (its F1 is 0 and counts)
        metric.update_state(t, g)
        truth.append(t)
        guess.append(g)
    truth, guess = np.concatenate(truth), np.concatenate(guess)
    np.testing.assert_allclose(metric.result().numpy(), f1_score(truth, guess, average="macro"), atol=1e-6)
    metric.reset_state()
    metric.update_state([0, 0, 1], [0, 0, 0])  # class 2: absent from both, so not averaged
    np.testing.assert_allclose(metric.result().numpy(), f1_score([0, 0, 1], [0, 0, 0], average="macro"),
                               atol=1e-6)


def test_loss_is_the_class_weighted_mean_cross_entropy(minilm_tokenizer):
    clf = tiny(minilm_tokenizer, num_labels=3, class_weight={1: 4.0, 2: 0.5})
    clf.compile(optimizer="sgd")
    texts = ["one text", "a second text here", "third", "the fourth one", "fifth and last"]
    labels = [0, 1, 2, 1, 0]
    features, y = batch(minilm_tokenizer, texts, labels)
    logits = clf(features).numpy().astype(np.float64)
    ce = np.log(np.exp(logits).sum(1)) - logits[np.arange(5), labels]
    w = np.array([1.0, 4.0, 0.5])[labels]
    result = clf.evaluate(features, y, batch_size=5, verbose=0, return_dict=True)
    np.testing.assert_allclose(result["loss"], (w * ce).sum() / w.sum(), rtol=1e-5)
    # Keras sample weights multiply in: a weighted mean over both
    sw = np.array([1.0, 2.0, 1.0, 0.0, 3.0])
    result = clf.evaluate(features, y, sample_weight=sw, batch_size=5, verbose=0, return_dict=True)
    np.testing.assert_allclose(result["loss"], (sw * w * ce).sum() / (sw * w).sum(), rtol=1e-5)
    predicted = logits.argmax(1)
    np.testing.assert_allclose(result["accuracy"], (predicted == labels).mean(), atol=1e-6)
    np.testing.assert_allclose(result["macro_f1"], f1_score(labels, predicted, average="macro"), atol=1e-6)


def test_fit_head_fits_only_the_head_on_pooled_features(minilm_tokenizer):
    """The probe of LP-FT: a weighted logistic regression on the frozen encoder's pooled features."""
    clf = tiny(minilm_tokenizer, num_labels=3, class_weight={1: 4.0, 2: 0.5})
    texts, labels = sentiment(SUBJECTS)
    labels = [(y + i) % 3 for i, y in enumerate(labels)]  # three classes
    data = labelled_text_dataset(texts, labels, tokenizer=minilm_tokenizer, max_length=32, batch_size=10)
    body = [v.numpy() for v in clf.body.weights]
    kernel_before = clf.head.kernel.numpy()
    features = {k: tf.concat([b[0][k] for b in data], 0) for k in ("input_ids", "attention_mask")}
    hidden = clf.body(**features, training=False)[0].numpy().astype(np.float64)
    mask = features["attention_mask"].numpy()[..., None]
    pooled = (hidden * mask).sum(1) / mask.sum(1)  # mean pooling, reference

    w = np.array([1.0, 4.0, 0.5])[labels]
    onehot = np.eye(3)[labels]

    def loss_and_gradients(kernel, bias):
        logits = pooled @ kernel + bias
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        ce = -np.log((p * onehot).sum(1))
        d_logits = (w / w.sum())[:, None] * (p - onehot)
        return (w * ce).sum() / w.sum(), pooled.T @ d_logits, d_logits.sum(0)

    # reference: full-batch Adam (Keras defaults: beta 0.9/0.999, epsilon 1e-7) in float64 NumPy
    kernel, bias = kernel_before.astype(np.float64), clf.head.bias.numpy().astype(np.float64)
    moments = [[np.zeros_like(kernel), np.zeros_like(kernel)], [np.zeros_like(bias), np.zeros_like(bias)]]
    losses = []
    for t in range(1, 201):
        loss, *grads = loss_and_gradients(kernel, bias)
        losses.append(loss)
        params = [kernel, bias]
        for i, (g, (m, v)) in enumerate(zip(grads, moments)):
            m[:] = 0.9 * m + 0.1 * g
            v[:] = 0.999 * v + 0.001 * g * g
            rate = 1e-2 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
            params[i] = params[i] - rate * m / (np.sqrt(v) + 1e-7)
        kernel, bias = params

    history = clf.fit_head(data, steps=200, learning_rate=1e-2)
    assert len(history["loss"]) == 200 and clf.optimizer is None  # nothing compiled, nothing touched
    np.testing.assert_allclose(history["loss"], losses, rtol=1e-3)
    assert losses[-1] < 0.8 * losses[0]
    moved = np.abs(kernel - kernel_before).max()
    assert np.abs(clf.head.kernel.numpy() - kernel).max() <= 1e-2 * moved
    for before, after in zip(body, clf.body.weights):
        np.testing.assert_array_equal(before, after.numpy())
    with pytest.raises(ValueError, match="pooling='hf'"):
        tiny(minilm_tokenizer, pooling="hf").fit_head(data)
    with pytest.raises(TypeError, match="labelled_text_dataset"):
        clf.fit_head((texts, labels))
    unlabelled = data.map(lambda x, y: x)
    with pytest.raises(ValueError, match="no labels"):
        clf.fit_head(unlabelled)


# --- learning real text with MiniLM ----------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_minilm(minilm_path):
    keras.utils.set_random_seed(0)
    clf = TextClassifier.from_pretrained(minilm_path, num_labels=2)
    train_texts, train_labels = sentiment(SUBJECTS[:6])
    val_texts, val_labels = sentiment(SUBJECTS[6:])
    train = labelled_text_dataset(train_texts, train_labels, tokenizer=clf.tokenizer, max_length=32,
                                  batch_size=16, shuffle=True, seed=0)
    val = labelled_text_dataset(val_texts, val_labels, tokenizer=clf.tokenizer, max_length=32, batch_size=16)
    clf.compile(optimizer=keras_ssl.optimizers.adamw(2e-4, warmup_steps=1, total_steps=6))
    history = clf.fit(train, validation_data=val, epochs=2, verbose=0).history
    return clf, history, val, (val_texts, val_labels)


def test_minilm_classifier_learns_unseen_reviews(trained_minilm):
    clf, history, _, (texts, labels) = trained_minilm
    assert clf.pooling == "mean"
    assert set(history) == {"loss", "accuracy", "macro_f1", "val_loss", "val_accuracy", "val_macro_f1"}
    assert history["val_accuracy"][-1] >= 0.9  # held-out subjects; chance is 0.5
    probabilities = clf.predict(texts)
    assert probabilities.shape == (len(texts), 2)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-6)
    predicted = probabilities.argmax(1)
    np.testing.assert_allclose(history["val_macro_f1"][-1], f1_score(labels, predicted, average="macro"),
                               atol=1e-6)
    np.testing.assert_allclose(history["val_accuracy"][-1], (predicted == labels).mean(), atol=1e-6)


def test_predict_takes_strings_one_string_and_tokenized_batches(trained_minilm):
    clf, _, val, (texts, _) = trained_minilm
    from_strings = clf.predict(texts, batch_size=5)
    np.testing.assert_allclose(clf.predict(val, verbose=0), from_strings, atol=1e-5)
    np.testing.assert_allclose(clf.predict(texts[3]), from_strings[3:4], atol=1e-5)
    np.testing.assert_allclose(clf.predict(np.array(texts[:2])), from_strings[:2], atol=1e-5)
    assert clf.predict([]).shape == (0, 2)


def test_predict_batches_texts_of_similar_length_and_keeps_their_order(trained_minilm, monkeypatch):
    clf, _, _, (texts, _) = trained_minilm
    mixed = [t if i % 2 else t + " and it went on" * (1 + i % 5) for i, t in enumerate(texts)]
    widths, inner = [], clf._predict_ids

    def recorded(ids, mask):
        widths.append(int(ids.shape[1]))
        return inner(ids, mask)

    monkeypatch.setattr(clf, "_predict_ids", recorded)
    probabilities = clf.predict(mixed, batch_size=4)
    assert len(widths) == -(-len(mixed) // 4) and widths == sorted(widths) and widths[0] < widths[-1]
    unpadded = np.concatenate([clf.predict([t]) for t in mixed])  # one text per batch: no padding at all
    np.testing.assert_allclose(probabilities, unpadded, atol=1e-5)


def test_from_masked_language_model_copies_its_encoder(minilm_tokenizer):
    mlm = tiny_deterministic_mlm(minilm_tokenizer)
    clf = TextClassifier.from_pretrained(mlm, num_labels=3, dropout=0.0)
    body = {v.name.split("/", 1)[1]: v.numpy() for v in mlm.hf_model.bert.trainable_variables}
    copied = {v.name.split("/", 1)[1]: v.numpy() for v in clf.body.trainable_variables}
    assert set(body) <= set(copied)
    for name, value in body.items():
        np.testing.assert_array_equal(copied[name], value)
    clf.compile(optimizer=keras.optimizers.SGD(0.5))
    features, labels = batch(minilm_tokenizer, ["a b", "c d", "e f"], [0, 1, 2])
    clf.fit(features, labels, epochs=1, verbose=0)
    after = {v.name.split("/", 1)[1]: v.numpy() for v in mlm.hf_model.bert.trainable_variables}
    assert all(np.array_equal(after[n], body[n]) for n in body)  # the MLM itself is untouched


# --- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("texts, labels, error, match", [
    (["a", "b"], [0, 2], ValueError, r"Label 2 \(index 1\) is outside 0..1"),
    (["a", "b"], [0, -1], ValueError, "outside"),
    (["a", "b"], [0.0, 1.0], TypeError, "astype\\(int\\)"),
    (["a", "b"], ["pos", "neg"], TypeError, "map names to ids"),
    (["a", "b"], [0], ValueError, "one label per text"),
    ([], [], ValueError, "empty"),
    (["fine", "  "], [0, 1], ValueError, "empty or blank.*indices \\[1\\]"),
    ("one string", [0], TypeError, "single string"),
])
def test_labelled_text_dataset_rejects_bad_input(minilm_tokenizer, texts, labels, error, match):
    with pytest.raises(error, match=match):
        labelled_text_dataset(texts, labels, tokenizer=minilm_tokenizer, num_labels=2)


def test_labelled_text_dataset_warns_about_a_class_without_examples(minilm_tokenizer):
    with pytest.warns(UserWarning, match=r"Classes \[2\] of 0..2 have no example"):
        labelled_text_dataset(["a", "b"], [0, 1], tokenizer=minilm_tokenizer, num_labels=3)


def test_labelled_text_dataset_batches_and_reshuffles_reproducibly(minilm_tokenizer):
    texts = [f"text number {i}" + " word" * i for i in range(10)]
    data = labelled_text_dataset(texts, list(range(10)), tokenizer=minilm_tokenizer, max_length=8,
                                 batch_size=4, shuffle=True, seed=3)
    first = [y.numpy().tolist() for _, y in data]
    second = [y.numpy().tolist() for _, y in data]
    features, labels = next(iter(data))
    assert features["input_ids"].shape == (4, 8) and features["input_ids"].dtype == tf.int32
    assert labels.dtype == tf.int32
    assert sorted(sum(first, [])) == list(range(10)) and first != second  # a new order every epoch
    again = labelled_text_dataset(texts, list(range(10)), tokenizer=minilm_tokenizer, max_length=8,
                                  batch_size=4, shuffle=True, seed=3)
    assert [y.numpy().tolist() for _, y in again] == first


@pytest.mark.parametrize("side", ["right", "left"])
def test_labelled_text_dataset_pads_each_batch_to_its_longest_text(minilm_tokenizer, side):
    import copy

    tokenizer = copy.deepcopy(minilm_tokenizer)
    tokenizer.padding_side = side
    texts = ["short", "also short", "a much longer text" + " word" * 20, "short again"]
    data = labelled_text_dataset(texts, [0, 1, 0, 1], tokenizer=tokenizer, max_length=64, batch_size=2)
    full = tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="np")
    for b, (features, _) in enumerate(data):
        ids, mask = features["input_ids"].numpy(), features["attention_mask"].numpy()
        longest = int(mask.sum(1).max())
        assert ids.shape[1] == min(-(-longest // 8) * 8, full["input_ids"].shape[1])  # multiple of 8, capped
        rows = slice(2 * b, 2 * b + 2)
        expected = full["input_ids"][rows][:, :ids.shape[1]] if side == "right" else \
            full["input_ids"][rows][:, -ids.shape[1]:]
        np.testing.assert_array_equal(ids, expected)  # only padding columns were cut
        assert mask.sum() == full["attention_mask"][rows].sum()


def test_fit_rejects_bad_batches(minilm_tokenizer):
    clf = tiny(minilm_tokenizer, layers=1)
    clf.compile(optimizer="sgd")
    features, _ = batch(minilm_tokenizer, ["a", "b"], [0, 1])
    with pytest.raises(TypeError, match="integer class ids"):
        clf.fit(features, np.array([0.0, 1.0], np.float32), verbose=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_labels=2"):
        clf.fit(features, np.array([0, 5], np.int32), verbose=0)
    with pytest.raises(ValueError, match="no labels"):
        clf.fit(tf.data.Dataset.from_tensors(features), verbose=0)
    with pytest.raises(ValueError, match="raw strings"):
        clf.fit(np.array(["a", "b"]), np.array([0, 1]), verbose=0)


def op_ancestors(op) -> set:
    """Every op whose output or completion ``op`` waits for (data inputs and control inputs)."""
    seen, stack = set(), [op]
    while stack:
        current = stack.pop()
        for parent in [t.op for t in current.inputs] + list(current.control_inputs):
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return seen


def test_label_range_is_checked_before_the_loss_op_reads_the_labels(minilm_tokenizer):
    """The clear num_labels error must not depend on op scheduling: the cross-entropy kernel raises its
    own message for an out-of-range label, so it has to wait for the range asserts (a oneDNN CI machine
    once ran it first)."""
    clf = tiny(minilm_tokenizer, layers=1)
    features, labels = batch(minilm_tokenizer, ["a", "b"], [0, 1])
    step = tf.function(lambda x, y: clf.compute_loss_and_stats(clf._with_labels((x, y)), training=True)[0])
    graph = step.get_concrete_function(features, labels).graph
    losses = [op for op in graph.get_operations() if op.type == "SparseSoftmaxCrossEntropyWithLogits"]
    assert len(losses) == 1
    asserts = {op for op in op_ancestors(losses[0]) if op.type == "Assert"}
    assert len(asserts) == 2, asserts  # non-negative and < num_labels


class _NotTokens(keras.layers.Layer):
    """HF-like (has a config) but returns one vector per text: nothing to pool."""

    base_model_prefix = "none"
    config = AutoConfig.for_model("bert", hidden_size=8, num_hidden_layers=1, num_attention_heads=1)

    def call(self, input_ids, attention_mask=None, training=False):
        return (tf.zeros([tf.shape(input_ids)[0], 8]),)


def test_unsupported_encoders_and_settings_get_clear_errors(minilm_tokenizer):
    with pytest.raises(TypeError, match="Hugging Face TF model"):
        TextClassifier(keras.layers.Dense(3), minilm_tokenizer, 2)
    with pytest.raises(ValueError, match="not hidden states"):
        TextClassifier(_NotTokens(), minilm_tokenizer, 2)
    with pytest.raises(ValueError, match="pooling must be one of"):
        tiny(minilm_tokenizer, layers=1, pooling="max")
    base = tiny(minilm_tokenizer, layers=1).hf_model
    with pytest.raises(ValueError, match="pooling='hf' uses the architecture's"):
        TextClassifier(base, minilm_tokenizer, 2, pooling="hf")
    with pytest.raises(ValueError, match="head has 2 labels, not num_labels=3"):
        TextClassifier(tiny(minilm_tokenizer, layers=1, pooling="hf").hf_model, minilm_tokenizer, 3,
                       pooling="hf")
    with pytest.raises(ValueError, match="class_weight has 3 weights"):
        tiny(minilm_tokenizer, layers=1, class_weight=[1.0, 2.0, 3.0])
    albert = tiny(minilm_tokenizer, layers=1, model_type="albert", layerwise_lr_decay=0.9)
    with pytest.raises(ValueError, match="layerwise_lr_decay cannot place"):
        albert.compile(optimizer="adam")


# --- save_pretrained / from_pretrained ----------------------------------------------------------------


def trained_tiny(tokenizer, pooling):
    clf = tiny(tokenizer, num_labels=3, pooling=pooling, labels=["neg", "neutral", "pos"])
    clf.compile(optimizer=keras.optimizers.Adam(1e-2))
    texts, labels = ["bad", "okay I guess", "great", "awful", "fine", "superb"], [0, 1, 2, 0, 1, 2]
    clf.fit(labelled_text_dataset(texts, labels, tokenizer=tokenizer, batch_size=3), epochs=2, verbose=0)
    return clf


PROBE = ["great and superb!", "an awful, bad day", "okay"]


def test_hf_pooling_saves_a_transformers_sequence_classifier_with_equal_logits(minilm_tokenizer, tmp_path):
    clf = trained_tiny(minilm_tokenizer, "hf")
    clf.save_pretrained(str(tmp_path))
    enc = minilm_tokenizer(PROBE, padding=True, return_tensors="np")
    features = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    ours = clf(features).numpy()
    hf = TFAutoModelForSequenceClassification.from_pretrained(str(tmp_path))
    np.testing.assert_allclose(hf(**features).logits.numpy(), ours, rtol=1e-5, atol=1e-6)
    assert hf.config.id2label == {0: "neg", 1: "neutral", 2: "pos"}
    again = TextClassifier.from_pretrained(str(tmp_path))
    assert (again.pooling, again.num_labels, again.labels) == ("hf", 3, ["neg", "neutral", "pos"])
    np.testing.assert_allclose(again(features).numpy(), ours, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="classification head for 3 labels, but num_labels=4"):
        TextClassifier.from_pretrained(str(tmp_path), num_labels=4)
    os.remove(tmp_path / "keras_ssl_classifier.json")  # a checkpoint written by transformers alone
    plain = TextClassifier.from_pretrained(str(tmp_path))
    assert (plain.pooling, plain.num_labels) == ("hf", 3)
    np.testing.assert_allclose(plain(features).numpy(), ours, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="classification head for 3 labels, but num_labels=2"):
        TextClassifier.from_pretrained(str(tmp_path), num_labels=2)


def test_electra_head_round_trips_despite_transformers_misspelt_dropout(minilm_tokenizer, tmp_path):
    """transformers 4.54's TF ELECTRA head reads ``config.classifhidden_dropout_probier_dropout`` whenever
    ``classifier_dropout`` is set, so reloading a saved ELECTRA classifier (or any dropout=) failed."""
    clf = tiny(minilm_tokenizer, pooling="hf", model_type="electra", dropout=0.0)
    clf.save_pretrained(str(tmp_path))
    enc = minilm_tokenizer(PROBE, padding=True, return_tensors="np")
    features = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    again = TextClassifier.from_pretrained(str(tmp_path), dropout=0.3)
    np.testing.assert_allclose(again(features).numpy(), clf(features).numpy(), rtol=1e-5, atol=1e-6)
    rates = [layer.rate for layer in again.hf_model.classifier._flatten_layers(include_self=False)
             if isinstance(layer, keras.layers.Dropout)]
    assert rates == [0.3]
    again.save_pretrained(str(tmp_path / "again"))
    hf = TFAutoModelForSequenceClassification.from_pretrained(str(tmp_path / "again"))
    np.testing.assert_allclose(hf(**features).logits.numpy(), clf(features).numpy(), rtol=1e-5, atol=1e-6)


def test_mean_pooling_round_trips_and_says_transformers_cannot(minilm_tokenizer, tmp_path, caplog):
    clf = trained_tiny(minilm_tokenizer, "mean")
    with caplog.at_level(logging.WARNING, logger="keras_ssl"):
        clf.save_pretrained(str(tmp_path))
    assert "no transformers equivalent" in caplog.text
    again = TextClassifier.from_pretrained(str(tmp_path))
    assert (again.pooling, again.num_labels) == ("mean", 3)
    np.testing.assert_allclose(again.predict(PROBE), clf.predict(PROBE), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="saved with pooling='mean'"):
        TextClassifier.from_pretrained(str(tmp_path), pooling="cls")
    with pytest.raises(ValueError, match="num_labels=2"):
        TextClassifier.from_pretrained(str(tmp_path), num_labels=2)


def test_base_checkpoint_needs_num_labels(minilm_path):
    with pytest.raises(ValueError, match="pass num_labels"):
        TextClassifier.from_pretrained(minilm_path)
    with pytest.raises(FileNotFoundError):
        TextClassifier.from_pretrained("./no/such/dir", num_labels=2)


# --- export ----------------------------------------------------------------------------------------------


def test_export_serves_probabilities_and_labels_with_tensorflow_only(minilm_tokenizer, tmp_path):
    clf = trained_tiny(minilm_tokenizer, "mean")
    path = str(tmp_path / "export" / "1")
    export_saved_model(clf, path)
    texts = PROBE + ["", "Ünïcödé 中文 " * 30]
    out = serve(path, [{"name": "t", "signature": "serving_default", "inputs": ["text"]}],
                {"t__text": np.array(texts)}, tmp_path)
    expected = clf.predict(texts)
    np.testing.assert_allclose(out["t__probabilities"], expected, atol=1e-5)
    np.testing.assert_array_equal(out["t__label"], expected.argmax(1))


# --- distribution and layer-wise learning rates -----------------------------------------------------------


def test_two_replicas_match_one(minilm_path):
    proc = subprocess.run([sys.executable, REPLICAS, minilm_path, "mean", "hf"], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(line) for line in proc.stdout.strip().splitlines() if line.startswith("{")]
    assert [r["pooling"] for r in results] == ["mean", "hf"]
    for result in results:
        assert result["replicas"] == 2
        single, multi = result["loss"]
        assert abs(single - multi) <= 1e-5 * abs(single)
        assert result["accuracy"][0] == result["accuracy"][1]
        assert abs(result["macro_f1"][0] - result["macro_f1"][1]) <= 1e-6
        assert result["weights_moved"] > 1e-4
        assert result["max_weight_diff"] <= 1e-3 * result["weights_moved"], result


def one_step(clf, optimizer, features, labels):
    """The gradients at the start and the weight changes of one ``fit`` step, by variable name."""
    clf.compile(optimizer=optimizer)
    variables = clf.optimized_variables()
    with tf.GradientTape() as tape:
        views = {"features": features, "labels": labels, "sample_weight": None}
        loss, _ = clf.compute_loss_and_stats(views, training=True)
    gradients = [tf.convert_to_tensor(g).numpy() for g in tape.gradient(loss, variables)]
    before = [v.numpy() for v in variables]
    clf.fit(features, labels, batch_size=len(labels), epochs=1, verbose=0)
    return {v.name: (g, v.numpy() - b) for v, g, b in zip(variables, gradients, before)}


def expected_multiplier(name: str, decay: float, layers: int) -> float:
    if "classifier" in name:
        return 1.0
    if "embeddings" in name:
        return decay ** layers
    assert "layer_._" in name, name
    index = int(name.split("layer_._")[1].split("/")[0])
    return decay ** (layers - 1 - index)


def test_layerwise_lr_decay_scales_each_layers_learning_rate(minilm_tokenizer):
    features, labels = batch(minilm_tokenizer, ["a fine day", "a bad day", "so-so"], [0, 1, 2])
    decay, layers, lr = 0.5, 2, 0.1
    # SGD: the change is -lr * multiplier * gradient
    clf = tiny(minilm_tokenizer, num_labels=3, layers=layers, layerwise_lr_decay=decay)
    steps = one_step(clf, keras.optimizers.SGD(lr), features, labels)
    seen = set()
    for name, (gradient, change) in steps.items():
        m = expected_multiplier(name, decay, layers)
        seen.add(m)
        # atol: float32 rounding of w - lr * g for weights near 1 (LayerNorm gamma)
        np.testing.assert_allclose(change, -lr * m * gradient, rtol=1e-4, atol=2e-7, err_msg=name)
    assert seen == {1.0, 0.5, 0.25}
    # Adam, first step: -lr * m * m_hat / (sqrt(v_hat) + eps), with m_hat = g and v_hat = g**2
    clf = tiny(minilm_tokenizer, num_labels=3, layers=layers, layerwise_lr_decay=decay)
    eps = 1e-7
    steps = one_step(clf, keras.optimizers.Adam(1e-3, epsilon=eps), features, labels)
    for name, (gradient, change) in steps.items():
        g = gradient.astype(np.float64)
        m = expected_multiplier(name, decay, layers)
        alpha = 1e-3 * m * np.sqrt(1 - 0.999) / (1 - 0.9)
        expected = -alpha * (0.1 * g) / (np.sqrt(0.001 * g * g) + eps)
        np.testing.assert_allclose(change, expected, rtol=1e-3, atol=2e-7, err_msg=name)
