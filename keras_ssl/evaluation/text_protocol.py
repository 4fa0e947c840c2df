"""The text payoff protocol: does adapting MiniLM to a task's own text pay off when labels are few?

Task-adaptive pretraining (TAPT, Gururangan et al., 2020, "Don't Stop Pretraining"): before
fine-tuning a classifier, continue the masked-LM pretraining of the encoder on the task's
*unlabelled* training text. :func:`adapt` does that with
:class:`~keras_ssl.text.MaskedLanguageModel` and a recipe of :data:`ADAPT_RECIPES`;
:func:`classifier_scores` fine-tunes a :class:`~keras_ssl.text.TextClassifier` (mean pooling) on
16, 64 or 256 labels per class (:func:`text_labels`, from the training split only) with one fixed
recipe (:data:`TEXT_CLASSIFIER`) and measures accuracy and macro-F1 on held-out test texts. The same
recipe runs on the unadapted encoder, and :func:`tfidf_scores` gives the classic baseline on the same
labels. :func:`text_payoff` runs the whole comparison for one task and seed.

Tasks (:data:`TEXT_TASKS`): Rotten Tomatoes snippets (fresh/rotten) and the women's clothing reviews
(recommended or not; 82 % are, so macro-F1 is the number to read there).
"""

from __future__ import annotations

import tempfile
import time
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from keras_ssl.datasets import clothing_reviews, few_labels, rotten_tomatoes

#: Each task: its loader, the token length its texts are cut to (MiniLM's tokenizer, special tokens
#: included: Rotten Tomatoes snippets average 27 tokens, 99.9 % fit in 64; clothing reviews 82, 89 %
#: fit in 128) and the metric to read (58 % of the snippets are "fresh"; 82 % of the clothing reviews
#: "recommended", where accuracy rewards predicting the majority).
TEXT_TASKS: Dict[str, Dict[str, Any]] = {
    "rotten_tomatoes": {"load": rotten_tomatoes, "max_length": 64, "metric": "accuracy"},
    "clothing_reviews": {"load": clothing_reviews, "max_length": 128, "metric": "macro_f1"},
}

#: Adaptation recipes (:func:`adapt`). ``naive``: ``fit`` straight away, the fresh head learning
#: from the first step. ``keras_ssl`` (the default): the head is first fitted alone on the frozen
#: encoder (:meth:`~keras_ssl.text.MaskedLanguageModel.fit_head`), then the whole model trains.
#: ``steps`` of ``batch_size`` packed blocks of the task's ``max_length``; AdamW, 10 % warm-up,
#: cosine decay. Measured on Rotten Tomatoes (seeds 0-2, docs/results.md): both help the probe at
#: 256 labels per class (+0.035 / +0.034), the naive one more once the classifier fine-tunes (+0.024
#: against +0.009); neither helps at 16 or 64 labels. On the clothing reviews both lift the probe's
#: macro-F1 at 16, 64 and 256 labels on every seed (seeds 0-2: naive +0.060 to +0.073, keras_ssl
#: +0.055 to +0.083 on average), level with each other within the seed spread.
ADAPT_RECIPES: Dict[str, Dict[str, Any]] = {
    "naive": {"head_steps": 0, "steps": 150, "batch_size": 32, "learning_rate": 1e-4,
              "strategy": "token", "mask_rate": 0.15},
    "keras_ssl": {"head_steps": 100, "head_learning_rate": 3e-3, "steps": 150, "batch_size": 32,
                  "learning_rate": 1e-4, "strategy": "token", "mask_rate": 0.15},
}
DEFAULT_RECIPE = "keras_ssl"

#: The classifier recipe, the same for every encoder, LP-FT (Kumar et al., 2022): the dense head is
#: first fitted alone on the frozen encoder's mean-pooled features (``TextClassifier.fit_head``:
#: ``head_steps`` full-batch Adam steps at ``head_learning_rate``; scored as the "probe"), then
#: everything trains ("fine-tune"): AdamW (weight decay 0.01) at ``learning_rate`` with 10 % warm-up
#: and linear decay over ``epochs`` passes of ``batch_size``, but at least ``min_steps`` (the smallest
#: label sets) and at most ``max_steps`` (the CPU budget: 256 labels per class get ~6 epochs).
TEXT_CLASSIFIER: Dict[str, Any] = {"head_steps": 300, "head_learning_rate": 1e-2, "epochs": 10,
                                   "batch_size": 16, "min_steps": 60, "max_steps": 200,
                                   "learning_rate": 5e-5}

#: The label budgets (labels per class) of the protocol.
TEXT_SHOTS = (16, 64, 256)


