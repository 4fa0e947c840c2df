"""What masking needs to know about a tokenizer's vocabulary, as plain arrays."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

_PLACEHOLDER = re.compile(r"^\[unused\d+\]$|^<unused\d+>$|^<extra_id_\d+>$")
_BYTE_FALLBACK = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")  # SentencePiece byte pieces, e.g. <0xC3>


@dataclass(frozen=True)
class VocabularyInfo:
    """Token-level facts about a vocabulary of ``size`` ids.

    ``special``: bool ``[size]``, never masked (CLS, SEP, PAD, MASK, ...).
    ``continuation``: bool ``[size]``, the token continues the previous token's word.
    ``replacement_ids``: int ``[n]``, ids a random replacement may take (real tokens only).
    """

    size: int
    mask_token_id: int
    pad_token_id: int
    special: np.ndarray
    continuation: np.ndarray
    replacement_ids: np.ndarray
    word_scheme: str

    @classmethod
    def from_tokenizer(cls, tokenizer) -> VocabularyInfo:
        if getattr(tokenizer, "mask_token_id", None) is None:
            raise ValueError(
                f"The tokenizer {type(tokenizer).__name__} has no mask token, so masked-language "
                "modelling cannot mask anything. Add one with "
                "`tokenizer.add_special_tokens({'mask_token': '[MASK]'})` and resize the model's "
                "embeddings, or use a masked-LM tokenizer (BERT, RoBERTa, ALBERT, ...)."
            )
        size = len(tokenizer)
        tokens = tokenizer.convert_ids_to_tokens(list(range(size)))
        tokens = ["" if t is None else t for t in tokens]
        special = np.zeros(size, bool)
        special[[i for i in tokenizer.all_special_ids if 0 <= i < size]] = True
        scheme = detect_word_scheme(tokens)
        continuation = np.array([is_continuation(t, scheme) for t in tokens], bool) & ~special
        placeholder = np.array([bool(_PLACEHOLDER.match(t)) for t in tokens], bool)
        replacement_ids = np.flatnonzero(~special & ~placeholder).astype(np.int32)
        pad = tokenizer.pad_token_id
        return cls(
            size=size,
            mask_token_id=int(tokenizer.mask_token_id),
            pad_token_id=-1 if pad is None else int(pad),
            special=special,
            continuation=continuation,
            replacement_ids=replacement_ids,
            word_scheme=scheme,
        )


def detect_word_scheme(tokens: list) -> str:
    """``"wordpiece"`` (``##`` continues), ``"prefix"`` (``Ġ``/``▁`` starts a word) or ``"none"``."""
    if sum(t.startswith("##") for t in tokens) > 0.01 * len(tokens):
        return "wordpiece"
    if sum(t.startswith(("Ġ", "▁")) for t in tokens) > 0.01 * len(tokens):
        return "prefix"
    return "none"


def is_continuation(token: str, scheme: str) -> bool:
    """Whether ``token`` continues a word under ``scheme`` (see :func:`detect_word_scheme`)."""
    if scheme == "wordpiece":
        return token.startswith("##")
    if scheme == "prefix":
        if token.startswith(("Ġ", "▁")):
            return False
        # Control-like pieces (<unk>, <pad>, ...) start a word; byte-fallback pieces such as
        # <0xC3> spell a character inside the word they follow (the space itself is the "▁").
        control = token.startswith("<") and token.endswith(">") and not _BYTE_FALLBACK.match(token)
        return not control
    return False
