"""In-graph dynamic masking for masked-language modelling (BERT, whole-word and span recipes)."""

from __future__ import annotations

import math
import random
from typing import Dict, Optional

import numpy as np

from keras_ssl import counter_random as cr
from keras_ssl.backend import tf
from keras_ssl.text.vocabulary import VocabularyInfo

IGNORE_INDEX = -100
STRATEGIES = ("token", "whole_word", "span")
_EVAL_STEP = 0xFFFFFFFF  # the fixed "step" of deterministic (evaluation) masks

# Random streams: each decision draws from its own stream so they are independent.
_SELECT, _KIND, _REPLACE, _SPAN_LENGTH = 1, 2, 3, 4


class TokenMasker:
    """Select tokens to predict and corrupt them, with TensorFlow ops only.

    Of the maskable tokens (never special tokens or padding), ``mask_rate`` are selected; of the
    selected, ``mask_token_rate`` become the mask token, ``random_token_rate`` a random real
    token, and the rest stay unchanged (BERT: 0.15 / 0.8 / 0.1). Strategies:

    * ``"token"``: each token independently (BERT, Hugging Face's collator).
    * ``"whole_word"``: each word independently, all of its pieces together, one 80/10/10 decision
      per word; word starts come from the vocabulary (``##`` pieces, or ``Ġ``/``▁`` prefixes).
    * ``"span"``: SpanBERT-style spans with lengths ~ Geometric(``span_p``) clipped at
      ``max_span_length``; start probability solved so the expected selection rate is ``mask_rate``.
      Spans may also start in the ``max_span_length - 1`` positions before the row (the row is a
      window on a longer text), so every maskable position, the first ones included, is selected
      with probability ``mask_rate``.

    Random draws are a pure function of ``(seed, step, row content, position)`` (padding excluded
    from the row content), so masks are reproducible, fresh at every ``step`` (dynamic masking),
    identical for one replica or many and however far a batch is padded, and fixed across epochs
    when ``deterministic=True`` (evaluation).

    Call on ``input_ids`` ``int [batch, length]`` (optionally ``attention_mask``); returns a dict with
    masked ``input_ids`` and ``labels`` (original ids where selected, ``-100`` elsewhere).
    """

    def __init__(
        self,
        tokenizer=None,
        mask_rate: float = 0.15,
        mask_token_rate: float = 0.8,
        random_token_rate: float = 0.1,
        seed: Optional[int] = None,
        strategy: str = "token",
        span_p: float = 0.2,
        max_span_length: int = 10,
        vocabulary: Optional[VocabularyInfo] = None,
    ):
        if vocabulary is None:
            if tokenizer is None:
                raise ValueError("TokenMasker needs a tokenizer (or a VocabularyInfo).")
            vocabulary = VocabularyInfo.from_tokenizer(tokenizer)
        if not 0.0 < mask_rate <= 1.0:
            raise ValueError(f"mask_rate must be in (0, 1], got {mask_rate}.")
        if mask_token_rate < 0 or random_token_rate < 0 or mask_token_rate + random_token_rate > 1:
            raise ValueError(
                "mask_token_rate and random_token_rate must be >= 0 and sum to at most 1, got "
                f"{mask_token_rate} and {random_token_rate}."
            )
        if not 0.0 < span_p < 1.0:
            raise ValueError(f"span_p must be in (0, 1), got {span_p}.")
        if int(max_span_length) < 1:
            raise ValueError(f"max_span_length must be >= 1, got {max_span_length}.")
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}.")
        if strategy == "whole_word" and vocabulary.word_scheme == "none":
            raise ValueError(
                "Whole-word masking needs a vocabulary that marks word pieces (WordPiece '##' or "
                "'Ġ'/'▁' word starts); this one marks neither. Use strategy='token' or 'span'."
            )
        self.vocabulary = vocabulary
        self.mask_rate = float(mask_rate)
        self.mask_token_rate = float(mask_token_rate)
        self.random_token_rate = float(random_token_rate)
        self.seed = random.SystemRandom().getrandbits(32) if seed is None else int(seed)
        self.strategy = strategy
        self.span_p = float(span_p)
        self.max_span_length = int(max_span_length)
        self.span_start_rate = (
            _solve_span_start_rate(self.mask_rate, self.span_p, self.max_span_length)
            if strategy == "span"
            else None
        )
        self._special = tf.constant(vocabulary.special)
        self._continuation = tf.constant(vocabulary.continuation)
        self._replacement_ids = tf.constant(vocabulary.replacement_ids, tf.int32)

    def get_config(self) -> dict:
        return {
            "mask_rate": self.mask_rate,
            "mask_token_rate": self.mask_token_rate,
            "random_token_rate": self.random_token_rate,
            "seed": self.seed,
            "strategy": self.strategy,
            "span_p": self.span_p,
            "max_span_length": self.max_span_length,
        }

    def __call__(
        self,
        input_ids,
        attention_mask=None,
        step=0,
        deterministic: bool = False,
    ) -> Dict[str, tf.Tensor]:
        ids = tf.convert_to_tensor(input_ids)
        if ids.shape.rank != 2:
            raise ValueError(
                f"TokenMasker expects input_ids of shape [batch, length], got shape {ids.shape}."
            )
        ids32 = tf.cast(ids, tf.int32)
        safe = tf.clip_by_value(ids32, 0, self.vocabulary.size - 1)
        special = tf.gather(self._special, safe)
        maskable = ~special
        if attention_mask is not None:
            content = tf.cast(attention_mask, tf.bool)
            maskable &= content
        elif self.vocabulary.pad_token_id >= 0:
            content = tf.not_equal(ids32, self.vocabulary.pad_token_id)
        else:
            content = None
        step = _EVAL_STEP if deterministic else step
        key = cr.row_keys(ids32, content)
        positions = tf.broadcast_to(tf.range(tf.shape(ids32)[1]), tf.shape(ids32))

        def draw(stream, index):
            return cr.uniform(self.seed, stream, step, key, index)

        if self.strategy == "whole_word":
            starts = ~tf.gather(self._continuation, safe) | special
            after_special = tf.pad(special[:, :-1], [[0, 0], [1, 0]], constant_values=True)
            word = tf.cumsum(tf.cast(starts | after_special, tf.int32), axis=1)
            selected = (draw(_SELECT, word) < self.mask_rate) & maskable
            kind = draw(_KIND, word)
        elif self.strategy == "span":
            selected = self._spans(draw, tf.shape(ids32)[1]) & maskable
            kind = draw(_KIND, positions)
        else:
            selected = (draw(_SELECT, positions) < self.mask_rate) & maskable
            kind = draw(_KIND, positions)

        n = tf.shape(self._replacement_ids)[0]
        pick = tf.minimum(tf.cast(draw(_REPLACE, positions) * tf.cast(n, tf.float32), tf.int32), n - 1)
        replacement = tf.gather(self._replacement_ids, pick)
        to_mask = selected & (kind < self.mask_token_rate)
        to_random = selected & ~to_mask & (kind < self.mask_token_rate + self.random_token_rate)
        masked = tf.where(to_mask, self.vocabulary.mask_token_id, tf.where(to_random, replacement, ids32))
        labels = tf.where(selected, ids32, IGNORE_INDEX)
        out = {"input_ids": tf.cast(masked, ids.dtype), "labels": tf.cast(labels, ids.dtype)}
        if attention_mask is not None:
            out["attention_mask"] = attention_mask
        return out

    def _spans(self, draw, length) -> tf.Tensor:
        """Union of spans starting where ``u < span_start_rate``, lengths ~ clipped geometric.

        Starts are drawn at positions ``-(max_span_length - 1) .. length - 1``: a span that starts
        before the row and reaches into it covers the row's first positions, so the coverage of
        every position is ``1 - prod_k (1 - s P(L > k)) = mask_rate`` (without the positions before
        the row the first ``max_span_length - 1`` positions would be under-selected, which lowers
        the rate of short rows noticeably).
        """
        reach_back = self.max_span_length - 1
        index = tf.range(-reach_back, length)[None, :]  # [1, reach_back + length]
        starts = draw(_SELECT, index) < self.span_start_rate
        u = tf.maximum(draw(_SPAN_LENGTH, index), 1e-7)
        lengths = 1 + tf.cast(tf.floor(tf.math.log(u) / math.log(1.0 - self.span_p)), tf.int32)
        lengths = tf.minimum(lengths, self.max_span_length)
        covered = None
        for k in range(self.max_span_length):
            # A start at position j covers j + k when its length exceeds k.
            reach = (starts & (lengths > k))[:, reach_back - k : reach_back - k + length]
            covered = reach if covered is None else covered | reach
        return covered


def span_length_survival(span_p: float, max_span_length: int) -> np.ndarray:
    """``P(length > k)`` for ``k = 0..max-1`` of the clipped geometric span length."""
    return (1.0 - span_p) ** np.arange(max_span_length)


def _solve_span_start_rate(rate: float, span_p: float, max_span_length: int) -> float:
    """Start probability ``s`` with ``1 - prod_k (1 - s * P(L > k)) = rate`` (bisection)."""
    survival = span_length_survival(span_p, max_span_length)
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        coverage = 1.0 - np.prod(1.0 - mid * survival)
        lo, hi = (mid, hi) if coverage < rate else (lo, mid)
    return (lo + hi) / 2
