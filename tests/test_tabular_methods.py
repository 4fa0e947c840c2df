"""SCARF and VIME: corruption statistics, losses against NumPy, learning, replicas, precision, resume.

The encoder is a small ``tabular.mlp_encoder`` on ``TabularPreprocessing`` fitted to a synthetic table
with structure (correlated columns, noise columns, missing values).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from numerics import STEP_RTOL, assert_close_to_scale, close
from scipy import stats

from keras_ssl import tabular
from keras_ssl.backend import keras, tf
from keras_ssl.tabular.methods import scarf_info_nce, vime_losses

REPLICAS_SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "tabular_replicas.py")


# --- a synthetic table with structure -------------------------------------------------------------
NUMERIC, CATEGORICAL = ["a", "b", "c", "d"], ["size", "colour"]
VOCABULARIES = [["small", "medium", "large"], ["red", "green", "blue", "grey"]]


def table(n: int, seed: int = 0, missing_rate: float = 0.05) -> dict:
    """``a`` latent; ``b``, ``c`` and ``size`` follow it, ``d`` and ``colour`` are noise; some NaN."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = 2.0 * a + 0.1 * rng.normal(size=n)
    c = np.exp(0.5 * a) + 0.05 * rng.normal(size=n)
    d = rng.exponential(size=n)
    columns = {"a": a, "b": b, "c": c, "d": d}
    for name in ("b", "d"):
        columns[name] = np.where(rng.random(n) < missing_rate, np.nan, columns[name])
    size = np.array(VOCABULARIES[0])[np.digitize(a, [-0.5, 0.5])]
    colour = np.array(VOCABULARIES[1])[rng.integers(0, 4, n)]
    raw = {k: v.astype(np.float32) for k, v in columns.items()}
    raw.update(size=size.astype(object), colour=colour.astype(object))
    return raw


def fitted_preprocessing():
    return tabular.TabularPreprocessing.fit(pd.DataFrame(table(256, seed=99)))


def tiny_encoder(hidden_units: int = 16, depth: int = 2, seed: int = 0, prep=None):
    keras.utils.set_random_seed(seed)
    return tabular.mlp_encoder(prep or fitted_preprocessing(), hidden_units=hidden_units, depth=depth)


def dataset(n: int, batch: int, seed: int = 0, labels: bool = False):
    raw = table(n, seed)
    items = (raw, np.zeros(n, np.int32)) if labels else raw
    return tf.data.Dataset.from_tensor_slices(items).batch(batch, drop_remainder=True)


def features_of(encoder, raw) -> dict:
    return {k: v.numpy() for k, v in encoder.preprocessing(raw).items()}


@pytest.fixture(scope="module")
def encoder():
    return tiny_encoder()


@pytest.fixture(scope="module")
def big_batch(encoder):
    return features_of(encoder, table(2000, seed=1))


def _feature_matrix(f: dict) -> np.ndarray:
    """``[B, M]`` float view of a preprocessed dict (numeric value + 10 * missing flag, then ids)."""
    return np.concatenate([f["numeric"] + 10.0 * f["missing"], f["categorical"].astype(np.float64)], axis=1)


# --- SCARF corruption -------------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [0.2, 0.5, 0.6, 1.0])
def test_scarf_corrupts_exactly_floor_rate_times_m_features_per_row(big_batch, rate):
    corrupted, mask = tabular.scarf_corruption(big_batch, rate, seed=3, step=7)
    mask = mask.numpy()
    m = mask.shape[1]
    assert m == 6
    np.testing.assert_array_equal(mask.sum(axis=1), int(rate * m))  # exactly, in every row
    # The chosen features are uniform: each is chosen in a fraction floor(c M) / M of the rows.
    expected = int(rate * m) / m
    n = mask.shape[0]
    bound = 5 * np.sqrt(expected * (1 - expected) / n) + 1e-9
    assert np.all(np.abs(mask.mean(axis=0) - expected) <= bound), mask.mean(axis=0)
    # Unselected features are untouched.
    before, after = _feature_matrix(big_batch), _feature_matrix({k: v.numpy() for k, v in corrupted.items()})
    np.testing.assert_array_equal(after[~mask], before[~mask])


