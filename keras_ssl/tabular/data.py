"""``tabular_dataset``: a table (DataFrame, CSV/Parquet files, NumPy) -> ``tf.data`` batches of raw columns.

Batches are ``(features, label)`` (or ``features`` without a label): ``features`` is a dict
column name -> ``[batch]`` tensor of **raw** values (float32 for numeric columns with NaN where
missing, tf.string for categorical columns with ``""`` where missing). The model does the rest
with its :class:`~keras_ssl.tabular.TabularPreprocessing` layer, so training, evaluation and a
served SavedModel all see the same raw columns.

Every source goes through the same pandas -> NumPy conversion, so a DataFrame, the CSV and the
Parquet file written from it, and NumPy arrays give identical batches. Files stream: Parquet is
read in record batches of ``chunk_rows`` rows (row group by row group), CSV with
``pandas.read_csv(chunksize=chunk_rows)``; nothing but a chunk (and the shuffle buffer) is in
memory. When fitting on files, the preprocessing sees only their first ``fit_rows`` rows
(default 100,000), a bounded sample: shuffle a file whose rows are sorted before fitting on it.
"""

from __future__ import annotations

import functools
import os
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from keras_ssl.backend import tf
from keras_ssl.tabular.preprocessing import (
    TabularPreprocessing,
    categorical_values,
    label_values,
    named_columns,
    numeric_values,
)

FIT_ROWS = 100_000
CHUNK_ROWS = 65_536
SHUFFLE_BUFFER = 100_000


