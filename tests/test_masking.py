"""Statistical and behavioural proofs for ``keras_ssl.text.masking.TokenMasker``.

The statistics run on all of the pydoc text tokenized with the real MiniLM WordPiece tokenizer
(~128k maskable tokens per masking pass, several passes). Every rate is checked against its exact
expectation with a ``Z``-sigma bound computed from the counts: binomial where the draws are
independent, cluster-robust (by word, or by row) where they are not.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from keras_ssl.backend import tf
from keras_ssl.text.masking import IGNORE_INDEX, TokenMasker, _solve_span_start_rate
from keras_ssl.text.vocabulary import VocabularyInfo, is_continuation

Z = 5.0  # sigmas: a false alarm has probability ~6e-7 per check
SEED = 1234
STEPS = (0, 1, 2, 3)  # masking passes over the text (fresh, independent masks at each step)

# --------------------------------------------------------------------------------------------
# Statistics helpers


def assert_binomial(k, n, p, what=""):
    """``k`` successes out of ``n`` independent Bernoulli(p) trials, within ``Z`` sigmas."""
    k, n = float(k), float(n)
    sigma = math.sqrt(n * p * (1.0 - p))
    assert n > 0
    assert abs(k - n * p) <= Z * sigma + 1e-9, (
        f"{what}: {k:.0f}/{n:.0f} = {k / n:.5f}, expected {p:.5f} +- {Z * sigma / n:.5f} ({Z} sigma)"
    )


def assert_cluster_ratio(num, den, p, what=""):
    """Ratio ``sum(num) / sum(den)`` of independent clusters (rows, words) equals ``p``.

    Cluster-robust bound: under the null, ``sum(num - p den)`` has variance ``sum((num - p den)^2)``
    estimated from the clusters themselves, valid however the draws inside a cluster correlate.
    """
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    total = den.sum()
    sigma = math.sqrt(np.sum((num - p * den) ** 2))
    rate = num.sum() / total
    assert abs(num.sum() - p * total) <= Z * sigma + 1e-9, (
        f"{what}: {rate:.5f}, expected {p:.5f} +- {Z * sigma / total:.5f} ({Z} sigma, clustered)"
    )
    return rate


def assert_same_rate(k1, n1, k2, n2, what=""):
    """Two independent binomial samples share their rate (pooled two-sample z-test)."""
    p = (k1 + k2) / (n1 + n2)
    sigma = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    assert abs(k1 / n1 - k2 / n2) <= Z * sigma, (
        f"{what}: {k1 / n1:.5f} vs {k2 / n2:.5f}, allowed difference {Z * sigma:.5f}"
    )


def chi2_limit(dof: int, z: float = Z) -> float:
    """Upper ``z``-sigma quantile of chi-square(dof), Wilson-Hilferty approximation."""
    return dof * (1 - 2 / (9 * dof) + z * math.sqrt(2 / (9 * dof))) ** 3


def outcome(original, masked, labels, mask_id):
    """Boolean arrays (selected, became mask, became another token, kept) of one masking."""
    selected = labels != IGNORE_INDEX
    to_mask = selected & (masked == mask_id)
    kept = selected & (masked == original)
    to_random = selected & ~to_mask & ~kept
    return selected, to_mask, to_random, kept


def run_masker(masker, blocks, steps=STEPS, **kwargs):
    """Stack the maskings of ``blocks`` at several steps: (original, masked, labels) numpy arrays."""
    masked, labels = [], []
    for step in steps:
        out = masker(blocks, step=step, **kwargs)
        masked.append(out["input_ids"].numpy())
        labels.append(out["labels"].numpy())
    original = np.concatenate([blocks] * len(steps))
    return original, np.concatenate(masked), np.concatenate(labels)


def check_basic_invariants(original, masked, labels, maskable):
    selected = labels != IGNORE_INDEX
    assert not np.any(selected & ~maskable), "a special token or padding was selected"
    np.testing.assert_array_equal(labels[selected], original[selected])
    assert np.all(labels[~selected] == IGNORE_INDEX)
    np.testing.assert_array_equal(masked[~selected], original[~selected])


def check_token_rates(original, masked, labels, maskable, vocab, rate, mask_rate, random_rate):
    """Selection rate and mask/random/keep split for independent per-token decisions."""
    selected, to_mask, to_random, kept = outcome(original, masked, labels, vocab.mask_token_id)
    n_maskable, n_sel = int(maskable.sum()), int(selected.sum())
    assert_binomial(n_sel, n_maskable, rate, "selection rate")
    # A random replacement equals the original with probability 1/n: it then looks "kept".
    same = 1.0 / len(vocab.replacement_ids)
    keep_rate = 1.0 - mask_rate - random_rate
    assert_binomial(to_mask.sum(), n_sel, mask_rate, "mask-token share")
    assert_binomial(to_random.sum(), n_sel, random_rate * (1 - same), "random-token share")
    assert_binomial(kept.sum(), n_sel, keep_rate + random_rate * same, "kept share")
    return {
        "tokens": n_maskable,
        "selected": n_sel / n_maskable,
        "mask": to_mask.sum() / n_sel,
        "random": to_random.sum() / n_sel,
        "keep": kept.sum() / n_sel,
    }


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def vocab(minilm_tokenizer):
    return VocabularyInfo.from_tokenizer(minilm_tokenizer)


@pytest.fixture(scope="module")
def blocks(minilm_blocks):
    assert minilm_blocks.shape[0] * 126 >= 100_000 and minilm_blocks.shape[1] == 128
    return minilm_blocks


@pytest.fixture(scope="module")
def maskable(blocks, vocab):
    return ~vocab.special[blocks]


@pytest.fixture(scope="module")
def token_run(minilm_tokenizer, blocks):
    return run_masker(TokenMasker(minilm_tokenizer, seed=SEED), blocks)


@pytest.fixture(scope="module")
def hf_run(minilm_tokenizer, blocks):
    """Hugging Face's collator on the same blocks, two passes (seeds 1 and 2; HF ignores seed=0)."""
    import transformers

    masked, labels = [], []
    for seed in (1, 2):
        collator = transformers.DataCollatorForLanguageModeling(
            minilm_tokenizer, mlm_probability=0.15, return_tensors="np", seed=seed
        )
        out = collator([{"input_ids": row} for row in blocks])
        masked.append(out["input_ids"])
        labels.append(out["labels"])
    return np.concatenate([blocks] * 2), np.concatenate(masked), np.concatenate(labels)


