"""``TabularPreprocessing``: a Keras layer from raw table columns to model-ready tensors.

Raw columns in (a dict name -> ``[batch]`` tensor: float32 for numeric columns, NaN or ±inf
missing; tf.string for categorical columns, ``""`` missing), three tensors out::

    {"numeric":     float32 [batch, n_numeric],      # standardised (or quantile -> normal)
     "missing":     float32 [batch, n_numeric],      # 1.0 where the raw value was missing
     "categorical": int32   [batch, n_categorical]}  # vocabulary ids, 0 = out-of-vocabulary/missing

A kind that the table lacks gives a zero-width tensor. The statistics are fitted once in NumPy
(:meth:`TabularPreprocessing.fit`, on the training table only) and live in the layer's config and
in its (non-trainable) weights, so the layer serialises with ``get_config``/``from_config`` and a
SavedModel that contains it preprocesses raw columns by itself.

Numeric columns: the missing values are replaced by the *training* mean, then
``numeric_transform="standard"`` gives ``(x - mean) / std`` (a constant column, ``std == 0``,
gives exactly 0), ``"quantile"`` maps ``x`` through the ``num_quantiles`` fitted quantiles to its
empirical CDF (linear between quantiles, ties averaged, values at or beyond the smallest/largest
quantile 0/1: scikit-learn's ``QuantileTransformer``) and then to a standard normal (CDF clipped to
``[1e-7, 1 - 1e-7]``: outputs within about ±5.2; a constant column gives 0).
Categorical columns: the values seen at least ``min_frequency`` times get ids ``1..V`` (most
frequent first, ties alphabetical); every other value, and ``""`` (missing), gets 0.
"""

from __future__ import annotations

import re
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from keras_ssl.backend import keras, tf

NUMERIC_TRANSFORMS = ("standard", "quantile")
_CDF_BOUND = 1e-7  # scikit-learn's QuantileTransformer bound: ndtri(1e-7) ~ -5.2


def check_columns(raw, expected: Sequence[str], where: str = "TabularPreprocessing") -> None:
    """``ValueError`` naming missing and unknown columns of ``raw`` (a dict name -> tensor)."""
    if not isinstance(raw, Mapping):
        raise TypeError(f"{where} takes a dict column name -> tensor [batch]; got {type(raw).__name__}.")
    missing = [c for c in expected if c not in raw]
    unknown = sorted(str(c) for c in raw if c not in set(expected))
    if missing or unknown:
        problems = []
        if missing:
            problems.append(f"missing column(s) {missing}")
        if unknown:
            problems.append(f"unknown column(s) {unknown} (drop them)")
        raise ValueError(f"{where} got {' and '.join(problems)}; it expects exactly the columns "
                         f"{list(expected)} it was fitted on.")


def input_name(column: str) -> str:
    """``column`` as the name of a model input and of a served signature argument: characters other than
    ASCII letters and digits become ``_``, and a name that does not start with a letter gets ``col_``
    in front (``capital-gain`` -> ``capital_gain``, ``4`` -> ``col_4``). These are valid Python
    parameter names, which ``tf.function`` signatures require (it would rename others itself)."""
    name = re.sub(r"[^A-Za-z0-9]", "_", str(column))
    return name if re.match(r"[A-Za-z]", name) else f"col_{name}"


def default_embedding_dim(vocabulary_size: int) -> int:
    """``min(16, ceil(1.6 * vocabulary_size ** 0.56))`` (fastai's rule of thumb, capped at 16)."""
    return int(min(16, np.ceil(1.6 * float(vocabulary_size) ** 0.56)))


