"""Text corpora -> tokenized ``tf.data`` pipelines for masked-language modelling.

:func:`text_dataset` streams text from files, folders, Python strings or a ``tf.data.Dataset`` of
strings, tokenizes it with a Hugging Face fast tokenizer in batches of lines, and yields batches
``{"input_ids": int32 [batch, max_length], "attention_mask": int32 [batch, max_length]}`` that
:class:`keras_ssl.text.MaskedLanguageModel` consumes. :func:`iter_documents` is the shared reader.
"""

from __future__ import annotations

import copy
import itertools
import os
import warnings
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from keras_ssl.backend import tf

Source = Union[str, "os.PathLike[str]"]
Sources = Union[Source, Sequence[Union[Source, tf.data.Dataset]], tf.data.Dataset]

MODES = ("pack", "line")
ENCODING_ERRORS = ("replace", "strict", "ignore")
MIN_LENGTH = 8
_SANE_MAX_POSITIONS = 1_000_000  # tokenizers without a limit report model_max_length ~1e30
_CHUNK_BYTES = 1 << 20
_BOM = "\ufeff"


class CorpusDecodeError(UnicodeDecodeError):
    """A file of the corpus is not valid UTF-8 (raised with ``encoding_errors="strict"``)."""

    def __init__(self, where: str, line: int, error: UnicodeDecodeError):
        super().__init__(error.encoding, error.object, error.start, error.end, error.reason)
        self.where = where
        self.line = line

    def __str__(self) -> str:
        return (
            f"{self.where}, line {self.line}: not valid UTF-8 ({super().__str__()}). Fix: re-encode it as "
            "UTF-8 (e.g. `iconv -f latin1 -t utf-8`), or pass encoding_errors='replace' to decode "
            "undecodable bytes as U+FFFD."
        )


# --- reading sources -------------------------------------------------------------------------


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _looks_binary(path: str) -> bool:
    with open(path, "rb") as f:
        return b"\0" in f.read(8192)


def _folder_files(folder: str) -> List[str]:
    """Every non-hidden file under ``folder``, recursively, sorted by path; binary files skipped."""
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not _is_hidden(d)]
        found.extend(os.path.join(root, name) for name in names if not _is_hidden(name))
    files = []
    for path in sorted(found, key=lambda p: os.path.relpath(p, folder).split(os.sep)):
        if _looks_binary(path):
            warnings.warn(f"Skipping {path}: it looks binary (has NUL bytes), not text.", stacklevel=5)
            continue
        files.append(path)
    return files


def _path_item(path: str) -> List[Tuple[str, object]]:
    if os.path.isdir(path):
        return [("file", f) for f in _folder_files(path)]
    if os.path.isfile(path):
        return [("file", path)]
    raise FileNotFoundError(
        f"No such file or folder: {path!r}. Fix: pass an existing file or folder; to use a string as "
        "text rather than a path, pass a list of strings, e.g. [text]."
    )


def _looks_like_path(text: str) -> bool:
    return (
        bool(text)
        and not any(c.isspace() for c in text)
        and (os.sep in text or "/" in text or os.path.splitext(text)[1].lower() in _TEXT_SUFFIXES)
    )


_TEXT_SUFFIXES = {".txt", ".text", ".md", ".raw", ".tokens", ".csv", ".tsv", ".json", ".jsonl", ".rst"}


def _resolve(sources: Sources) -> List[Tuple[str, object]]:
    """Expand ``sources`` into ``(kind, value)`` items: ``file`` paths, ``text`` strings, ``dataset``."""
    if isinstance(sources, tf.data.Dataset):
        return [("dataset", _check_dataset(sources))]
    if isinstance(sources, (str, os.PathLike)):
        return _path_item(os.fspath(sources))
    if not isinstance(sources, (list, tuple)):
        raise TypeError(
            f"sources must be a path, a list of paths and/or strings, or a tf.data.Dataset of strings; got "
            f"{type(sources).__name__}. Fix: wrap an iterable of strings in list(...)."
        )
    if not sources:
        raise ValueError(
            "The corpus is empty: `sources` is an empty list. Fix: pass files, folders, strings of text, "
            "or a tf.data.Dataset of strings."
        )
    items: List[Tuple[str, object]] = []
    for source in sources:
        if isinstance(source, os.PathLike):
            items.extend(_path_item(os.fspath(source)))
        elif isinstance(source, str):
            if os.path.exists(source):
                items.extend(_path_item(source))
            elif _looks_like_path(source):
                raise FileNotFoundError(
                    f"No such file or folder: {source!r} (it looks like a path, not text). Fix: correct "
                    "the path; text to train on should contain at least one space."
                )
            else:
                items.append(("text", source))
        elif isinstance(source, tf.data.Dataset):
            items.append(("dataset", _check_dataset(source)))
        else:
            raise TypeError(
                f"Each source must be a path, a string of text or a tf.data.Dataset; got "
                f"{type(source).__name__}. Fix: decode bytes to str, convert other objects to str."
            )
    return items