def test_scarf_replacements_come_from_the_same_column_of_other_rows(big_batch):
    corrupted, mask = tabular.scarf_corruption(big_batch, 0.6, seed=0, step=1)
    before = _feature_matrix(big_batch)
    after = _feature_matrix({k: v.numpy() for k, v in corrupted.items()})
    mask = mask.numpy()
    for j in range(before.shape[1]):
        column = set(before[:, j].tolist())
        assert set(after[mask[:, j], j].tolist()) <= column  # the column's own batch values
        # Never from another column: numeric columns differ in scale, so most values would be foreign.
        other = set(before[:, (j + 1) % 4].tolist()) if j < 4 else set()
        assert not (set(after[mask[:, j], j].tolist()) & other - column)
    # The continuous column 'a' has distinct values: a replacement is another row's value, never its own.
    a_changed = after[mask[:, 0], 0] != before[mask[:, 0], 0]
    assert a_changed.all()


def test_scarf_keeps_the_marginal_of_a_corrupted_column(big_batch):
    """Replacement values follow the column's empirical marginal, not Uniform(min, max)."""
    corrupted, mask = tabular.scarf_corruption(big_batch, 0.6, seed=5, step=2)
    d = big_batch["numeric"][:, 3]  # exponential: far from uniform
    d_present = big_batch["missing"][:, 3] == 0
    new_d = corrupted["numeric"].numpy()[:, 3]
    new_present = corrupted["missing"].numpy()[:, 3] == 0
    replaced = mask.numpy()[:, 3] & new_present
    ks = stats.ks_2samp(new_d[replaced], d[d_present])
    assert ks.pvalue > 1e-3, ks
    # The test has power: uniform draws between min and max (the ported-code bug) are rejected.
    uniform = np.random.default_rng(0).uniform(d[d_present].min(), d[d_present].max(), replaced.sum())
    assert stats.ks_2samp(uniform, d[d_present]).pvalue < 1e-10
    # Missing values are resampled too, at the column's rate.
    missing_rate = 1 - d_present.mean()
    assert abs((1 - new_present[mask.numpy()[:, 3]].mean()) - missing_rate) < 0.04
    # Categorical marginal: chi-square of the replaced ids against the column's frequencies.
    ids = big_batch["categorical"][:, 0]
    new_ids = corrupted["categorical"].numpy()[:, 0][mask.numpy()[:, 4]]
    freq = np.bincount(ids, minlength=4)[1:] / len(ids)
    counts = np.bincount(new_ids, minlength=4)[1:]
    assert stats.chisquare(counts, freq * counts.sum()).pvalue > 1e-3


def test_scarf_rows_draw_the_same_corruption_alone_or_split_across_replicas(big_batch):
    """The draws depend on the global row index, not on which slice of the batch a call sees."""
    whole, whole_mask = tabular.scarf_corruption(big_batch, 0.6, seed=2, step=4)
    half = {k: v[1000:] for k, v in big_batch.items()}
    part, part_mask = tabular.scarf_corruption(half, 0.6, seed=2, step=4, row_ids=tf.range(1000, 2000),
                                               pool=big_batch)
    np.testing.assert_array_equal(part_mask.numpy(), whole_mask.numpy()[1000:])
    for key in whole:
        np.testing.assert_array_equal(part[key].numpy(), whole[key].numpy()[1000:])
    again, _ = tabular.scarf_corruption(big_batch, 0.6, seed=2, step=4)
    fresh, fresh_mask = tabular.scarf_corruption(big_batch, 0.6, seed=2, step=5)
    np.testing.assert_array_equal(again["numeric"].numpy(), whole["numeric"].numpy())
    assert (fresh_mask.numpy() != whole_mask.numpy()).mean() > 0.3  # a new step: new draws