# --- table columns in pandas: one conversion for fitting, datasets and every source -------------
def named_columns(frame):
    """``frame`` (a pandas DataFrame) with ``str`` column names; duplicate names are an error."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"Expected a pandas DataFrame; got {type(frame).__name__}.")
    names = [str(c) for c in frame.columns]
    duplicated = sorted({c for c in names if names.count(c) > 1})
    if duplicated:
        raise ValueError(f"The table has duplicated column names {duplicated}; rename them.")
    if names != list(frame.columns):
        frame = frame.set_axis(names, axis=1)
    return frame


def _infer_kind(series, column: str) -> str:
    import pandas as pd

    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "categorical"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(dtype) \
            or pd.api.types.is_string_dtype(dtype):
        return "categorical"
    raise TypeError(f"Column {column!r} has dtype {dtype}, which is neither numeric nor categorical. Convert "
                    "it (e.g. a date to a number of days) or drop it.")


def column_kinds(frame, numeric: Optional[Sequence[str]], categorical: Optional[Sequence[str]],
                 label: Optional[str]) -> Dict[str, str]:
    """``{column: "numeric" | "categorical"}`` for the feature columns of ``frame``, in table order.

    Columns listed in ``numeric``/``categorical`` get that kind; the others are inferred.
    """
    lists = {"numeric": numeric, "categorical": categorical}
    for kind, listed in lists.items():
        if isinstance(listed, str):
            raise TypeError(f"{kind}= takes a list of column names; got the string {listed!r}: use "
                            f"[{listed!r}].")
    numeric, categorical = [str(c) for c in numeric or []], [str(c) for c in categorical or []]
    both = sorted(set(numeric) & set(categorical))
    if both:
        raise ValueError(f"Column(s) {both} are listed both in numeric= and categorical=; pick one.")
    if label is not None:
        if label in numeric or label in categorical:
            raise ValueError(f"The label column {label!r} is listed among numeric=/categorical=; remove it "
                             "from the feature lists (the label is never a feature).")
        if label not in frame.columns:
            raise ValueError(f"The label column {label!r} is not in the table; its columns are "
                             f"{list(frame.columns)}.")
    unknown = [c for c in numeric + categorical if c not in frame.columns]
    if unknown:
        raise ValueError(f"Column(s) {unknown} listed in numeric=/categorical= are not in the table; its "
                         f"columns are {list(frame.columns)}.")
    kinds = {}
    for column in frame.columns:
        if column == label:
            continue
        if column in numeric:
            kinds[column] = "numeric"
        elif column in categorical:
            kinds[column] = "categorical"
        else:
            kinds[column] = _infer_kind(frame[column], column)
    if not kinds:
        raise ValueError("The table has no feature columns (only the label).")
    return kinds


def numeric_values(series, column: str) -> np.ndarray:
    """float32 ``[n]``, NaN where missing; non-numeric values raise ``ValueError`` naming one."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(series.dtype) and not isinstance(series.dtype, pd.CategoricalDtype):
        return series.to_numpy(dtype=np.float32, na_value=np.nan)
    values = series.astype(object)
    converted = pd.to_numeric(values, errors="coerce")
    blank = values.isna() | values.map(lambda v: isinstance(v, str) and not v.strip())
    bad = converted.isna() & ~blank
    if bad.any():
        raise ValueError(f"Numeric column {column!r} holds non-numeric values, e.g. {values[bad].iloc[0]!r} "
                         f"({int(bad.sum())} value(s)). Fix them, or list the column in categorical=[...].")
    return converted.to_numpy(dtype=np.float32, na_value=np.nan)


def categorical_values(series) -> np.ndarray:
    """object ``[n]`` of ``str``, ``""`` where missing (integral floats written as integers)."""
    import pandas as pd

    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(object)
    if pd.api.types.is_float_dtype(series.dtype):
        present = series.dropna()
        if np.all(np.mod(present.to_numpy(np.float64), 1.0) == 0.0):
            series = series.astype("Int64")
    missing = series.isna().to_numpy()
    return series.astype(object).where(~missing, "").astype(str).to_numpy(dtype=object)


def label_kind(series, label: str):
    """``("categorical", sorted names)``, ``("integer", None)`` or ``("float", None)``."""
    import pandas as pd

    _check_label_present(series, label)
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype) \
            or isinstance(dtype, pd.CategoricalDtype):
        return "categorical", sorted({str(v) for v in series.astype(object)})
    return ("integer" if pd.api.types.is_integer_dtype(dtype) else "float"), None


def label_values(series, prep: TabularPreprocessing) -> np.ndarray:
    """int64 class ids (``label_names`` order), int64 integers or float32 values ``[n]``."""
    _check_label_present(series, prep.label)
    if prep.label_type == "categorical":
        index = {name: i for i, name in enumerate(prep.label_names)}
        names = series.astype(object).astype(str)
        unknown = sorted(set(names) - set(index))
        if unknown:
            raise ValueError(f"Label {prep.label!r} has value(s) {unknown[:5]} unseen when the preprocessing "
                             f"was fitted (classes {prep.label_names}); drop those rows or refit.")
        return names.map(index).to_numpy(dtype=np.int64)
    values = series.to_numpy()
    if values.dtype.kind not in "iuf":
        raise ValueError(f"Label {prep.label!r} was numeric ({prep.label_type}) when fitted; got "
                         f"{values.dtype} values here.")
    if prep.label_type == "integer":
        if values.dtype.kind == "f" and np.any(np.mod(values, 1.0) != 0.0):
            raise ValueError(f"Label {prep.label!r} held integers when fitted; got fractional values here.")
        return values.astype(np.int64)
    return values.astype(np.float32)


