"""The tabular payoff on a real table: SCARF pretrained on Adult's unlabelled rows, fine-tuned on 50
labels, beats the same MLP trained from scratch on those labels (keras_ssl.evaluation.tabular_protocol).

Measured with ``benchmarks/tabular_payoff.py --quick`` (2 pretraining epochs, 2,000 test rows), test
AUC with 50 labels, scratch -> SCARF fine-tuned: seed 0 0.727 -> 0.794, seed 1 0.636 -> 0.736; the
gains shrink to noise at 200 labels, and logistic regression on the preprocessed features beats both
with 50 labels (docs/tabular.md has the full table).
"""

import numpy as np
import pytest

from keras_ssl.datasets import adult
from keras_ssl.evaluation.tabular_protocol import (
    fine_tune,
    label_subset,
    pretrain_tabular,
    tabular_encoder,
)
from keras_ssl.tabular import tabular_dataset

SEED = 0


@pytest.fixture(scope="module")
def table():
    train, test = adult(seed=SEED)
    _, prep = tabular_dataset(train, label="income")
    return train, test.iloc[:2000], prep


def test_label_subset_is_stratified_and_seeded(table):
    train, _, _ = table
    subset = label_subset(train, "income", 50, seed=SEED)
    assert len(subset) == 50 and subset.index.is_unique
    rate = float(np.mean(train["income"] == ">50K"))
    assert abs(float(np.mean(subset["income"] == ">50K")) - rate) <= 1 / 50 + 1e-9
    assert subset.index.equals(label_subset(train, "income", 50, seed=SEED).index)
    assert not subset.index.equals(label_subset(train, "income", 50, seed=SEED + 1).index)
    with pytest.raises(ValueError, match="cannot cover"):
        label_subset(train, "income", 1, seed=SEED)


@pytest.mark.slow
def test_scarf_beats_training_from_scratch_with_50_labels(table):
    train, test, prep = table
    labelled = label_subset(train, "income", 50, seed=SEED)
    scratch = fine_tune(tabular_encoder(prep, SEED), prep, labelled, test, SEED)
    model = pretrain_tabular("scarf", train, prep, seed=SEED, epochs=2)
    scarf = fine_tune(model.encoder, prep, labelled, test, SEED)
    print("scratch", scratch, "scarf", scarf)
    assert scarf["auc"] > scratch["auc"] + 0.03
    assert scarf["accuracy"] >= scratch["accuracy"]