# --- VIME corruption --------------------------------------------------------------------------------
def _indexed_batch(n: int, mn: int = 3, mc: int = 3) -> dict:
    """Every cell distinct and naming its row: numeric ``row + 0.001 * col``, ids ``row * 10 + col``."""
    rows = np.arange(n)[:, None]
    return {"numeric": (rows + 0.001 * np.arange(mn)).astype(np.float32),
            "missing": np.zeros((n, mn), np.float32),
            "categorical": (rows * 10 + np.arange(mc)).astype(np.int32)}


def test_vime_mask_rate_and_changed_target(big_batch):
    corrupted, mask, changed = tabular.vime_corruption(big_batch, 0.3, seed=1, step=3)
    mask, changed = mask.numpy(), changed.numpy()
    n = mask.size
    assert abs(mask.mean() - 0.3) <= 5 * np.sqrt(0.3 * 0.7 / n)
    assert np.all(np.abs(mask.mean(axis=0) - 0.3) <= 5 * np.sqrt(0.3 * 0.7 / mask.shape[0]))
    before = _feature_matrix(big_batch)
    after = _feature_matrix({k: v.numpy() for k, v in corrupted.items()})
    np.testing.assert_array_equal(changed, (before != after).astype(np.float32))  # 1[x != x~]
    assert np.all(changed <= mask)  # only masked cells change
    # The target is not the mask: a categorical column with 3 values keeps its value in ~1/3 of the swaps.
    ids = big_batch["categorical"][:, 0]
    same = np.sum((np.bincount(ids) / len(ids)) ** 2)
    kept = 1 - changed[mask[:, 4], 4].mean()
    assert abs(kept - same) < 0.06, (kept, same)


