"""``TextClassifier.predict`` on raw strings: batches of similar length against batches in the given order.

Scores 1,000 Rotten Tomatoes test snippets (27 tokens on average, ``max_length=64``, batches of 64)
with the offline MiniLM classifier both ways, three interleaved rounds, and checks the probabilities
agree. Run: ``python benchmarks/text_predict_padding.py``; prints and writes
``benchmarks/results/text_predict_padding.json``.
"""

from __future__ import annotations

import json
import os
import platform
import time

import numpy as np

from keras_ssl.quiet import quiet

quiet()

from keras_ssl.backend import tf  # noqa: E402
from keras_ssl.evaluation.text_protocol import load_task  # noqa: E402
from keras_ssl.text import TextClassifier, minilm_path  # noqa: E402
from keras_ssl.text.labelled import tokenize  # noqa: E402


def main() -> None:
    texts = list(load_task("rotten_tomatoes", test_size=1000, seed=0)["test_x"])
    clf = TextClassifier.from_pretrained(minilm_path(), num_labels=2)

    def given_order(batch: int = 64) -> np.ndarray:
        out = []
        for start in range(0, len(texts), batch):
            enc = tokenize(clf.tokenizer, texts[start:start + batch], 64)
            ids, mask = tf.constant(enc["input_ids"]), tf.constant(enc["attention_mask"])
            out.append(clf._predict_ids(ids, mask).numpy())
        return np.concatenate(out)

    clf.predict(texts[:64], batch_size=64, max_length=64)  # trace once
    seconds = {"given_order": [], "similar_length": []}
    for _ in range(3):
        start = time.perf_counter()
        given = given_order()
        seconds["given_order"].append(round(time.perf_counter() - start, 2))
        start = time.perf_counter()
        grouped = clf.predict(texts, batch_size=64, max_length=64)
        seconds["similar_length"].append(round(time.perf_counter() - start, 2))
    result = {"seconds": seconds, "max_abs_difference": float(np.abs(given - grouped).max()),
              "machine": platform.platform(), "cpus": os.cpu_count()}
    print(json.dumps(result, indent=1))
    path = os.path.join(os.path.dirname(__file__), "results", "text_predict_padding.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