@pytest.fixture(scope="module")
def bpe_tokenizers(pydoc_texts):
    """Small tokenizers trained offline on pydoc: byte-level BPE (Ġ), SentencePiece-style (▁),
    and a GPT-2-like byte-level BPE without a mask token."""
    import transformers
    from tokenizers import ByteLevelBPETokenizer, SentencePieceBPETokenizer

    def build(trained, **roles):
        """``trained`` (a ``tokenizers`` model) as a fast HF tokenizer with the given special roles."""
        return transformers.PreTrainedTokenizerFast(tokenizer_object=trained, unk_token="<unk>", **roles)

    bpe, spm = ByteLevelBPETokenizer(), SentencePieceBPETokenizer()
    for model, specials in ((bpe, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]),
                            (spm, ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"])):
        model.train_from_iterator(pydoc_texts, vocab_size=3000, min_frequency=2, special_tokens=specials,
                                  show_progress=False)
    return {
        "Ġ": build(bpe, bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>",
                   pad_token="<pad>", mask_token="<mask>"),
        "▁": build(spm, cls_token="[CLS]", sep_token="[SEP]", pad_token="<pad>", mask_token="[MASK]"),
        "gpt2_like": build(bpe, bos_token="<s>", eos_token="</s>"),
    }


# --------------------------------------------------------------------------------------------
# Token strategy: rates, invariants, replacements, Hugging Face


def test_default_rates_over_real_text(token_run, maskable, vocab):
    original, masked, labels = token_run
    maskable = np.concatenate([maskable] * len(STEPS))
    assert maskable.sum() >= 4 * 100_000
    check_basic_invariants(original, masked, labels, maskable)
    stats = check_token_rates(original, masked, labels, maskable, vocab, 0.15, 0.8, 0.1)
    print("\nkeras_ssl token masking:", {k: round(float(v), 5) for k, v in stats.items()})


def test_selection_rate_is_the_same_at_every_position(token_run, maskable):
    original, masked, labels = token_run
    selected = labels != IGNORE_INDEX
    # First, middle and last maskable positions: no boundary effect.
    for columns in (slice(1, 6), slice(60, 65), slice(122, 127)):
        assert_binomial(selected[:, columns].sum(), selected[:, columns].size, 0.15, f"columns {columns}")


def test_configurable_rates(minilm_tokenizer, blocks, maskable, vocab):
    masker = TokenMasker(
        minilm_tokenizer, mask_rate=0.3, mask_token_rate=0.5, random_token_rate=0.25, seed=SEED
    )
    original, masked, labels = run_masker(masker, blocks, steps=(0, 1))
    maskable = np.concatenate([maskable] * 2)
    check_basic_invariants(original, masked, labels, maskable)
    check_token_rates(original, masked, labels, maskable, vocab, 0.3, 0.5, 0.25)


@pytest.mark.parametrize("rates", [(1.0, 0.0), (0.0, 1.0), (0.0, 0.0)])
def test_extreme_splits(minilm_tokenizer, blocks, vocab, rates):
    mask_rate, random_rate = rates
    masker = TokenMasker(
        minilm_tokenizer, mask_token_rate=mask_rate, random_token_rate=random_rate, seed=SEED
    )
    original, masked, labels = run_masker(masker, blocks[:200], steps=(0,))
    selected, to_mask, to_random, kept = outcome(original, masked, labels, vocab.mask_token_id)
    assert selected.sum() > 3000
    assert np.array_equal(to_mask, selected) == (mask_rate == 1.0)
    if mask_rate == 0.0:
        assert not to_mask.any()
    if random_rate == 0.0:
        assert not to_random.any()
    if mask_rate == random_rate == 0.0:
        assert np.array_equal(kept, selected)


def test_special_tokens_and_padding_are_never_selected(minilm_tokenizer, blocks, vocab):
    rng = np.random.default_rng(0)
    ids = np.array(blocks[:400], np.int64)
    attention = np.ones_like(ids)
    lengths = rng.integers(2, 128, size=len(ids))
    lengths[::10] = 0  # fully padded rows
    for row, n in enumerate(lengths):
        if n:
            ids[row, n - 1] = minilm_tokenizer.sep_token_id
        ids[row, n:] = minilm_tokenizer.pad_token_id
        attention[row, n:] = 0
    # Padding that is not the pad id (garbage behind attention_mask = 0) is not selected either.
    garbage = ids.copy()
    garbage[attention == 0] = rng.integers(2000, 20000, size=int((attention == 0).sum()))
    # Mid-sequence special tokens: [SEP] [CLS] [MASK] [UNK] never selected.
    ids[1::7, 40] = minilm_tokenizer.sep_token_id
    ids[2::7, 41] = minilm_tokenizer.cls_token_id
    ids[3::7, 42] = minilm_tokenizer.mask_token_id
    ids[4::7, 43] = minilm_tokenizer.unk_token_id
    garbage[:, 40:44] = ids[:, 40:44]

    maskable = ~vocab.special[ids] & (attention == 1)
    for strategy in ("token", "whole_word", "span"):
        masker = TokenMasker(minilm_tokenizer, seed=SEED, strategy=strategy)
        for inputs, mask in ((ids, attention), (ids, None), (garbage, attention)):
            out = masker(inputs, mask, step=3)
            masked, labels = out["input_ids"].numpy(), out["labels"].numpy()
            assert out["input_ids"].dtype == tf.int64 and out["labels"].dtype == tf.int64
            check_basic_invariants(inputs, masked, labels, maskable)
            assert np.all(labels[lengths == 0] == IGNORE_INDEX)
            np.testing.assert_array_equal(masked[attention == 0], inputs[attention == 0])
            if mask is not None:
                np.testing.assert_array_equal(out["attention_mask"], mask)
        if strategy == "token":
            assert_binomial((labels != IGNORE_INDEX).sum(), maskable.sum(), 0.15, "rate with padding")


def test_random_replacements_come_from_the_real_vocabulary(token_run, minilm_tokenizer, vocab):
    tokens = minilm_tokenizer.convert_ids_to_tokens(list(range(len(minilm_tokenizer))))
    unused = np.array([bool(re.match(r"^\[unused\d+\]$", t)) for t in tokens])
    assert unused.sum() == 994 and vocab.special.sum() == 5
    allowed = ~vocab.special & ~unused
    np.testing.assert_array_equal(np.flatnonzero(allowed), vocab.replacement_ids)

    original, masked, labels = token_run
    _, _, to_random, _ = outcome(original, masked, labels, vocab.mask_token_id)
    drawn = masked[to_random]
    assert len(drawn) > 5000
    assert allowed[drawn].all(), "a random replacement is a special token or an [unusedN] placeholder"


def test_random_replacements_are_uniform(minilm_tokenizer, blocks, vocab):
    # Every maskable token selected and replaced by a random one: ~128k draws over 29523 ids.
    masker = TokenMasker(
        minilm_tokenizer, mask_rate=1.0, mask_token_rate=0.0, random_token_rate=1.0, seed=SEED
    )
    out = masker(blocks, step=0)
    labels = out["labels"].numpy()
    drawn = out["input_ids"].numpy()[labels != IGNORE_INDEX]
    n_ids = len(vocab.replacement_ids)
    position = np.searchsorted(vocab.replacement_ids, drawn)
    assert np.array_equal(vocab.replacement_ids[position], drawn), "drawn outside the allowed ids"
    counts = np.bincount(position, minlength=n_ids)
    expected = len(drawn) / n_ids
    # Per-id chi-square over all 29523 allowed ids (about 4.3 draws expected per id).
    chi2 = float(np.sum((counts - expected) ** 2) / expected)
    assert chi2 <= chi2_limit(n_ids - 1), f"chi2 {chi2:.0f} over {n_ids - 1} dof"
    # Distinct ids hit: n (1 - (1 - 1/n)^draws), nearly binomial.
    p_hit = 1 - (1 - 1 / n_ids) ** len(drawn)
    assert_binomial(np.count_nonzero(counts), n_ids, p_hit, "distinct ids drawn")
    # Coarse bins of the id range: no region of the vocabulary favoured.
    coarse = np.add.reduceat(counts, np.linspace(0, n_ids, 51).astype(int)[:-1])
    coarse_expected = np.diff(np.linspace(0, n_ids, 51).astype(int)) * expected
    chi2 = float(np.sum((coarse - coarse_expected) ** 2 / coarse_expected))
    assert chi2 <= chi2_limit(49), f"coarse chi2 {chi2:.1f} over 49 dof"


def test_matches_hugging_face_collator_rates(token_run, hf_run, maskable, vocab, minilm_tokenizer):
    size = len(minilm_tokenizer)
    ours = outcome(*token_run, vocab.mask_token_id)
    theirs = outcome(*hf_run, vocab.mask_token_id)
    n_ours = int(np.concatenate([maskable] * len(STEPS)).sum())
    n_theirs = int(np.concatenate([maskable] * 2).sum())
    # Hugging Face never selects special tokens either.
    assert not np.any(theirs[0] & ~np.concatenate([maskable] * 2))
    # Expected observed shares: HF draws the random token from all ids, [MASK] included.
    hf_expected = (0.8 + 0.1 / size, 0.1 * (1 - 2 / size), 0.1 + 0.1 / size)
    report = {}
    for name, (sel, *kinds), n, expected in (
        ("keras_ssl", ours, n_ours, None),
        ("hugging_face", theirs, n_theirs, hf_expected),
    ):
        k_sel = int(sel.sum())
        assert_binomial(k_sel, n, 0.15, f"{name} selection rate")
        if expected is not None:
            for kind, p, label in zip(kinds, expected, ("mask", "random", "keep")):
                assert_binomial(kind.sum(), k_sel, p, f"{name} {label} share")
        report[name] = [round(k_sel / n, 5)] + [round(kind.sum() / k_sel, 5) for kind in kinds]
    # Same rates as Hugging Face, sample against sample.
    assert_same_rate(ours[0].sum(), n_ours, theirs[0].sum(), n_theirs, "selection vs HF")
    for a, b, label in zip(ours[1:], theirs[1:], ("mask", "random", "keep")):
        assert_same_rate(a.sum(), ours[0].sum(), b.sum(), theirs[0].sum(), f"{label} vs HF")
    print("\n[selected, mask, random, keep]:", report)
    # Unlike Hugging Face (which draws from all 30522 ids), ours never draws a special/unused id.
    allowed = np.zeros(size, bool)
    allowed[vocab.replacement_ids] = True
    assert allowed[token_run[1][ours[2]]].all()


def test_matches_hugging_face_with_non_default_rates(minilm_tokenizer, blocks, maskable, vocab):
    import transformers

    collator = transformers.DataCollatorForLanguageModeling(
        minilm_tokenizer,
        mlm_probability=0.3,
        mask_replace_prob=0.5,
        random_replace_prob=0.25,
        return_tensors="np",
        seed=3,
    )
    hf = collator([{"input_ids": row} for row in blocks])
    theirs = outcome(blocks, hf["input_ids"], hf["labels"], vocab.mask_token_id)
    masker = TokenMasker(
        minilm_tokenizer, mask_rate=0.3, mask_token_rate=0.5, random_token_rate=0.25, seed=SEED
    )
    ours = outcome(*run_masker(masker, blocks, steps=(5,)), vocab.mask_token_id)
    n = int(maskable.sum())
    assert_same_rate(ours[0].sum(), n, theirs[0].sum(), n, "selection vs HF (0.3)")
    for a, b, label in zip(ours[1:], theirs[1:], ("mask", "random", "keep")):
        assert_same_rate(a.sum(), ours[0].sum(), b.sum(), theirs[0].sum(), f"{label} vs HF (0.5/0.25)")


# --------------------------------------------------------------------------------------------
# Whole-word masking


def reference_words(tokens_of_ids, ids, special, marker=None):
    """Word index of every position, computed from the token strings, independently of keras_ssl.

    WordPiece (``marker=None``): a piece starting with ``##`` continues the word. Prefix
    vocabularies: a piece starting with ``marker`` starts a word, any other piece continues it.
    Special tokens are words of their own and the piece after one starts a word.
    """
    tokens = np.asarray(tokens_of_ids, dtype=object)[ids]
    if marker is None:
        continues = np.vectorize(lambda t: t.startswith("##"), otypes=[bool])(tokens)
    else:
        continues = np.vectorize(lambda t: not t.startswith(marker), otypes=[bool])(tokens)
    is_special = special[ids]
    after_special = np.pad(is_special[:, :-1], ((0, 0), (1, 0)), constant_values=True)
    starts = ~continues | is_special | after_special
    return np.cumsum(starts, axis=1) + (np.arange(len(ids)) * ids.shape[1])[:, None]


def check_whole_word(tokenizer, blocks, steps, marker=None, min_multi_piece_words=3000):
    vocab = VocabularyInfo.from_tokenizer(tokenizer)
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    masker = TokenMasker(tokenizer, seed=SEED, strategy="whole_word")
    maskable = ~vocab.special[blocks]
    words = reference_words(tokens, blocks, vocab.special, marker).ravel()
    _, word_index, word_len = np.unique(words, return_inverse=True, return_counts=True)
    word_maskable = np.bincount(word_index, maskable.ravel()) > 0
    assert np.sum((word_len > 1) & word_maskable) >= min_multi_piece_words
    n_words = len(word_len)
    same = 1.0 / len(vocab.replacement_ids)
    totals = {"sel": [], "den": [], "mask": 0, "random": 0, "keep": 0, "words": 0}
    for step in steps:
        out = masker(blocks, step=step)
        masked, labels = out["input_ids"].numpy(), out["labels"].numpy()
        check_basic_invariants(blocks, masked, labels, maskable)
        sel, to_mask, _, kept = (a.ravel() for a in outcome(blocks, masked, labels, vocab.mask_token_id))
        n_sel = np.bincount(word_index, sel, minlength=n_words)
        n_mask = np.bincount(word_index, to_mask, minlength=n_words)
        n_kept = np.bincount(word_index, kept, minlength=n_words)
        # All pieces of a word are selected together (every continuation iff its word start).
        assert np.all((n_sel == 0) | (n_sel == word_len)), "a word was partly selected"
        chosen = n_sel > 0
        # One mask/random/keep decision per word: a [MASK]ed word is [MASK] in every piece.
        assert np.all((n_mask[chosen] == 0) | (n_mask[chosen] == word_len[chosen]))
        # Random-kind words change every piece (a piece may by chance draw its own id back).
        not_mask = chosen & (n_mask == 0)
        partly_kept = not_mask & (n_kept > 0) & (n_kept < word_len)
        assert partly_kept.sum() <= 3, f"{partly_kept.sum()} words both kept and replaced"
        totals["sel"].append(n_sel)
        totals["den"].append(np.bincount(word_index, maskable.ravel(), minlength=n_words))
        totals["words"] += int(chosen.sum())
        totals["mask"] += int((chosen & (n_mask == word_len)).sum())
        totals["keep"] += int((not_mask & (n_kept == word_len)).sum())
        totals["random"] += int((not_mask & (n_kept < word_len)).sum())
    # Token-level selection rate, clustered by word (a word's pieces are selected together).
    rate = assert_cluster_ratio(
        np.concatenate(totals["sel"]), np.concatenate(totals["den"]), 0.15, "whole-word token rate"
    )
    # Word-level split: independent per word.
    k = totals["words"]
    assert_binomial(totals["mask"], k, 0.8, "whole-word mask share")
    assert_binomial(totals["random"], k, 0.1 * (1 - same), "whole-word random share")
    assert_binomial(totals["keep"], k, 0.1 + 0.1 * same, "whole-word keep share")
    return vocab, rate


def test_whole_word_on_wordpiece(minilm_tokenizer, blocks):
    vocab, rate = check_whole_word(minilm_tokenizer, blocks, steps=(0, 1), marker=None)
    assert vocab.word_scheme == "wordpiece"
    print(f"\nwhole-word token rate (WordPiece): {rate:.5f}")


@pytest.mark.parametrize("marker", ["Ġ", "▁"])
def test_whole_word_on_prefix_vocabularies(bpe_tokenizers, pack_text, marker):
    tokenizer = bpe_tokenizers[marker]
    blocks = pack_text(tokenizer, 128)
    assert blocks.size >= 100_000
    # No control-like "<...>" piece outside the specials occurs in the text: plain prefix rule.
    tokens = tokenizer.convert_ids_to_tokens(np.unique(blocks).tolist())
    specials = set(tokenizer.all_special_tokens)
    assert not [t for t in tokens if t.startswith("<") and t.endswith(">") and t not in specials]
    vocab, _ = check_whole_word(tokenizer, blocks, steps=(0, 1), marker=marker)
    assert vocab.word_scheme == "prefix"


def test_prefix_scheme_details():
    assert not is_continuation("Ġthe", "prefix") and is_continuation("ing", "prefix")
    assert not is_continuation("▁the", "prefix") and is_continuation("ing", "prefix")
    assert not is_continuation("<unk>", "prefix")
    # SentencePiece byte-fallback pieces spell characters inside the word before them.
    assert is_continuation("<0xC3>", "prefix") and is_continuation("<0xa9>", "prefix")
    assert is_continuation("##ing", "wordpiece") and not is_continuation("the", "wordpiece")
    assert not is_continuation("##ing", "none")


# --------------------------------------------------------------------------------------------
# Span masking


def span_theory(rate, span_p, max_len, n_max=400):
    """Exact run-length law of the union of spans, and the stationary coverage.

    ``R_i`` (how many positions the spans started so far still cover from ``i`` on) is a Markov
    chain: ``R_i = max(R_{i-1} - 1, X_i)`` with ``X_i = L`` (clipped geometric) with probability
    ``s`` (a span starts at ``i``) and 0 otherwise; position ``i`` is selected iff ``R_i > 0``.
    """
    s = _solve_span_start_rate(rate, span_p, max_len)
    q = np.array([span_p * (1 - span_p) ** (k - 1) for k in range(1, max_len + 1)])
    q[-1] = (1 - span_p) ** (max_len - 1)  # clipped at max_len
    x = np.concatenate([[1 - s], s * q])  # law of X over 0..max_len
    trans = np.zeros((max_len + 1, max_len + 1))
    for r in range(max_len + 1):
        for v, p in enumerate(x):
            trans[r, max(r - 1, v)] += p
    evals, evecs = np.linalg.eig(trans.T)
    stationary = np.real(evecs[:, np.argmin(abs(evals - 1))])
    stationary /= stationary.sum()
    # Run lengths: start in R ~ L, end when the chain returns to 0.
    state = np.concatenate([[0.0], q])
    law = np.zeros(n_max + 1)
    for n in range(1, n_max + 1):
        state = state @ trans
        law[n] = state[0]
        state[0] = 0.0
    return s, 1.0 - stationary[0], law


def runs_of(selected_rows):
    """(start, length) of every run of consecutive selected positions in each row."""
    padded = np.pad(selected_rows.astype(np.int8), ((0, 0), (1, 1)))
    edges = np.diff(padded, axis=1)
    rows_s, starts = np.nonzero(edges == 1)
    rows_e, ends = np.nonzero(edges == -1)
    assert np.array_equal(rows_s, rows_e)
    return starts, ends - starts


SPAN_SETTINGS = [(0.15, 0.2, 10), (0.3, 0.5, 4)]


@pytest.fixture(scope="module", params=SPAN_SETTINGS, ids=lambda s: "rate{}-p{}-max{}".format(*s))
def span_run(request, minilm_tokenizer, blocks):
    rate, span_p, max_len = request.param
    masker = TokenMasker(
        minilm_tokenizer, mask_rate=rate, span_p=span_p, max_span_length=max_len, strategy="span", seed=SEED
    )
    return request.param, run_masker(masker, blocks)


def test_span_theory_matches_the_solver():
    for rate, span_p, max_len in SPAN_SETTINGS + [(0.05, 0.2, 10), (0.5, 0.1, 20)]:
        _, coverage, law = span_theory(rate, span_p, max_len)
        assert coverage == pytest.approx(rate, abs=1e-9)
        assert law.sum() == pytest.approx(1.0, abs=1e-9)


def test_span_selection_rate(span_run, maskable, vocab):
    (rate, _, _), (original, masked, labels) = span_run
    maskable = np.concatenate([maskable] * len(STEPS))
    check_basic_invariants(original, masked, labels, maskable)
    selected = labels != IGNORE_INDEX
    # Rows (and steps) are independent; positions inside a row are not: cluster by row.
    measured = assert_cluster_ratio(selected.sum(1), maskable.sum(1), rate, "span selection rate")
    # No boundary deficit: the first positions after [CLS] are selected at the same rate.
    for columns in (slice(1, 4), slice(4, 10), slice(60, 70)):
        assert_cluster_ratio(
            selected[:, columns].sum(1), maskable[:, columns].sum(1), rate, f"span rate, columns {columns}"
        )
    print(f"\nspan selection rate (target {rate}): {measured:.5f}")


def test_span_mask_random_keep_split(span_run, maskable, vocab):
    _, (original, masked, labels) = span_run
    selected, to_mask, to_random, kept = outcome(original, masked, labels, vocab.mask_token_id)
    same = 1.0 / len(vocab.replacement_ids)
    # The kind is drawn per token, independently of the selection.
    assert_binomial(to_mask.sum(), selected.sum(), 0.8, "span mask share")
    assert_binomial(to_random.sum(), selected.sum(), 0.1 * (1 - same), "span random share")
    assert_binomial(kept.sum(), selected.sum(), 0.1 + 0.1 * same, "span keep share")


def test_span_run_lengths_follow_the_clipped_geometric(span_run):
    (rate, span_p, max_len), (_, _, labels) = span_run
    selected = labels != IGNORE_INDEX
    starts, lengths = runs_of(selected)
    # Contiguous runs: far fewer runs than selected tokens.
    assert lengths.mean() > 1.5
    # Runs seen whole: an unselected maskable neighbour on both sides (positions 1..126 maskable).
    inside = (starts >= 2) & (starts + lengths <= 126)
    lengths = lengths[inside]
    _, _, law = span_theory(rate, span_p, max_len)
    ls = np.arange(len(law))
    # A run of length l fits in the window at 125 - l start positions: length-biased sampling.
    weight = law * np.clip(125 - ls, 0, None)
    expected = weight / weight.sum()
    mean = float(np.sum(ls * expected))
    sd = math.sqrt(float(np.sum((ls - mean) ** 2 * expected)))
    observed_mean = float(lengths.mean())
    assert abs(observed_mean - mean) <= Z * sd / math.sqrt(len(lengths)), (
        f"mean run length {observed_mean:.4f}, theory {mean:.4f}"
    )
    # The whole histogram: chi-square with a tail bin.
    top = 15
    observed = np.bincount(np.minimum(lengths, top), minlength=top + 1)[1:]
    exp = np.concatenate([expected[1:top], [expected[top:].sum()]]) * len(lengths)
    chi2 = float(np.sum((observed - exp) ** 2 / exp))
    assert chi2 <= chi2_limit(top - 1), f"run-length chi2 {chi2:.1f} over {top - 1} dof"
    # Isolated spans at a low rate: runs are almost single spans, mean ~ E[L] (clipped geometric).
    mean_span = sum((1 - span_p) ** k for k in range(max_len))
    print(f"\nspan runs: mean {observed_mean:.3f} (theory {mean:.3f}; E[L] = {mean_span:.3f})")


def test_isolated_spans_have_the_clipped_geometric_mean(minilm_tokenizer, blocks):
    # At a 3% rate runs seldom merge: their mean length is close to E[L] and exactly the theory.
    rate, span_p, max_len = 0.03, 0.2, 10
    masker = TokenMasker(minilm_tokenizer, mask_rate=rate, strategy="span", seed=SEED)
    _, _, labels = run_masker(masker, blocks, steps=(0, 1, 2, 3, 4, 5))
    starts, lengths = runs_of(labels != IGNORE_INDEX)
    lengths = lengths[(starts >= 2) & (starts + lengths <= 126)]
    _, _, law = span_theory(rate, span_p, max_len)
    ls = np.arange(len(law))
    weight = law * np.clip(125 - ls, 0, None)
    expected = weight / weight.sum()
    mean = float(np.sum(ls * expected))
    sd = math.sqrt(float(np.sum((ls - mean) ** 2 * expected)))
    assert abs(lengths.mean() - mean) <= Z * sd / math.sqrt(len(lengths))
    # Clipped geometric P(L = l), length-biased the same way, is within 2% of the run law's mean.
    q = np.array([0.0] + [span_p * (1 - span_p) ** (k - 1) for k in range(1, max_len + 1)])
    q[max_len] = (1 - span_p) ** (max_len - 1)
    w = q * (125 - np.arange(max_len + 1))
    assert float(np.sum(np.arange(max_len + 1) * w) / w.sum()) == pytest.approx(mean, rel=0.02)
    assert np.all(lengths <= 3 * max_len)


def test_span_rate_on_short_rows(minilm_tokenizer, blocks):
    # Short rows made the boundary deficit large (0.140 instead of 0.15 at length 32).
    short = np.array(blocks[:, :32])
    short[:, -1] = minilm_tokenizer.sep_token_id
    masker = TokenMasker(minilm_tokenizer, strategy="span", seed=SEED)
    _, _, labels = run_masker(masker, short, steps=range(12))
    selected = labels[:, 1:-1] != IGNORE_INDEX
    assert_cluster_ratio(selected.sum(1), np.full(len(selected), 30), 0.15, "span rate, 32-token rows")


# --------------------------------------------------------------------------------------------
# Determinism, dynamic masking, replica independence


STRATEGIES = ("token", "whole_word", "span")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_determinism_and_dynamic_masking(minilm_tokenizer, blocks, strategy):
    rows = blocks[:64]
    a = TokenMasker(minilm_tokenizer, seed=11, strategy=strategy)
    b = TokenMasker(minilm_tokenizer, seed=11, strategy=strategy)
    other_seed = TokenMasker(minilm_tokenizer, seed=12, strategy=strategy)

    def labels(masker, **kwargs):
        return masker(rows, **kwargs)["labels"].numpy()

    def same_rows(x, y):
        return float(np.mean(np.all(x == y, axis=1)))

    np.testing.assert_array_equal(labels(a, step=5), labels(b, step=5))
    np.testing.assert_array_equal(a(rows, step=5)["input_ids"], b(rows, step=5)["input_ids"])
    assert same_rows(labels(a, step=5), labels(a, step=6)) < 0.05  # fresh masks every step
    assert same_rows(labels(a, step=5), labels(other_seed, step=5)) < 0.05
    # deterministic=True: the same (evaluation) masks whatever the step.
    fixed = labels(a, step=0, deterministic=True)
    np.testing.assert_array_equal(fixed, labels(a, step=123_456, deterministic=True))
    np.testing.assert_array_equal(fixed, labels(b, step=tf.constant(7, tf.int64), deterministic=True))
    assert same_rows(fixed, labels(a, step=0)) < 0.05


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("deterministic", [False, True])
def test_masks_do_not_depend_on_the_batch(minilm_tokenizer, blocks, strategy, deterministic):
    masker = TokenMasker(minilm_tokenizer, seed=5, strategy=strategy)

    def mask(batch):
        out = masker(batch, step=9, deterministic=deterministic)
        return out["input_ids"].numpy(), out["labels"].numpy()

    rows = np.array(blocks[:64])
    ids, labels = mask(rows)
    # Another order, halves of the batch (two replicas), the row inside an unrelated batch.
    order = np.random.default_rng(1).permutation(64)
    p_ids, p_labels = mask(rows[order])
    np.testing.assert_array_equal(p_ids, ids[order])
    np.testing.assert_array_equal(p_labels, labels[order])
    for half in (slice(0, 32), slice(32, 64)):
        h_ids, h_labels = mask(rows[half])
        np.testing.assert_array_equal(h_ids, ids[half])
        np.testing.assert_array_equal(h_labels, labels[half])
    mixed = np.concatenate([blocks[500:510], rows[3:4], blocks[700:705]])
    m_ids, m_labels = mask(mixed)
    np.testing.assert_array_equal(m_labels[10], labels[3])
    np.testing.assert_array_equal(m_ids[10], ids[3])


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_masks_do_not_depend_on_padding_length(minilm_tokenizer, blocks, strategy):
    masker = TokenMasker(minilm_tokenizer, seed=5, strategy=strategy)
    pad = minilm_tokenizer.pad_token_id
    rng = np.random.default_rng(2)
    lengths = rng.integers(10, 60, size=32)
    rows = np.full((32, 128), pad, np.int32)
    for i, n in enumerate(lengths):
        rows[i, :n] = blocks[i, :n]
        rows[i, n - 1] = minilm_tokenizer.sep_token_id
    attention = (rows != pad).astype(np.int32)
    for use_mask in (True, False):
        outs = []
        for width in (128, 64, int(lengths.max())):
            out = masker(rows[:, :width], attention[:, :width] if use_mask else None, step=4)
            outs.append(out["labels"].numpy()[:, : lengths.max()])
        np.testing.assert_array_equal(outs[0], outs[1])
        np.testing.assert_array_equal(outs[0], outs[2])


# --------------------------------------------------------------------------------------------
# Graph mode and XLA


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_tf_function_and_xla_match_eager(minilm_tokenizer, blocks, strategy):
    masker = TokenMasker(minilm_tokenizer, seed=21, strategy=strategy)
    ids = tf.constant(blocks[:16], tf.int64)
    attention = tf.constant(np.where(np.arange(128) < 100, 1, 0)[None].repeat(16, 0), tf.int32)
    step = tf.Variable(37, dtype=tf.int64)  # like optimizer.iterations

    for deterministic in (False, True):

        def fn(i, a, deterministic=deterministic):
            return masker(i, a, step=step, deterministic=deterministic)

        eager = masker(ids, attention, step=37, deterministic=deterministic)
        graph = tf.function(fn)(ids, attention)
        xla = tf.function(fn, jit_compile=True)(ids, attention)
        for key in ("input_ids", "labels"):
            np.testing.assert_array_equal(graph[key], eager[key])
            np.testing.assert_array_equal(xla[key], eager[key])
        assert (eager["labels"].numpy() != IGNORE_INDEX).sum() > 100


# --------------------------------------------------------------------------------------------
# Errors


def test_tokenizer_without_mask_token(bpe_tokenizers):
    tokenizer = bpe_tokenizers["gpt2_like"]
    assert tokenizer.mask_token_id is None
    with pytest.raises(ValueError, match="mask token"):
        TokenMasker(tokenizer)
    with pytest.raises(ValueError, match="mask token"):
        VocabularyInfo.from_tokenizer(tokenizer)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mask_rate": 0.0},
        {"mask_rate": -0.1},
        {"mask_rate": 1.5},
        {"mask_rate": float("nan")},
        {"mask_token_rate": -0.1},
        {"random_token_rate": -0.1},
        {"mask_token_rate": 0.9, "random_token_rate": 0.2},
        {"strategy": "sentence"},
        {"strategy": "span", "span_p": 0.0},
        {"strategy": "span", "span_p": 1.0},
        {"strategy": "span", "max_span_length": 0},
    ],
)
def test_invalid_settings(minilm_tokenizer, kwargs):
    with pytest.raises(ValueError):
        TokenMasker(minilm_tokenizer, **kwargs)


def test_needs_a_tokenizer():
    with pytest.raises(ValueError, match="tokenizer"):
        TokenMasker()


def test_rejects_inputs_that_are_not_rank_2(minilm_tokenizer):
    masker = TokenMasker(minilm_tokenizer, seed=0)
    with pytest.raises(ValueError, match=r"\[batch, length\]"):
        masker(np.array([101, 2023, 102]))
    with pytest.raises(ValueError, match=r"\[batch, length\]"):
        masker(np.zeros((2, 3, 4), np.int32))


def test_whole_word_needs_word_marks():
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"word{i}" for i in range(200)]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    assert VocabularyInfo.from_tokenizer(tokenizer).word_scheme == "none"
    with pytest.raises(ValueError, match="Whole-word"):
        TokenMasker(tokenizer, strategy="whole_word")
    TokenMasker(tokenizer, strategy="token")  # the other strategies work
    TokenMasker(tokenizer, strategy="span")
