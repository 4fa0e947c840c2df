"""Train a BERT-style WordPiece tokenizer on your own text with the ``tokenizers`` library."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from keras_ssl.text.data import Sources, iter_documents

if TYPE_CHECKING:
    from transformers import BertTokenizerFast

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # ids 0..4, in this order
_TRAIN_BATCH = 1000


def train_tokenizer(
    sources: Sources,
    vocab_size: int = 8000,
    lowercase: bool = True,
    min_frequency: int = 2,
    max_length: int = 512,
    encoding_errors: str = "replace",
) -> BertTokenizerFast:
    """Train a WordPiece tokenizer (BERT recipe) and return it as a ``transformers.BertTokenizerFast``.

    ``sources``: anything :func:`keras_ssl.text.text_dataset` reads (files, folders, strings, a
    ``tf.data.Dataset`` of strings), streamed through :func:`keras_ssl.text.iter_documents` with the
    same eager checks and ``encoding_errors`` policy. Vocabulary: ``[PAD]=0, [UNK]=1, [CLS]=2,
    [SEP]=3, [MASK]=4``, then the alphabet and up to ``vocab_size`` pieces in total (fewer on a small
    corpus), word continuations prefixed ``##``. BERT normalization (lowercasing and accent
    stripping when ``lowercase``) and pre-tokenization (whitespace and punctuation); encodings are
    ``[CLS] a [SEP]`` / ``[CLS] a [SEP] b [SEP]``. ``model_max_length=max_length``.

    Save it with ``tokenizer.save_pretrained(folder)`` and reload with ``AutoTokenizer.from_pretrained``.
    Raises ``ValueError`` for an empty or all-blank corpus, ``vocab_size`` too small to hold more
    than the special tokens, ``min_frequency`` < 1 or ``max_length`` < 8.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizerFast  # noqa: F811

    if int(vocab_size) <= len(SPECIAL_TOKENS):
        raise ValueError(
            f"vocab_size={vocab_size} leaves no room for pieces after the {len(SPECIAL_TOKENS)} special "
            "tokens. Fix: use a few thousand, e.g. vocab_size=8000."
        )
    if int(min_frequency) < 1:
        raise ValueError(f"min_frequency must be at least 1, got {min_frequency}.")
    if int(max_length) < 8:
        raise ValueError(f"max_length must be at least 8, got {max_length}. Fix: use e.g. 512.")
    documents = iter_documents(sources, encoding_errors=encoding_errors)  # eager checks happen here

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="##"))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=bool(lowercase)
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=int(vocab_size),
        min_frequency=int(min_frequency),
        special_tokens=list(SPECIAL_TOKENS),
        continuing_subword_prefix="##",
        show_progress=False,
    )
    batches = iter(lambda: list(itertools.islice(documents, _TRAIN_BATCH)), [])
    tokenizer.train_from_iterator(batches, trainer=trainer)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    return BertTokenizerFast(
        tokenizer_object=tokenizer,
        do_lower_case=bool(lowercase),
        tokenize_chinese_chars=True,
        strip_accents=None,
        model_max_length=int(max_length),
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
    )


__all__ = ["SPECIAL_TOKENS", "train_tokenizer"]