def _check_label_present(series, label: str) -> None:
    missing = int(series.isna().sum())
    if missing:
        raise ValueError(f"The label column {label!r} is missing in {missing} row(s); drop them first, e.g. "
                         f"df.dropna(subset=[{label!r}]).")


@keras.utils.register_keras_serializable(package="keras_ssl")
class TabularPreprocessing(keras.layers.Layer):
    """Raw columns ``{name: [batch]}`` -> ``{"numeric", "missing", "categorical"}`` (module docstring).

    Build it with :meth:`fit` (or :func:`keras_ssl.tabular.tabular_dataset`), not by hand: the
    constructor takes the fitted statistics.

    Attributes: ``numeric``, ``categorical`` (column names), ``columns`` (all feature names, table
    order), ``vocabulary_sizes`` (per categorical column, OOV bucket included), ``vocabularies``,
    ``means``, ``stds``, ``label`` (name or None), ``label_names`` (class names or None),
    ``label_type`` (``"categorical"``, ``"integer"``, ``"float"`` or None).
    """

    def __init__(self, columns: Sequence[str], numeric: Sequence[str], categorical: Sequence[str],
                 means: Sequence[float], stds: Sequence[float], vocabularies: Sequence[Sequence[str]],
                 numeric_transform: str = "standard", quantiles: Optional[Sequence[Sequence[float]]] = None,
                 label: Optional[str] = None, label_names: Optional[Sequence[str]] = None,
                 label_type: Optional[str] = None, min_frequency: int = 1, **kwargs):
        kwargs.setdefault("name", "tabular_preprocessing")
        kwargs["dtype"] = "float32"
        kwargs["autocast"] = False
        super().__init__(trainable=False, **{k: v for k, v in kwargs.items() if k != "trainable"})
        if numeric_transform not in NUMERIC_TRANSFORMS:
            raise ValueError(f"numeric_transform must be one of {NUMERIC_TRANSFORMS}; got "
                             f"{numeric_transform!r}.")
        vocabularies = [[str(v) for v in vocab] for vocab in vocabularies]
        fitted = {  # plain lists, not tracked (wrapped) by Keras
            "columns": [str(c) for c in columns], "numeric": [str(c) for c in numeric],
            "categorical": [str(c) for c in categorical], "means": [float(m) for m in means],
            "stds": [float(s) for s in stds], "vocabularies": vocabularies,
            "vocabulary_sizes": [len(v) + 1 for v in vocabularies],
            "quantiles": None if quantiles is None else [[float(q) for q in qs] for qs in quantiles],
            "label_names": None if label_names is None else [str(n) for n in label_names]}
        for key, value in fitted.items():
            object.__setattr__(self, key, value)
        if sorted(self.columns) != sorted(self.numeric + self.categorical) or not self.columns:
            raise ValueError("columns must be the numeric and the categorical columns together (>= 1).")
        if len(self.vocabularies) != len(self.categorical) or len(self.means) != len(self.numeric) \
                or not all(self.vocabularies) or any("" in v for v in self.vocabularies):
            raise ValueError("One mean/std per numeric column and one non-empty vocabulary (without \"\", "
                             "the missing value) per categorical column.")
        self.numeric_transform = numeric_transform
        if numeric_transform == "quantile" and self.numeric and self.quantiles is None:
            raise ValueError("numeric_transform='quantile' needs the fitted quantiles.")
        self.label = None if label is None else str(label)
        self.label_type = label_type
        self.min_frequency = int(min_frequency)
        n = len(self.numeric)
        self._mean = self._constant("mean", np.asarray(self.means, np.float32).reshape([n]))
        inverse = [1.0 / s if s > 0 else 0.0 for s in self.stds]  # constant column -> exactly 0
        self._inverse_std = self._constant("inverse_std", np.asarray(inverse, np.float32).reshape([n]))
        if self.quantiles is not None:
            q = np.asarray(self.quantiles, np.float32).reshape([n, -1])
            self._quantiles = self._constant("quantiles", q)
            self._references = tf.constant(np.linspace(0.0, 1.0, q.shape[1]), tf.float32)
        self._lookups = [
            keras.layers.StringLookup(vocabulary=vocab, num_oov_indices=1, mask_token=None, oov_token="",
                                      output_mode="int", name=f"lookup_{input_name(c)}")
            for c, vocab in zip(self.categorical, self.vocabularies)]

    def _constant(self, name: str, value: np.ndarray) -> tf.Variable:
        return self.add_weight(name=name, shape=value.shape, dtype="float32", trainable=False,
                               initializer=keras.initializers.Constant(value))

    # --- fitting ---------------------------------------------------------------------------
    @classmethod
    def fit(cls, frame, numeric: Optional[Sequence[str]] = None, categorical: Optional[Sequence[str]] = None,
            label: Optional[str] = None, numeric_transform: str = "standard", min_frequency: int = 1,
            num_quantiles: int = 256) -> TabularPreprocessing:
        """Fit the statistics on a pandas DataFrame (the training table) and return the layer.

        Column kinds are inferred (numbers -> numeric; strings, bools, categoricals -> categorical)
        except those listed in ``numeric``/``categorical``. ``label`` is left out of the features;
        string/bool/categorical labels get ``label_names`` (sorted), integer and float labels are
        kept as they are.
        """
        if numeric_transform not in NUMERIC_TRANSFORMS:
            raise ValueError(f"numeric_transform must be one of {NUMERIC_TRANSFORMS}; got "
                             f"{numeric_transform!r}.")
        if int(min_frequency) < 1:
            raise ValueError(f"min_frequency must be at least 1; got {min_frequency}.")
        if int(num_quantiles) < 2:
            raise ValueError(f"num_quantiles must be at least 2; got {num_quantiles}.")
        frame = named_columns(frame)
        if len(frame) == 0:
            raise ValueError("The table has no rows: nothing to fit the preprocessing on.")
        kinds = column_kinds(frame, numeric, categorical, label)
        columns = list(kinds)
        numeric_cols = [c for c in columns if kinds[c] == "numeric"]
        categorical_cols = [c for c in columns if kinds[c] == "categorical"]
        means, stds, quantiles = [], [], []
        for column in numeric_cols:
            values = numeric_values(frame[column], column).astype(np.float64)
            values = values[np.isfinite(values)]
            if values.size == 0:
                raise ValueError(f"Numeric column {column!r} has no values (all missing) in the table the "
                                 "preprocessing is fitted on; drop it or fill it in.")
            means.append(float(values.mean()))
            stds.append(float(values.std()))
            quantiles.append(np.quantile(values, np.linspace(0.0, 1.0, int(num_quantiles))).tolist())
        vocabularies = []
        for column in categorical_cols:
            values = categorical_values(frame[column])
            names, counts = np.unique(values[values != ""].astype(str), return_counts=True)
            order = sorted(zip(-counts, names.tolist()))
            vocabulary = [name for count, name in order if -count >= int(min_frequency)]
            if not vocabulary:
                raise ValueError(f"Categorical column {column!r} has no value seen at least min_frequency="
                                 f"{min_frequency} time(s) (it is all missing or all rare); drop it or lower "
                                 "min_frequency.")
            vocabularies.append(vocabulary)
        label_names = label_type = None
        if label is not None:
            label_type, label_names = label_kind(frame[label], label)
        return cls(columns=columns, numeric=numeric_cols, categorical=categorical_cols, means=means,
                   stds=stds, vocabularies=vocabularies, numeric_transform=numeric_transform,
                   quantiles=quantiles if numeric_transform == "quantile" else None, label=label,
                   label_names=label_names, label_type=label_type, min_frequency=min_frequency)

    # --- serving ---------------------------------------------------------------------------
    def raw_signature(self) -> Dict[str, tf.TensorSpec]:
        """``{column: tf.TensorSpec([None], float32 or string)}`` for export signatures."""
        return {c: tf.TensorSpec([None], tf.float32 if c in self.numeric else tf.string, name=input_name(c))
                for c in self.columns}

    def call(self, raw) -> Dict[str, tf.Tensor]:
        """``raw`` dict column -> ``[batch]`` (or ``[batch, 1]``) -> the three tensors above."""
        check_columns(raw, self.columns)
        flat = {c: tf.reshape(raw[c], [-1]) for c in self.columns}
        batch = tf.shape(flat[self.columns[0]])[0]
        if self.numeric:
            for c in self.numeric:
                if flat[c].dtype == tf.string:
                    raise TypeError(f"Column {c!r} is numeric and needs float values; got strings. Convert "
                                    "it (e.g. pd.to_numeric) before calling the model.")
            x = tf.stack([tf.cast(flat[c], tf.float32) for c in self.numeric], axis=1)
            missing = tf.logical_not(tf.math.is_finite(x))
            x = tf.where(missing, self._mean, x)
            if self.numeric_transform == "standard":
                x = (x - self._mean) * self._inverse_std
            else:
                x = self._quantile_normal(x)
            missing = tf.cast(missing, tf.float32)
        else:
            x = missing = tf.zeros([batch, 0], tf.float32)
        if self.categorical:
            ids = [tf.cast(lookup(self._as_strings(flat[c], c)), tf.int32)
                   for c, lookup in zip(self.categorical, self._lookups)]
            categorical = tf.stack(ids, axis=1)
        else:
            categorical = tf.zeros([batch, 0], tf.int32)
        return {"numeric": x, "missing": missing, "categorical": categorical}

    @staticmethod
    def _as_strings(values: tf.Tensor, column: str) -> tf.Tensor:
        if values.dtype == tf.string:
            return values
        if values.dtype.is_integer:
            return tf.strings.as_string(values)
        raise TypeError(f"Column {column!r} is categorical and needs string (or integer) values; got "
                        f"{values.dtype.name}. Pass the values as strings, e.g. df[{column!r}].astype(str).")

    def _quantile_normal(self, x: tf.Tensor) -> tf.Tensor:
        """``[batch, n]`` -> the standard normal quantile of each value's fitted empirical CDF."""
        q, p = self._quantiles, self._references
        forward = _interpolate(x, q, p)
        backward = _interpolate(-x, -tf.reverse(q, [1]), -tf.reverse(p, [0]))
        cdf = 0.5 * (forward - backward)
        cdf = tf.where(x >= q[:, -1], 1.0, tf.where(x <= q[:, 0], 0.0, cdf))  # the fitted range's ends
        cdf = tf.where(q[:, 0] == q[:, -1], 0.5, cdf)  # a constant column -> 0
        # each tail from its own side, so both saturate at +-ndtri(1e-7) ~ 5.2 in float32
        lower = tf.math.ndtri(tf.maximum(cdf, _CDF_BOUND))
        upper = -tf.math.ndtri(tf.maximum(1.0 - cdf, _CDF_BOUND))
        return tf.where(cdf < 0.5, lower, upper)

    def compute_output_signature(self, input_signature):
        n, k = len(self.numeric), len(self.categorical)
        return {"numeric": tf.TensorSpec([None, n], tf.float32),
                "missing": tf.TensorSpec([None, n], tf.float32),
                "categorical": tf.TensorSpec([None, k], tf.int32)}

    def get_config(self) -> dict:
        config = super().get_config()
        for key in ("dtype", "trainable"):
            config.pop(key, None)
        config.update({
            "columns": self.columns, "numeric": self.numeric, "categorical": self.categorical,
            "means": self.means, "stds": self.stds, "vocabularies": self.vocabularies,
            "numeric_transform": self.numeric_transform, "quantiles": self.quantiles, "label": self.label,
            "label_names": self.label_names, "label_type": self.label_type,
            "min_frequency": self.min_frequency})
        return config


def _interpolate(x: tf.Tensor, xp: tf.Tensor, fp: tf.Tensor) -> tf.Tensor:
    """``np.interp`` per column: ``x [batch, n]``, sorted ``xp [n, Q]`` (ties allowed), ``fp [Q]``."""
    size = int(fp.shape[0])
    values = tf.transpose(x)  # [n, batch]
    right = tf.searchsorted(xp, values, side="right")
    low = tf.clip_by_value(right - 1, 0, size - 2)
    x0, x1 = tf.gather(xp, low, batch_dims=1), tf.gather(xp, low + 1, batch_dims=1)
    f0, f1 = tf.gather(fp, low), tf.gather(fp, low + 1)
    y = f0 + tf.math.divide_no_nan(values - x0, x1 - x0) * (f1 - f0)
    y = tf.where(values < xp[:, :1], fp[0], y)
    y = tf.where(values >= xp[:, -1:], fp[-1], y)
    return tf.transpose(y)

