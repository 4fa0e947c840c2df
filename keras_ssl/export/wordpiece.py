"""A Hugging Face fast WordPiece tokenizer (BERT-style) rebuilt from core TensorFlow ops.

Exported text models tokenize raw strings inside the SavedModel, so a server needs stock
TensorFlow only (no ``tensorflow_text`` custom ops). The rebuild is exact, not approximate:

* **Normalisation and pre-tokenisation** (BERT's clean-text, CJK spacing, accent stripping,
  lower-casing, whitespace and punctuation splitting) act character by character. We ask the
  tokenizer's *own* normaliser and pre-tokeniser what each of the 1.1M code points becomes, and
  store the answer compactly: runs of code points that stay, vanish, become a space or are
  isolated, plus a table for the few thousand that change (``É`` -> ``e``).
* **Special tokens** written in the text (``[MASK]``) are split out first, as Hugging Face does.
* **WordPiece** is greedy longest-match-first with ``##`` continuations; a word with an
  unmatchable piece, or longer than ``max_input_chars_per_word``, becomes ``[UNK]``.

:func:`wordpiece_spec` refuses tokenizers that are not of this kind (SentencePiece, byte-level
BPE, NFC/NFKC normalisers) with :class:`ExportError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

from keras_ssl.backend import tf

_KEEP, _DROP, _SPACE, _ISOLATE, _TABLE = 0, 1, 2, 3, 4
_PER_CHAR_NORMALIZERS = {"BertNormalizer", "Lowercase", "StripAccents", "NFD"}
_PER_CHAR_PRE_TOKENIZERS = {"BertPreTokenizer", "WhitespaceSplit"}
_SENTINEL_BASE = 0xFDD0  # Unicode noncharacters: reserved here for special tokens in the text
_CHUNK = 2048


class ExportError(ValueError):
    """A model or tokenizer that cannot be exported as asked, with what to do instead."""


@dataclass(frozen=True)
class WordPieceSpec:
    """Everything the core-TF tokenizer needs, as plain Python/NumPy values."""

    vocab: Dict[str, int]
    unk_id: int
    prefix: str
    max_input_chars: int
    special_literals: Tuple[Tuple[str, int], ...]  # (text as written, id), longest first
    prefix_ids: Tuple[int, ...]  # e.g. (CLS,)
    suffix_ids: Tuple[int, ...]  # e.g. (SEP,)
    pad_id: int
    run_starts: np.ndarray  # int32 [runs]: first code point of each run
    run_classes: np.ndarray  # int32 [runs]: _KEEP/_DROP/_SPACE/_ISOLATE/_TABLE
    table_keys: np.ndarray  # int64 [n]
    table_values: np.ndarray  # object [n]: replacement strings


def _components(node, kinds: set, what: str, tokenizer_name: str) -> None:
    if node is None:
        return
    if node.get("type") == "Sequence":
        for child in node.get("normalizers", node.get("pretokenizers", [])):
            _components(child, kinds, what, tokenizer_name)
        return
    if node.get("type") not in kinds:
        raise ExportError(
            f"The tokenizer {tokenizer_name} uses a {node.get('type')} {what}, which has no exact "
            "core-TensorFlow form (only BERT-style WordPiece tokenizers do). Export with "
            "include_strings=False to get the token-id signatures only, and tokenize on the client."
        )


def wordpiece_spec(tokenizer) -> WordPieceSpec:
    """Read a Hugging Face fast tokenizer into a :class:`WordPieceSpec`, or raise :class:`ExportError`."""
    name = type(tokenizer).__name__
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ExportError(
            f"{name} is a slow (pure-Python) tokenizer; string signatures are built from a fast "
            "tokenizer. Load it with AutoTokenizer.from_pretrained(..., use_fast=True), or export "
            "with include_strings=False."
        )
    state = json.loads(backend.to_str())
    model = state["model"]
    if model.get("type") != "WordPiece":
        raise ExportError(
            f"The tokenizer {name} is a {model.get('type')} tokenizer; string signatures need WordPiece "
            "(BERT-style) vocabularies, which core TensorFlow ops can reproduce exactly. Export with "
            "include_strings=False to get the token-id signatures only, and tokenize on the client."
        )
    _components(state.get("normalizer"), _PER_CHAR_NORMALIZERS, "normalizer", name)
    _components(state.get("pre_tokenizer"), _PER_CHAR_PRE_TOKENIZERS, "pre-tokenizer", name)
    specials = []
    for token in state.get("added_tokens", []):
        if token.get("normalized") or token.get("lstrip") or token.get("rstrip") or token.get("single_word"):
            raise ExportError(
                f"The added token {token['content']!r} is matched with normalisation or stripping "
                "rules that the exported tokenizer does not reproduce. Export with include_strings=False."
            )
        specials.append((token["content"], int(token["id"])))
    if len(specials) > 32:
        raise ExportError(f"{len(specials)} added tokens; at most 32 can be exported in string signatures.")
    specials.sort(key=lambda item: -len(item[0]))
    with_specials = tokenizer("a", add_special_tokens=True)["input_ids"]
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    at = _find(with_specials, plain)
    starts, classes, keys, values = _char_map(backend, state.get("normalizer"), state.get("pre_tokenizer"))
    pad = tokenizer.pad_token_id
    return WordPieceSpec(
        vocab=dict(model["vocab"]),
        unk_id=int(model["vocab"][model["unk_token"]]),
        prefix=model.get("continuing_subword_prefix") or "##",
        max_input_chars=int(model.get("max_input_chars_per_word") or 100),
        special_literals=tuple(specials),
        prefix_ids=tuple(with_specials[:at]),
        suffix_ids=tuple(with_specials[at + len(plain):]),
        pad_id=0 if pad is None else int(pad),
        run_starts=starts,
        run_classes=classes,
        table_keys=keys,
        table_values=values,
    )


def _find(whole: List[int], part: List[int]) -> int:
    for i in range(len(whole) - len(part) + 1):
        if whole[i:i + len(part)] == part:
            return i
    raise ExportError("Could not locate the text between the tokenizer's special tokens.")


def _all_chars() -> List[str]:
    return [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000]


_CHAR_MAPS: Dict[str, tuple] = {}


def _char_map(backend, normalizer, pre_tokenizer) -> tuple:
    """Code point -> what normalisation + pre-tokenisation make of it, as runs and a table.

    Computed once per (normaliser, pre-tokeniser) configuration and process (a few seconds).
    """
    key = json.dumps([normalizer, pre_tokenizer], sort_keys=True)
    if key not in _CHAR_MAPS:
        _CHAR_MAPS[key] = _compute_char_map(backend, normalizer is not None, pre_tokenizer is not None)
    return _CHAR_MAPS[key]


def _compute_char_map(backend, has_normalizer: bool, has_pre_tokenizer: bool) -> tuple:
    chars = _all_chars()
    normalized = _normalize_each(backend.normalizer, chars) if has_normalizer else chars
    kinds = _pre_token_kinds(backend.pre_tokenizer, chars) if has_pre_tokenizer else {}

    def spell(d: str) -> str:
        kind = kinds.get(d, _KEEP)
        return " " if kind == _SPACE else f" {d} " if kind == _ISOLATE else d

    codes = np.empty(0x110000, np.int32)
    codes[0xD800:0xE000] = _KEEP
    table: Dict[int, str] = {}
    for c, out in zip(chars, normalized):
        final = "".join(spell(d) for d in out)
        code = ord(c)
        if final == c:
            kind = _KEEP
        elif final == "":
            kind = _DROP
        elif final == " ":
            kind = _SPACE
        elif final == f" {c} ":
            kind = _ISOLATE
        else:
            kind = _TABLE
            table[code] = final
        codes[code] = kind
    change = np.flatnonzero(np.diff(codes)) + 1
    starts = np.concatenate([[0], change]).astype(np.int32)
    keys = np.array(sorted(table), np.int64)
    values = np.array([table[k] for k in keys], object)
    return starts, codes[starts].astype(np.int32), keys, values


def _normalize_each(normalizer, chars: Sequence[str]) -> List[str]:
    """``normalizer`` applied to each character on its own (batched with ``|`` separators)."""
    out: List[str] = []
    for start in range(0, len(chars), _CHUNK):
        chunk = chars[start:start + _CHUNK]
        parts = normalizer.normalize_str("|".join(chunk)).split("|")
        if len(parts) != len(chunk) or any("|" in c for c in chunk):
            parts = [normalizer.normalize_str(c) for c in chunk]
        out.extend(parts)
    return out


def _pre_token_kinds(pre_tokenizer, chars: Sequence[str]) -> Dict[str, int]:
    """Characters the pre-tokenizer splits on (``_SPACE``) or isolates (``_ISOLATE``)."""
    kinds: Dict[str, int] = {}
    for start in range(0, len(chars), _CHUNK):
        chunk = chars[start:start + _CHUNK]
        text = "a" + "a".join(chunk) + "a"
        covered = np.zeros(len(text), bool)
        alone = np.zeros(len(text), bool)
        for _, (lo, hi) in pre_tokenizer.pre_tokenize_str(text):
            covered[lo:hi] = True
            if hi - lo == 1:
                alone[lo] = True
        for i, c in enumerate(chunk):
            at = 2 * i + 1
            if not covered[at]:
                kinds[c] = _SPACE
            elif alone[at]:
                kinds[c] = _ISOLATE
    return kinds


class CoreWordPiece(tf.Module):
    """Strings -> BERT inputs with core TensorFlow ops only (exported inside SavedModels).

    ``CoreWordPiece(tokenizer, max_length)(texts)``: ``texts`` string ``[batch]`` ->
    ``input_ids``, ``attention_mask``, ``token_type_ids``: int32 ``[batch, length]``, padded to the
    longest row, truncated to ``max_length`` with special tokens (the ids the Hugging Face fast
    tokenizer gives with ``padding=True, truncation=True``).
    """

    def __init__(self, tokenizer, max_length: int = 512, name: str = "wordpiece"):
        super().__init__(name=name)
        spec = wordpiece_spec(tokenizer)
        self.max_length = int(max_length)
        n_special = len(spec.prefix_ids) + len(spec.suffix_ids)
        if self.max_length <= n_special:
            raise ExportError(f"max_length={max_length} leaves no room for text between special tokens.")
        self._prefix, self._suffix = list(spec.prefix_ids), list(spec.suffix_ids)
        self._pad_id, self._unk_id = spec.pad_id, spec.unk_id
        self._cont = spec.prefix
        self._max_chars = spec.max_input_chars
        self._max_piece = max(len(t[len(spec.prefix):] if t.startswith(spec.prefix) else t)
                              for t in spec.vocab)
        self._run_starts = tf.constant(spec.run_starts)
        self._run_classes = tf.constant(spec.run_classes)
        self._sentinels = []
        tokens, ids = list(spec.vocab), [spec.vocab[t] for t in spec.vocab]
        for i, (literal, token_id) in enumerate(spec.special_literals):
            sentinel = chr(_SENTINEL_BASE + i)
            self._sentinels.append((literal, sentinel))
            tokens.append(sentinel)
            ids.append(token_id)
        isolate = [ord(s) for _, s in self._sentinels]
        self._sentinel_codes = tf.constant(isolate or [-1], tf.int32)
        self._vocab = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(tokens), tf.constant(ids, tf.int32)), -1)
        keys = spec.table_keys if len(spec.table_keys) else np.array([-1], np.int64)
        values = spec.table_values if len(spec.table_values) else np.array([""], object)
        self._changed = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(list(values), tf.string)), "")

    # --- the pieces ------------------------------------------------------------------------
    def normalize(self, texts: tf.Tensor) -> tf.Tensor:
        """string ``[batch]`` -> the text as the pre-tokenizer sees it, separators as spaces."""
        for literal, sentinel in self._sentinels:
            texts = tf.strings.regex_replace(texts, r"\Q" + literal + r"\E", sentinel)
        codes = tf.strings.unicode_decode(texts, "UTF-8", errors="replace")
        flat = codes.flat_values
        kind = tf.gather(self._run_classes, tf.searchsorted(self._run_starts, flat, side="right") - 1)
        is_sentinel = tf.reduce_any(flat[:, None] == self._sentinel_codes[None, :], axis=1)
        kind = tf.where(is_sentinel, _ISOLATE, kind)
        char = tf.strings.unicode_encode(flat[:, None], "UTF-8")
        piece = tf.where(
            kind == _KEEP, char,
            tf.where(kind == _DROP, "",
                     tf.where(kind == _SPACE, " ",
                              tf.where(kind == _ISOLATE, tf.strings.join([" ", char, " "]),
                                       self._changed.lookup(tf.cast(flat, tf.int64))))))
        return tf.strings.reduce_join(codes.with_flat_values(piece), axis=1)

    def words(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """string ``[batch]`` -> words ``[batch, (words)]``."""
        words = tf.strings.split(self.normalize(texts), sep=" ")
        return tf.ragged.boolean_mask(words, tf.strings.length(words) > 0)

    def word_pieces(self, words: tf.Tensor) -> tf.RaggedTensor:
        """Words string ``[n]`` -> WordPiece ids ``[n, (pieces)]`` (greedy longest match first)."""
        n = tf.shape(words)[0]
        lengths = tf.strings.length(words, unit="UTF8_CHAR")
        sizes = tf.range(1, self._max_piece + 1)
        grid = tf.stack([n, self._max_piece])
        wide_words = tf.broadcast_to(words[:, None], grid)
        wide_sizes = tf.broadcast_to(sizes[None, :], grid)

        def step(pos, alive, failed, pieces):
            starts = pos[:, None] + tf.zeros_like(wide_sizes)
            candidates = tf.strings.substr(wide_words, starts, wide_sizes, unit="UTF8_CHAR")
            marker = tf.where(pos > 0, self._cont, "")
            candidates = tf.strings.join([tf.broadcast_to(marker[:, None], grid), candidates])
            ids = self._vocab.lookup(candidates)
            fits = wide_sizes <= (lengths - pos)[:, None]
            best = tf.reduce_max(tf.where((ids >= 0) & fits, wide_sizes, 0), axis=1)
            found = best > 0
            best_id = tf.gather(ids, tf.maximum(best - 1, 0), batch_dims=1)
            emit = alive & found
            pieces = tf.concat([pieces, tf.where(emit, best_id, -1)[:, None]], axis=1)
            failed = failed | (alive & ~found)
            pos = pos + tf.where(emit, best, 0)
            alive = emit & (pos < lengths)
            return pos, alive, failed, pieces

        too_long = lengths > self._max_chars
        start = (tf.zeros_like(lengths), (lengths > 0) & ~too_long, too_long,
                 tf.zeros(tf.stack([n, 0]), tf.int32))
        _, _, failed, pieces = tf.while_loop(
            lambda pos, alive, failed, pieces: tf.reduce_any(alive), step, start,
            shape_invariants=(lengths.shape, lengths.shape, lengths.shape, tf.TensorShape([None, None])))
        pieces = tf.concat([pieces, -tf.ones(tf.stack([n, 1]), tf.int32)], axis=1)
        first = tf.where(failed, self._unk_id, pieces[:, 0])
        rest = tf.where(failed[:, None], -1, pieces[:, 1:])
        pieces = tf.concat([first[:, None], rest], axis=1)
        return tf.ragged.boolean_mask(pieces, pieces >= 0)

    def token_ids(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """string ``[batch]`` -> ids without special tokens or truncation ``[batch, (tokens)]``."""
        words = self.words(texts)
        pieces = self.word_pieces(words.flat_values)
        return words.with_flat_values(pieces).merge_dims(1, 2)

    def __call__(self, texts: tf.Tensor) -> Dict[str, tf.Tensor]:
        texts = tf.reshape(tf.convert_to_tensor(texts, tf.string), [-1])
        room = self.max_length - len(self._prefix) - len(self._suffix)
        ids = self.token_ids(texts)[:, :room]
        batch = tf.shape(texts)[0]
        parts = []
        if self._prefix:
            parts.append(tf.RaggedTensor.from_tensor(tf.tile(tf.constant([self._prefix]), [batch, 1])))
        parts.append(ids)
        if self._suffix:
            parts.append(tf.RaggedTensor.from_tensor(tf.tile(tf.constant([self._suffix]), [batch, 1])))
        ids = tf.concat(parts, axis=1) if len(parts) > 1 else ids
        input_ids = ids.to_tensor(default_value=self._pad_id)
        attention_mask = tf.ones_like(ids).to_tensor(default_value=0)
        return {"input_ids": input_ids, "attention_mask": attention_mask,
                "token_type_ids": tf.zeros_like(input_ids)}