def _check_dataset(dataset: tf.data.Dataset) -> tf.data.Dataset:
    spec = dataset.element_spec
    if not (isinstance(spec, tf.TensorSpec) and spec.dtype == tf.string and spec.shape.rank == 0):
        raise ValueError(
            f"A tf.data.Dataset source must yield scalar tf.string elements; this one yields {spec}. Fix: "
            "select the text, e.g. `ds.map(lambda x: x['text'])`, or `ds.unbatch()` a batched dataset."
        )
    return dataset


def _decode_lines(data: bytes, first_line: int, where: str, errors: str) -> Tuple[bool, int]:
    """Line-by-line decode of ``data`` (after a failed whole-block decode): (has_text, bad_lines)."""
    has_text, bad = False, 0
    for offset, raw in enumerate(data.split(b"\n")):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            if errors == "strict":
                raise CorpusDecodeError(where, first_line + offset, error) from None
            bad += 1
            text = raw.decode("utf-8", errors=errors)
        has_text = has_text or bool(text.replace(_BOM, "").strip())
    return has_text, bad


def _scan_file(path: str, errors: str) -> Tuple[bool, int]:
    """Read ``path`` once in 1 MiB blocks: (has a non-blank line, number of undecodable lines)."""
    has_text, bad, line, rest = False, 0, 1, b""
    with open(path, "rb") as f:
        while True:
            block = f.read(_CHUNK_BYTES)
            data = rest + block
            if block:
                cut = data.rfind(b"\n") + 1
                data, rest = data[:cut], data[cut:]
            else:
                rest = b""
            if data:
                try:
                    text = data.decode("utf-8")
                    has_text = has_text or bool(text.replace(_BOM, "").strip())
                except UnicodeDecodeError:
                    block_text, block_bad = _decode_lines(data.rstrip(b"\n"), line, path, errors)
                    has_text, bad = has_text or block_text, bad + block_bad
                line += data.count(b"\n")
            if not block:
                return has_text, bad


def _bad_lines_warning(where: str, bad: int, errors: str) -> None:
    how = "U+FFFD" if errors == "replace" else "nothing (dropped)"
    warnings.warn(
        f"{where}: {bad} line(s) are not valid UTF-8; their undecodable bytes were replaced by {how} and the "
        "rest of the text is used. Re-encode the file as UTF-8 to silence this, or pass "
        "encoding_errors='strict' to make it an error.",
        UnicodeWarning,
        stacklevel=4,
    )


def _non_blank(text: str) -> bool:
    return bool(text.strip())


def _dataset_documents(dataset, errors: str, warn: bool) -> Iterator[str]:
    bad = 0
    for index, value in enumerate(dataset.as_numpy_iterator()):
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError as error:
            if errors == "strict":
                raise CorpusDecodeError("tf.data.Dataset source", index + 1, error) from None
            bad += 1
            text = value.decode("utf-8", errors=errors)
        if _non_blank(text):
            yield text
    if bad and warn:
        _bad_lines_warning("tf.data.Dataset source", bad, errors)


def _file_documents(path: str, errors: str) -> Iterator[str]:
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            raw = raw.rstrip(b"\n").rstrip(b"\r")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                if errors == "strict":
                    raise CorpusDecodeError(path, number, error) from None
                text = raw.decode("utf-8", errors=errors)
            if number == 1 and text.startswith(_BOM):
                text = text[1:]
            if _non_blank(text):
                yield text