def test_vime_columns_use_independent_permutations():
    batch = _indexed_batch(1000)
    corrupted, mask, changed = tabular.vime_corruption(batch, 0.999, seed=4, step=0)
    donors = np.concatenate([np.floor(corrupted["numeric"].numpy()).astype(int),
                             corrupted["categorical"].numpy() // 10], axis=1)  # [N, M] donor rows
    mask = mask.numpy()
    for j in range(donors.shape[1]):
        column = donors[mask[:, j], j]
        assert len(np.unique(column)) == len(column)  # a permutation: no row donates twice
        assert stats.spearmanr(np.arange(1000)[mask[:, j]], column).pvalue > 1e-4  # not the identity
    agreements = [(donors[:, i] == donors[:, j]).sum() for i in range(6) for j in range(i + 1, 6)]
    # Two independent permutations of 1000 rows agree in Poisson(1) places; a shared permutation in all.
    assert max(agreements) <= 8, agreements
    assert changed.numpy().mean() > 0.99


def test_vime_split_batch_draws_like_the_whole():
    batch = _indexed_batch(40)
    whole, whole_mask, whole_changed = tabular.vime_corruption(batch, 0.3, seed=9, step=2)
    first = {k: v[:25] for k, v in batch.items()}
    part, part_mask, part_changed = tabular.vime_corruption(first, 0.3, seed=9, step=2, row_ids=tf.range(25),
                                                            pool=batch)
    np.testing.assert_array_equal(part_mask.numpy(), whole_mask.numpy()[:25])
    np.testing.assert_array_equal(part_changed.numpy(), whole_changed.numpy()[:25])
    np.testing.assert_array_equal(part["categorical"].numpy(), whole["categorical"].numpy()[:25])


# --- losses against NumPy ---------------------------------------------------------------------------
def _log_softmax(x, axis=-1):
    x = x - x.max(axis=axis, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=axis, keepdims=True))


@pytest.mark.parametrize("temperature", [1.0, 0.3])
def test_scarf_info_nce_matches_numpy(temperature):
    rng = np.random.default_rng(0)
    a, p = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    p[:3] = a[:3] + 0.1 * p[:3]  # the first three anchors find their positives
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    pn = p / np.linalg.norm(p, axis=1, keepdims=True)
    logits = an @ pn.T / temperature
    expected = -np.mean(np.diag(_log_softmax(logits)))
    hits = int(np.sum(logits.argmax(axis=1) == np.arange(6)))
    loss, acc = scarf_info_nce(a.astype(np.float32), p.astype(np.float32), temperature)
    assert_close_to_scale(loss.numpy(), expected, 1e-5, "InfoNCE")
    assert round(float(acc) * 6) == hits >= 3


def test_vime_losses_match_numpy_on_a_hand_built_batch():
    mask_logits = np.array([[2.0, -1.0, 0.5], [-0.5, 1.5, -2.0]], np.float32)
    changed = np.array([[1, 0, 0], [0, 1, 1]], np.float32)
    numeric_pred = np.array([[0.5, 1.0], [-1.0, 2.0]], np.float32)
    numeric = np.array([[1.0, 0.0], [-1.5, 9.0]], np.float32)
    missing = np.array([[0, 0], [0, 1]], np.float32)  # the 9.0 is an imputed value: not scored
    cat_logits = [np.array([[1.0, 2.0, 0.0], [0.0, 0.0, 3.0]], np.float32)]
    categorical = np.array([[1], [0]], np.int32)
    terms = vime_losses(mask_logits, changed, numeric_pred, numeric, missing, cat_logits, categorical)
    sigmoid = 1 / (1 + np.exp(-mask_logits))
    bce = -np.mean(changed * np.log(sigmoid) + (1 - changed) * np.log(1 - sigmoid))
    mse = (0.5 ** 2 + 1.0 ** 2 + 0.5 ** 2) / 3
    ce = -np.mean(_log_softmax(cat_logits[0])[[0, 1], [1, 0]])
    expected = {"mask_bce": bce, "numeric_mse": mse, "categorical_ce": ce,
                "reconstruction": (2 * mse + ce) / 3,
                "mask_accuracy": np.mean((mask_logits > 0) == changed), "categorical_accuracy": 0.5}
    for name, value in expected.items():
        assert close(float(terms[name]), value, 1e-5), (name, float(terms[name]), value)


# --- the methods --------------------------------------------------------------------------------------
def _fit(model, data, epochs, lr=1e-3, **compile_kwargs):
    model.compile(optimizer=keras.optimizers.Adam(lr), **compile_kwargs)
    return model.fit(data, epochs=epochs, verbose=0).history


def test_scarf_learns_and_serves_embeddings():
    """Paper defaults (rate 0.6, temperature 1.0): held-out contrastive accuracy (evaluation draws a
    fixed corruption) rises well above its value for the random encoder; chance is 1/64."""
    encoder = tiny_encoder(32, 2)
    model = tabular.SCARF(encoder, projection_units=32, seed=1)
    assert model.encoder is encoder
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    held_out = dataset(512, 64, seed=5)
    before = model.evaluate(held_out, verbose=0, return_dict=True)
    history = model.fit(dataset(512, 64, labels=True), epochs=8, verbose=0).history
    after = model.evaluate(held_out, verbose=0, return_dict=True)
    print(f"SCARF held-out contrastive_accuracy {before['contrastive_accuracy']:.3f} -> "
          f"{after['contrastive_accuracy']:.3f}, loss {before['loss']:.3f} -> {after['loss']:.3f}; "
          f"training accuracy by epoch {np.round(history['contrastive_accuracy'], 3)}")
    assert after["contrastive_accuracy"] > before["contrastive_accuracy"] + 0.04, (before, after)
    assert after["loss"] < before["loss"] - 0.1
    assert all(np.isfinite(history["loss"])) and after["embedding_std"] > 0.01
    raw = table(8, seed=3)
    embedding = model(raw)
    assert embedding.shape == (8, encoder.feature_dim)
    assert_close_to_scale(embedding.numpy(), encoder(raw).numpy(), 1e-6, "model(raw) is the encoder")
    assert int(model.corruption_step.numpy()) == 8 * 8  # one step of the counter per training batch


def test_vime_mask_accuracy_beats_the_trivial_rate():
    encoder = tiny_encoder(64, 3)
    model = tabular.VIME(encoder, alpha=0.3, seed=1)  # alpha from the paper's grid (0.1 - 5)
    history = _fit(model, dataset(1024, 32), epochs=8, lr=3e-3)
    # The trivial predictor says "unchanged" everywhere: its accuracy is the unchanged fraction.
    feats = features_of(encoder, table(512))
    _, _, changed = tabular.vime_corruption(feats, 0.3, seed=0, step=0, pool=feats)
    trivial = 1 - float(changed.numpy().mean())
    accuracy = history["mask_accuracy"]
    print(f"VIME mask_accuracy by epoch {np.round(accuracy, 3)}, trivial {trivial:.3f}, numeric_mse "
          f"{np.round(history['numeric_mse'], 3)}, categorical_accuracy "
          f"{np.round(history['categorical_accuracy'], 3)}")
    assert accuracy[-1] > trivial + 0.04, (accuracy, trivial)
    assert history["numeric_mse"][-1] < history["numeric_mse"][0]
    assert set(history) == {"loss", "mask_accuracy", "numeric_mse", "categorical_accuracy"}


def test_two_replicas_match_one():
    out = subprocess.run([sys.executable, REPLICAS_SCRIPT], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    results = {r["method"]: r for r in (json.loads(line) for line in out.stdout.splitlines()
                                        if line.startswith("{"))}
    print(json.dumps(results))
    assert set(results) == {"SCARF", "VIME"}
    for r in results.values():
        assert r["weights_moved"] > 1e-4, r
        assert close(*r["loss"], 1e-4), r
        assert r["relative_step_diff"] <= STEP_RTOL, r
        assert r["corruption_step"] == [1, 1], r


# XLA compilation dominates on a busy 2-core CPU (~25 s a method): SCARF covers jit by default, VIME's
# jit case (which passes) is marked slow, as for the vision methods (deselect with -m "not slow").
PRECISION_CASES = [
    pytest.param(method, mode, marks=[pytest.mark.slow] if (method, mode) == ("VIME", "jit") else [])
    for method in ("SCARF", "VIME") for mode in ("mixed_float16", "mixed_bfloat16", "jit")
]


@pytest.mark.parametrize("method,policy", PRECISION_CASES, indirect=["policy"])
def test_trains_under_mixed_precision_and_jit(policy, method):
    encoder = tiny_encoder()
    kwargs = dict(projection_units=8) if method == "SCARF" else {}
    model = getattr(tabular, method)(encoder, **kwargs)
    if policy != "jit":
        assert encoder.body.layers[-1].compute_dtype == policy.split("_")[1]
    model.compile(optimizer=keras.optimizers.SGD(0.05), jit_compile=policy == "jit")
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(dataset(32, 16), epochs=1, verbose=0).history
    assert all(np.isfinite(history["loss"])), history
    moved = max(float(np.max(np.abs(w.numpy() - b))) for w, b in zip(model.trainable_weights, before))
    assert moved > 0
    assert int(model.corruption_step.numpy()) == 2


class _CrashAfterEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            raise RuntimeError("simulated crash")


# Both methods share the counter (TabularSSLModel); VIME's case (which passes) is marked slow.
@pytest.mark.parametrize("method", ["SCARF", pytest.param("VIME", marks=pytest.mark.slow)])
def test_resume_after_a_crash_matches_the_uninterrupted_run(tmp_path, method):
    data = dataset(64, 16)

    def build():
        keras.backend.clear_session()
        encoder = tiny_encoder(seed=4)
        kwargs = dict(projection_units=8) if method == "SCARF" else {}
        model = getattr(tabular, method)(encoder, seed=3, **kwargs)
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        return model

    reference = build()
    reference.fit(data, epochs=2, verbose=0)
    reference_state = [v.numpy() for v in reference.weights + reference.optimizer.variables()]
    backup = str(tmp_path / "backup")
    crashed = build()
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashed.fit(data, epochs=2, verbose=0,
                    callbacks=[keras.callbacks.BackupAndRestore(backup), _CrashAfterEpoch()])
    assert int(crashed.corruption_step.numpy()) == 4
    resumed = build()
    resumed.fit(data, epochs=2, verbose=0, callbacks=[keras.callbacks.BackupAndRestore(backup)])
    resumed_state = [v.numpy() for v in resumed.weights + resumed.optimizer.variables()]
    assert len(resumed_state) == len(reference_state)
    assert int(resumed.corruption_step.numpy()) == int(reference.corruption_step.numpy()) == 8
    worst = max(float(np.max(np.abs(a - b), initial=0.0)) for a, b in zip(reference_state, resumed_state))
    scale = max(float(np.max(np.abs(a), initial=0.0)) for a in reference_state)
    print(f"{method} resume: max |resumed - uninterrupted| = {worst:.3g} (largest value {scale:.3g})")
    assert worst <= 1e-6 * scale  # measured: 0 (bit for bit)


# --- bad input ------------------------------------------------------------------------------------
def test_encoder_that_is_not_a_tabular_encoder_is_refused(encoder):
    plain = keras.Sequential([keras.layers.Dense(4)])
    with pytest.raises(TypeError, match="TabularEncoder.*without .preprocessing and .body.*mlp_encoder"):
        tabular.SCARF(plain)
    with pytest.raises(TypeError, match="TabularEncoder"):
        tabular.VIME(encoder.body)


def test_a_global_batch_of_one_row_is_refused(encoder):
    model = tabular.SCARF(encoder, projection_units=8)
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="at least 2 rows in a global batch.*drop_remainder"):
        model.fit(dataset(4, 1), epochs=1, verbose=0)
    with pytest.raises(TypeError, match="raw columns, a dict"):
        model.fit(tf.data.Dataset.from_tensor_slices(np.zeros((4, 3), np.float32)).batch(2), verbose=0)


def test_fewer_than_two_feature_columns_is_refused():
    one_column = tiny_encoder(prep=tabular.TabularPreprocessing.fit(pd.DataFrame({"a": [1.0, 2.0, 3.0]})))
    for method in ("SCARF", "VIME"):
        with pytest.raises(ValueError, match="at least 2 feature columns"):
            getattr(tabular, method)(one_column)
    single = {"numeric": np.zeros((4, 1), np.float32), "missing": np.zeros((4, 1), np.float32),
              "categorical": np.zeros((4, 0), np.int32)}
    with pytest.raises(ValueError, match="at least 2 feature columns"):
        tabular.scarf_corruption(single)


def test_bad_rates_are_refused(encoder, big_batch):
    with pytest.raises(ValueError, match=r"corruption_rate=0.1 corrupts floor\(0.1 \* 6\) = 0"):
        tabular.SCARF(encoder, corruption_rate=0.1)
    with pytest.raises(ValueError, match=r"corruption_rate=0.1 corrupts"):
        tabular.scarf_corruption(big_batch, 0.1)
    with pytest.raises(ValueError, match=r"corruption_rate must be in \(0, 1\]"):
        tabular.SCARF(encoder, corruption_rate=1.5)
    with pytest.raises(ValueError, match=r"p_m must be in \(0, 1\)"):
        tabular.VIME(encoder, p_m=0.0)
    with pytest.raises(ValueError, match=r"p_m must be in \(0, 1\)"):
        tabular.vime_corruption(big_batch, 1.0)
    with pytest.raises(ValueError, match="temperature must be positive"):
        tabular.SCARF(encoder, temperature=0.0)
    with pytest.raises(TypeError, match="preprocessed dict with keys"):
        tabular.scarf_corruption({"numeric": big_batch["numeric"]})