def load_task(name: str, test_size: Optional[int] = None, seed: int = 0) -> Dict[str, np.ndarray]:
    """The task's ``{"train_x", "train_y", "test_x", "test_y", "label_names"}`` (loaders' split).

    ``test_size``: keep a seeded random subset of that many test texts (all by default).
    """
    if name not in TEXT_TASKS:
        raise ValueError(f"Unknown task {name!r}; choose one of {sorted(TEXT_TASKS)}.")
    data = dict(TEXT_TASKS[name]["load"]())
    if test_size is not None and test_size < len(data["test_y"]):
        keep = np.sort(np.random.default_rng(seed).permutation(len(data["test_y"]))[:int(test_size)])
        data["test_x"], data["test_y"] = data["test_x"][keep], data["test_y"][keep]
    return data


def text_labels(data: Mapping[str, np.ndarray], per_class: int,
                seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """``per_class`` labelled training texts of each class: ``(texts [k * classes], labels)``."""
    return few_labels(data["train_x"], data["train_y"], per_class, seed=seed)


def adapt(texts: Sequence[str], recipe: str = DEFAULT_RECIPE, max_length: int = 128, seed: int = 0,
          model: Optional[str] = None, verbose: int = 0, **overrides):
    """Continue masked-LM pretraining of ``model`` (default MiniLM) on unlabelled ``texts``.

    ``recipe``: a key of :data:`ADAPT_RECIPES`; ``overrides`` replace its entries. Returns the
    adapted :class:`~keras_ssl.text.MaskedLanguageModel` with ``adapt_seconds`` (wall) set.
    """
    import keras_ssl
    from keras_ssl.backend import keras
    from keras_ssl.text import MaskedLanguageModel, minilm_path, text_dataset

    if recipe not in ADAPT_RECIPES:
        raise ValueError(f"Unknown recipe {recipe!r}; choose one of {sorted(ADAPT_RECIPES)}.")
    r = {**ADAPT_RECIPES[recipe], **overrides}
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    mlm = MaskedLanguageModel.from_pretrained(model or minilm_path(), seed=seed, strategy=r["strategy"],
                                              mask_rate=r["mask_rate"])
    train = text_dataset(list(texts), tokenizer=mlm.tokenizer, max_length=max_length,
                         batch_size=int(r["batch_size"]), seed=seed)
    if r["head_steps"] and mlm.head_is_fresh:
        mlm.fit_head(train, steps=int(r["head_steps"]), learning_rate=r["head_learning_rate"],
                     log_every=50 if verbose else 0)
    steps = int(r["steps"])
    mlm.compile(optimizer=keras_ssl.optimizers.adamw(
        learning_rate=r["learning_rate"], warmup_steps=max(steps // 10, 1), total_steps=steps))
    mlm.fit(train.repeat(), steps_per_epoch=steps, epochs=1, verbose=verbose)
    mlm.adapt_seconds = time.perf_counter() - start
    return mlm


def classifier_scores(source, train: Tuple[Sequence[str], np.ndarray],
                      test: Tuple[Sequence[str], np.ndarray], max_length: int = 128, seed: int = 0,
                      finetune: bool = True, **recipe: Any) -> Dict[str, Dict[str, float]]:
    """``{"probe": scores, "finetune": scores}`` on ``test`` of a ``TextClassifier`` trained on ``train``.

    ``scores``: ``{"accuracy", "macro_f1"}``; "probe" after ``fit_head`` (frozen encoder), "finetune"
    after the whole model then trained on (LP-FT; ``finetune=False`` stops after the probe). ``source``: a
    :class:`~keras_ssl.text.MaskedLanguageModel` (its encoder is copied, the model is untouched) or a
    model directory. ``train``/``test``: ``(texts, labels)``. ``recipe`` replaces
    :data:`TEXT_CLASSIFIER` entries.
    """
    import keras_ssl
    from keras_ssl.backend import keras
    from keras_ssl.text import TextClassifier, labelled_text_dataset

    r = {**TEXT_CLASSIFIER, **recipe}
    texts, labels = list(train[0]), np.asarray(train[1])
    num_labels = _num_labels(train, test)
    keras.utils.set_random_seed(seed)
    clf = TextClassifier.from_pretrained(source, num_labels=num_labels)
    batch = min(int(r["batch_size"]), len(texts))
    data = labelled_text_dataset(texts, labels, tokenizer=clf.tokenizer, max_length=max_length,
                                 batch_size=batch, shuffle=True, seed=seed, drop_remainder=True)

    def scores():
        probabilities = clf.predict(list(test[0]), batch_size=64, max_length=max_length)
        return _scores(np.asarray(test[1]), probabilities.argmax(-1), num_labels)

    clf.fit_head(data, steps=int(r["head_steps"]), learning_rate=r["head_learning_rate"])
    out = {"probe": scores()}
    if not finetune:
        return out
    per_epoch = len(texts) // batch
    steps = min(max(int(r["epochs"]) * per_epoch, int(r["min_steps"])), int(r["max_steps"]))
    clf.compile(optimizer=keras_ssl.optimizers.adamw(
        learning_rate=r["learning_rate"], warmup_steps=max(steps // 10, 1), total_steps=steps))
    clf.fit(data.repeat(), steps_per_epoch=steps, epochs=1, verbose=0)
    out["finetune"] = scores()
    return out


def tfidf_scores(train: Tuple[Sequence[str], np.ndarray],
                 test: Tuple[Sequence[str], np.ndarray]) -> Dict[str, float]:
    """``{"accuracy", "macro_f1"}`` of TF-IDF (word 1-2 grams, sublinear tf) + logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    features = vectorizer.fit_transform(list(train[0]))
    model = LogisticRegression(C=10.0, max_iter=2000).fit(features, np.asarray(train[1]))
    predicted = model.predict(vectorizer.transform(list(test[0])))
    return _scores(np.asarray(test[1]), predicted, _num_labels(train, test))


def _num_labels(train, test) -> int:
    """Classes ``0 .. n-1``: one more than the largest label of either split."""
    return int(max(np.max(train[1]), np.max(test[1])) + 1)


def _scores(truth: np.ndarray, predicted: np.ndarray, num_labels: int) -> Dict[str, float]:
    """Accuracy, and macro-F1 over all ``num_labels`` classes (a class never seen nor predicted: 0)."""
    from sklearn.metrics import f1_score

    macro_f1 = f1_score(truth, predicted, labels=list(range(num_labels)), average="macro", zero_division=0)
    return {"accuracy": float(np.mean(predicted == truth)), "macro_f1": float(macro_f1)}


def text_payoff(task: str, seed: int = 0, shots: Sequence[int] = TEXT_SHOTS,
                recipes: Sequence[str] = ("naive", DEFAULT_RECIPE), test_size: Optional[int] = None,
                classifier: Optional[Dict[str, Any]] = None, verbose: int = 0,
                **adapt_overrides) -> Dict[str, Any]:
    """The comparison for one ``task`` and ``seed``.

    Returns ``{"unadapted": {k: {"probe": scores, "finetune": scores}}, recipe: {...}, ...,
    "tfidf": {k: scores}, "adapt": {recipe: {"wall_s", "mean_loss", ...}}}`` where ``scores`` is
    ``{"accuracy", "macro_f1"}`` for ``k`` labels per class (:func:`classifier_scores`). The
    adaptation uses every training text (labels unused); the labelled texts are drawn with ``seed``.
    ``adapt_overrides`` replace recipe entries (``head_steps`` only in recipes that fit the head).
    """
    data = load_task(task, test_size=test_size, seed=seed)
    max_length = TEXT_TASKS[task]["max_length"]
    test = (data["test_x"], data["test_y"])
    labelled = {k: text_labels(data, k, seed=seed) for k in shots}
    classifier = classifier or {}

    def scores(source):
        return {str(k): classifier_scores(source, labelled[k], test, max_length, seed, **classifier)
                for k in shots}

    from keras_ssl.text import minilm_path

    out: Dict[str, Any] = {"unadapted": scores(minilm_path()), "adapt": {}}
    for recipe in recipes:
        overrides = dict(adapt_overrides)
        if not ADAPT_RECIPES[recipe]["head_steps"]:  # a recipe without head fitting keeps it so
            overrides.pop("head_steps", None)
        mlm = adapt(data["train_x"], recipe, max_length=max_length, seed=seed, verbose=verbose, **overrides)
        out["adapt"][recipe] = {"wall_s": round(mlm.adapt_seconds, 1), "texts": len(data["train_x"]),
                                "mean_loss": float(mlm.history.history["loss"][-1]),
                                **{**ADAPT_RECIPES[recipe], **overrides}}
        with tempfile.TemporaryDirectory(prefix="keras_ssl_adapted_") as adapted:
            mlm.save_pretrained(adapted)  # once, not once per label budget
            out[recipe] = scores(adapted)
    out["tfidf"] = {str(k): tfidf_scores(labelled[k], test) for k in shots}
    return out


__all__ = ["ADAPT_RECIPES", "DEFAULT_RECIPE", "TEXT_CLASSIFIER", "TEXT_SHOTS", "TEXT_TASKS", "adapt",
           "classifier_scores", "load_task", "text_labels", "text_payoff", "tfidf_scores"]