def _documents(items, errors: str, warn_datasets: bool = True) -> Iterator[str]:
    for kind, value in items:
        if kind == "file":
            yield from _file_documents(value, errors)
        elif kind == "text":
            if _non_blank(value):
                yield value
        else:
            yield from _dataset_documents(value, errors, warn_datasets)


def _scan(items, errors: str) -> None:
    """Eager checks: every file decodes (warn once per file / raise) and the corpus has some text."""
    has_text = False
    for kind, value in items:
        if kind == "file":
            file_text, bad = _scan_file(value, errors)
            has_text = has_text or file_text
            if bad:
                _bad_lines_warning(value, bad, errors)
        elif kind == "text":
            has_text = has_text or _non_blank(value)
        elif not has_text:  # a dataset: read only until its first non-blank element
            has_text = next(_dataset_documents(value, errors, warn=False), None) is not None
    if not has_text:
        files = [v for k, v in items if k == "file"]
        if not items:
            what = "no files were found (hidden and binary files are skipped)"
        elif files:
            shown = ", ".join(files[:3]) + (", ..." if len(files) > 3 else "")
            what = f"every line of the {len(files)} file(s) ({shown}) and every other source is blank"
        else:
            what = "every document is blank (empty or whitespace only)"
        raise ValueError(f"The corpus is empty: {what}. Fix: point `sources` at files or strings with text.")


def _check_errors_arg(encoding_errors: str) -> None:
    if encoding_errors not in ENCODING_ERRORS:
        raise ValueError(f"encoding_errors must be one of {ENCODING_ERRORS}, got {encoding_errors!r}.")


def iter_documents(sources: Sources, encoding_errors: str = "replace") -> Iterator[str]:
    """Stream the non-blank documents of ``sources`` as ``str``, in order, without loading the corpus.

    ``sources``: a file path; a folder (every non-hidden file under it, recursively, sorted by
    path, ``a/b.txt`` before ``c.txt``; files with NUL bytes are skipped with a warning); a list
    mixing those with strings; or a ``tf.data.Dataset`` of scalar ``tf.string``.

    Documents: each line of a file (``\\n`` or ``\\r\\n`` endings, UTF-8, a leading BOM dropped);
    each string of a list (newlines kept); each dataset element. Blank (whitespace-only)
    documents are skipped.

    Paths vs text: a top-level ``str``/``PathLike`` is always a path. In a list, ``os.PathLike``
    items are always paths; a ``str`` is a path if it names an existing file or folder, otherwise
    text, except that a string with no whitespace containing ``/`` or ending in a text-file suffix
    (``.txt``, ``.md``, ...) is taken for a mistyped path and raises ``FileNotFoundError``.

    Checked eagerly, at call time: missing paths, that every file decodes, that some document is
    non-blank (files are read once, without tokenizing; a dataset only up to its first non-blank
    element). Undecodable bytes: ``encoding_errors="replace"`` (default) decodes them as U+FFFD and
    warns (``UnicodeWarning``) once per file with the number of bad lines, ``"ignore"`` drops them
    (same warning), ``"strict"`` raises :class:`CorpusDecodeError` (a ``UnicodeDecodeError``, so a
    ``ValueError``) naming the file and line. For a dataset source these happen lazily, while reading.
    """
    _check_errors_arg(encoding_errors)
    items = _resolve(sources)
    _scan(items, encoding_errors)
    return _documents(items, encoding_errors)


# --- tokenizing --------------------------------------------------------------------------------


def _check_tokenizer(tokenizer) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"text_dataset needs a Hugging Face *fast* tokenizer; got {type(tokenizer).__name__}. Fix: "
            "load it with `AutoTokenizer.from_pretrained(name, use_fast=True)` or use the Fast class "
            "(e.g. BertTokenizerFast); wrap a `tokenizers.Tokenizer` in "
            "`PreTrainedTokenizerFast(tokenizer_object=...)`."
        )


def _position_limit(tokenizer, max_positions: Optional[int]) -> Optional[int]:
    if max_positions is not None:
        return int(max_positions)
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, (int, float)) and 0 < limit < _SANE_MAX_POSITIONS:
        return int(limit)
    return None


def _batches(iterable, size: int) -> Iterator[list]:
    iterator = iter(iterable)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _in_validation(index, fraction: float):
    """Example ``i`` is a validation example iff ``floor((i + 1) f) > floor(i f)``."""
    return np.floor((index + 1) * fraction) > np.floor(index * fraction)