def tabular_dataset(
    source,
    label: Optional[str] = None,
    numeric: Optional[Sequence[str]] = None,
    categorical: Optional[Sequence[str]] = None,
    preprocessing: Optional[TabularPreprocessing] = None,
    batch_size: int = 256,
    shuffle: Optional[bool] = None,
    seed: int = 0,
    drop_remainder: bool = False,
    numeric_transform: str = "standard",
    min_frequency: int = 1,
    fit_rows: int = FIT_ROWS,
    chunk_rows: int = CHUNK_ROWS,
    shuffle_buffer: int = SHUFFLE_BUFFER,
) -> Tuple[tf.data.Dataset, TabularPreprocessing]:
    """Batches of raw columns from ``source`` and the preprocessing fitted on it (or the one given).

    Args:
        source: a pandas DataFrame; a path or list of paths of CSV (``.csv``, ``.csv.gz``, ...) or
            Parquet (``.parquet``, ``.pq``, ``.parquet.brotli``, ...) files with the same columns; a
            dict column name -> 1-D NumPy array; or a 2-D NumPy array (columns named ``"0".."n-1"``).
        label: the label column (left out of the features) or None (batches are features only;
            a label column the preprocessing was fitted with is then ignored, e.g. for pretraining).
            String/bool/categorical labels become ids ``0..K-1`` in ``prep.label_names`` order;
            integer labels stay int64, float labels float32 (regression).
        numeric, categorical: columns of that kind; the other columns are inferred (numbers ->
            numeric; strings, bools, pandas categoricals -> categorical). Only when fitting.
        preprocessing: a fitted :class:`TabularPreprocessing` (validation/test data); None fits one
            on this source (the training table).
        batch_size: rows per batch. shuffle: shuffle the rows, anew each epoch, with ``seed``
            (default: only when fitting, i.e. for the training table). In-memory sources shuffle all
            rows; files shuffle within a ``shuffle_buffer``-row buffer, so shuffled batches of a
            file differ from those of the same table in memory (unshuffled ones are identical).
        drop_remainder: drop the last, smaller batch.
        numeric_transform, min_frequency: see :class:`TabularPreprocessing` (only when fitting).
        fit_rows: files only: fit on the first ``fit_rows`` rows. chunk_rows: rows read at a time.

    Returns:
        ``(dataset, preprocessing)``.
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be at least 1; got {batch_size}.")
    paths = _paths(source)
    if paths is None:
        frame = _frame(source)
        chunks = None
        sample = frame
    else:
        chunks = functools.partial(_file_chunks, paths, int(chunk_rows))
        sample = _head(chunks(), int(fit_rows) if preprocessing is None else 1)
    if len(sample) == 0:
        raise ValueError("The table has no rows.")
    prep = _preprocessing(sample, label, numeric, categorical, preprocessing, numeric_transform,
                          min_frequency)
    if label is not None and prep.label != label:
        raise ValueError(
            f"The preprocessing was fitted with label={prep.label!r}, not {label!r}. Fit it on a table with "
            f"that label (tabular_dataset(train, label={label!r})) so it knows the classes.")
    shuffle = shuffle if shuffle is not None else preprocessing is None
    if paths is None:  # in memory: shuffle row indices (no buffer to fill), gather whole batches
        columns = tf.nest.map_structure(tf.constant, _tensors(frame, prep, label))
        rows = tf.data.Dataset.range(len(frame))
        if shuffle:
            rows = rows.shuffle(len(frame), seed=seed, reshuffle_each_iteration=True)
        rows = rows.batch(int(batch_size), drop_remainder=drop_remainder)
        dataset = rows.map(lambda i: tf.nest.map_structure(lambda column: tf.gather(column, i), columns))
    else:
        _tensors(sample, prep, label)  # the first rows' errors (columns, values) now, not mid-stream

        def generate() -> Iterator:
            for chunk in chunks():
                yield _tensors(chunk, prep, label)

        dataset = tf.data.Dataset.from_generator(generate, output_signature=_signature(prep, label)).unbatch()
        if shuffle:
            dataset = dataset.shuffle(int(shuffle_buffer), seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.batch(int(batch_size), drop_remainder=drop_remainder)
    return dataset.prefetch(tf.data.AUTOTUNE), prep


def _preprocessing(sample, label, numeric, categorical, preprocessing, numeric_transform, min_frequency):
    if preprocessing is None:
        return TabularPreprocessing.fit(sample, numeric=numeric, categorical=categorical, label=label,
                                        numeric_transform=numeric_transform, min_frequency=min_frequency)
    if not isinstance(preprocessing, TabularPreprocessing):
        raise TypeError(f"preprocessing must be a fitted TabularPreprocessing (the second value "
                        f"tabular_dataset returns); got {type(preprocessing).__name__}.")
    for kind, listed, fitted in (("numeric", numeric, preprocessing.numeric),
                                 ("categorical", categorical, preprocessing.categorical)):
        if listed is not None and sorted(map(str, listed)) != sorted(fitted):
            raise ValueError(f"{kind}={list(listed)} disagrees with the preprocessing, fitted with {kind} "
                             f"columns {fitted}. Leave {kind}= out when passing preprocessing=.")
    return preprocessing


def _tensors(frame, prep: TabularPreprocessing, label: Optional[str]):
    """``features`` dict (or ``(features, labels)``) of NumPy arrays for the rows of ``frame``."""
    frame = named_columns(frame)
    expected = set(prep.columns) | ({prep.label} if prep.label is not None else set())
    missing = [c for c in prep.columns if c not in frame.columns]
    unknown = [c for c in frame.columns if c not in expected]
    if missing or unknown:
        raise ValueError(
            f"The table's columns do not match the preprocessing: missing {missing}, unknown {unknown} (drop "
            f"them). Expected the feature columns {prep.columns}" +
            (f" and the label {prep.label!r}." if prep.label is not None else "."))
    features = {c: numeric_values(frame[c], c) for c in prep.numeric}
    features.update({c: categorical_values(frame[c]) for c in prep.categorical})
    features = {c: features[c] for c in prep.columns}
    if label is None:
        return features
    if label not in frame.columns:
        raise ValueError(f"The label column {label!r} is not in the table.")
    return features, label_values(frame[label], prep)


def _signature(prep: TabularPreprocessing, label: Optional[str]):
    features = prep.raw_signature()
    if label is None:
        return features
    dtype = tf.float32 if prep.label_type == "float" else tf.int64
    return features, tf.TensorSpec([None], dtype)


# --- sources -------------------------------------------------------------------------------------
def _paths(source) -> Optional[List[str]]:
    if isinstance(source, (str, os.PathLike)):
        source = [source]
    if not isinstance(source, (list, tuple)) or not source \
            or not all(isinstance(p, (str, os.PathLike)) for p in source):
        return None
    paths = [os.fspath(p) for p in source]
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No such table file: {path!r}.")
        _file_kind(path)
    return paths


def _file_kind(path: str) -> str:
    name = os.path.basename(path).lower()
    if ".parquet" in name or name.endswith(".pq"):
        return "parquet"
    if ".csv" in name:
        return "csv"
    raise ValueError(f"Cannot tell the format of {path!r}: name CSV files *.csv (or .csv.gz) and Parquet "
                     "files *.parquet.")


def _file_chunks(paths: Sequence[str], chunk_rows: int) -> Iterator:
    """DataFrames of at most ``chunk_rows`` rows, file after file."""
    import pandas as pd

    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1; got {chunk_rows}.")
    for path in paths:
        if _file_kind(path) == "parquet":
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()
        else:
            yield from pd.read_csv(path, chunksize=chunk_rows)


def _head(chunks: Iterator, rows: int):
    """The first ``rows`` rows of a stream of DataFrames, as one DataFrame."""
    import pandas as pd

    if rows < 1:
        raise ValueError(f"fit_rows must be at least 1; got {rows}.")
    taken, count = [], 0
    for chunk in chunks:
        taken.append(chunk)
        count += len(chunk)
        if count >= rows:
            break
    if not taken:
        return pd.DataFrame()
    return pd.concat(taken, ignore_index=True).iloc[:rows]


def _frame(source):
    """``source`` (DataFrame, dict of 1-D arrays, 2-D array) as a pandas DataFrame."""
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        return named_columns(source)
    if isinstance(source, dict):
        columns: Dict[str, np.ndarray] = {}
        for name, values in source.items():
            values = np.asarray(values)
            if values.ndim != 1:
                raise ValueError(f"Column {name!r} has shape {values.shape}; each column must be 1-D [rows].")
            columns[str(name)] = values
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"The columns have different lengths {sorted(lengths)}.")
        return pd.DataFrame(columns)
    if isinstance(source, np.ndarray):
        if source.ndim != 2:
            raise ValueError(f"A NumPy table must be 2-D [rows, columns]; got shape {source.shape}.")
        return pd.DataFrame(source, columns=[str(i) for i in range(source.shape[1])])
    raise TypeError(
        f"tabular_dataset reads a pandas DataFrame, CSV/Parquet path(s), a dict of NumPy arrays or a 2-D "
        f"NumPy array; got {type(source).__name__}.")