def _pack_blocks(tokenizer, documents, max_length: int, batch_lines: int) -> Iterator[np.ndarray]:
    """``int32 [n, max_length]`` blocks of the concatenated token stream (``group_texts``)."""
    rest = np.zeros([0], np.int32)
    for lines in _batches(documents, batch_lines):
        encoded = tokenizer(lines, add_special_tokens=True, return_attention_mask=False, verbose=False)
        ids = encoded["input_ids"]
        stream = np.concatenate([rest, np.fromiter(itertools.chain.from_iterable(ids), np.int32)])
        count = len(stream) // max_length
        rest = stream[count * max_length :]
        if count:
            yield stream[: count * max_length].reshape(count, max_length)


def _line_examples(tokenizer, documents, max_length: int, batch_lines: int) -> Iterator[Tuple]:
    for lines in _batches(documents, batch_lines):
        encoded = tokenizer(
            lines,
            add_special_tokens=True,
            truncation=True,
            max_length=max_length,
            padding="max_length",
            return_attention_mask=True,
            return_tensors="np",
            verbose=False,
        )
        yield encoded["input_ids"].astype(np.int32), encoded["attention_mask"].astype(np.int32)


def text_dataset(
    sources: Sources,
    tokenizer,
    max_length: int = 128,
    batch_size: int = 32,
    validation_split: float = 0.0,
    mode: str = "pack",
    shuffle: bool = True,
    shuffle_buffer: int = 10_000,
    seed: int = 0,
    cache: Union[bool, str] = True,
    drop_remainder: bool = False,
    encoding_errors: str = "replace",
    tokenize_batch_lines: int = 1000,
    max_positions: Optional[int] = None,
) -> Union[tf.data.Dataset, Tuple[tf.data.Dataset, tf.data.Dataset]]:
    """Tokenize a text corpus into batches for masked-language modelling.

    Elements: ``{"input_ids": int32 [batch, max_length], "attention_mask": int32 [batch, max_length]}``
    with static shape ``[None, max_length]`` (``[batch_size, max_length]`` if ``drop_remainder``).

    ``sources``: files, folders, strings or a ``tf.data.Dataset`` of strings; see
    :func:`iter_documents` for how they are read (one document per non-blank line of a file, per
    string, per dataset element), how paths and text are told apart, and the undecodable-bytes
    policy (``encoding_errors``: ``"replace"`` warns once per file, ``"strict"`` raises). The corpus
    is streamed: read line by line and tokenized ``tokenize_batch_lines`` documents at a time.

    ``mode="pack"`` (transformers' ``run_mlm`` ``group_texts``): each document is tokenized with its
    special tokens (``[CLS] ... [SEP]``), the token stream is concatenated across documents and cut
    into blocks of exactly ``max_length``; only the final short remainder of the corpus is dropped
    (the remainder carries across tokenize batches). ``attention_mask`` is all ones.
    ``mode="line"``: each document is one example, truncated to ``max_length`` (special tokens
    kept) and padded with the pad token; ``attention_mask`` is 0 on padding.

    ``validation_split=f`` in (0, 1) returns ``(train, validation)``: example ``i`` (block or
    document, in corpus order) is a validation example iff ``floor((i + 1) f) > floor(i f)``, so
    ``floor(n f)`` of ``n`` examples, spread evenly and deterministically (``0``: one dataset, no
    split). Validation is never shuffled. Train is shuffled per example with ``seed``
    (``shuffle_buffer`` examples, reshuffled each epoch, the same sequence of orders for the same
    seed). ``cache=True`` keeps the tokenized examples in memory after the first pass; a string
    caches them in files with that prefix (for corpora larger than memory), ``False`` re-tokenizes
    every epoch. With a split in pack mode, each of the two pipelines tokenizes the corpus on its
    first pass. Then both are batched and prefetched.

    Raises (at call time) ``ValueError`` for an empty or all-blank corpus, a too-short corpus in
    pack mode (fewer than ``max_length`` tokens), ``max_length`` < 8 or above the position limit
    (``max_positions`` if given, else ``tokenizer.model_max_length`` when below 1e6), ``batch_size``
    < 1, an unknown ``mode``, a slow tokenizer; ``FileNotFoundError`` for a missing path.
    """
    _check_tokenizer(tokenizer)
    if mode not in MODES:
        raise ValueError(f"Unknown mode {mode!r}. Fix: use mode='pack' (fixed blocks) or mode='line'.")
    _check_errors_arg(encoding_errors)
    if int(max_length) < MIN_LENGTH:
        raise ValueError(f"max_length must be at least {MIN_LENGTH}, got {max_length}. Fix: use e.g. 128.")
    max_length = int(max_length)
    limit = _position_limit(tokenizer, max_positions)
    if limit is not None and max_length > limit:
        raise ValueError(
            f"max_length={max_length} exceeds the model's position limit of {limit} tokens (positions "
            f"beyond it have no embedding). Fix: pass max_length <= {limit}"
            + ("." if max_positions is not None else ", or max_positions=... if the model allows more.")
        )
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    if not 0.0 <= float(validation_split) < 1.0:
        raise ValueError(
            f"validation_split must be in [0, 1), got {validation_split}. Fix: e.g. 0.05 for 5% validation."
        )
    if int(tokenize_batch_lines) < 1 or int(shuffle_buffer) < 1:
        raise ValueError("tokenize_batch_lines and shuffle_buffer must be at least 1.")
    if mode == "line" and tokenizer.pad_token_id is None:
        raise ValueError(
            f"mode='line' pads examples but the tokenizer {type(tokenizer).__name__} has no pad token. "
            "Fix: set one (e.g. `tokenizer.pad_token = tokenizer.eos_token`) or use mode='pack'."
        )
    batch_size, batch_lines, fraction = int(batch_size), int(tokenize_batch_lines), float(validation_split)

    items = _resolve(sources)
    _scan(items, encoding_errors)
    if mode == "pack":
        _check_fills_a_block(tokenizer, items, encoding_errors, max_length, batch_lines)

    def generate(part: str):
        tok = copy.deepcopy(tokenizer)  # a private copy: the two splits may tokenize concurrently
        documents = _documents(items, encoding_errors)
        start = 0
        if mode == "line":
            if part != "all":  # select documents before tokenizing: example index == document index
                want = part == "val"
                documents = (d for i, d in enumerate(documents) if bool(_in_validation(i, fraction)) == want)
            for ids, mask in _line_examples(tok, documents, max_length, batch_lines):
                yield {"input_ids": ids, "attention_mask": mask}
            return
        for blocks in _pack_blocks(tok, documents, max_length, batch_lines):
            if part != "all":
                keep = _in_validation(np.arange(start, start + len(blocks)), fraction) == (part == "val")
                start += len(blocks)
                blocks = blocks[keep]
            if len(blocks):
                yield {"input_ids": blocks, "attention_mask": np.ones_like(blocks)}

    spec = tf.TensorSpec([None, max_length], tf.int32)
    signature = {"input_ids": spec, "attention_mask": spec}

    def pipeline(part: str, shuffled: bool) -> tf.data.Dataset:
        ds = tf.data.Dataset.from_generator(lambda: generate(part), output_signature=signature).unbatch()
        if isinstance(cache, str):
            ds = ds.cache(f"{cache}-{part}")
        elif cache:
            ds = ds.cache()
        if shuffled:
            ds = ds.shuffle(int(shuffle_buffer), seed=seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)

    if fraction == 0.0:
        return pipeline("all", shuffle)
    return pipeline("train", shuffle), pipeline("val", False)


def _check_fills_a_block(tokenizer, items, errors: str, max_length: int, batch_lines: int) -> None:
    """Pack mode: tokenize the start of the corpus until one block is full, or fail clearly."""
    total = 0
    for lines in _batches(_documents(items, errors, warn_datasets=False), min(batch_lines, 64)):
        total += sum(map(len, tokenizer(lines, add_special_tokens=True, verbose=False)["input_ids"]))
        if total >= max_length:
            return
    raise ValueError(
        f"The corpus is too short for one block: it has {total} tokens but mode='pack' cuts blocks of "
        f"max_length={max_length}. Fix: add text, lower max_length (>= {MIN_LENGTH}), or use mode='line'."
    )


__all__ = ["CorpusDecodeError", "iter_documents", "text_dataset"]
