"""``MaskedLanguageModel``: fine-tune or pretrain a Hugging Face TF masked LM with ``model.fit``."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from keras_ssl.backend import keras, tf
from keras_ssl.text.heads import base_encoder, split_masked_lm
from keras_ssl.text.losses import masked_lm_terms
from keras_ssl.text.masking import IGNORE_INDEX, TokenMasker
from keras_ssl.training import RatioMetric, SSLModel, replica_sum

logger = logging.getLogger("keras_ssl")
MASKER_CONFIG = "keras_ssl_masker.json"
_HEAD_HINTS = ("cls.", "lm_head", "vocab_", "predictions", "generator_")
#: How the common tokenizers write their mask (BERT-style, RoBERTa-style): fill_mask names the right one.
_MASK_SPELLINGS = ("[MASK]", "<mask>")


class MaskedLanguageModel(SSLModel):
    """A Hugging Face TF masked LM trained with in-graph dynamic masking.

    ``train_step``: mask ``input_ids`` (fresh masks every step) -> encoder -> LM head at the masked
    positions only -> cross-entropy averaged over the masked tokens of the *global* batch.
    ``test_step`` uses deterministic masks, so validation numbers compare across epochs.
    Metrics: ``loss``, ``masked_accuracy``, ``perplexity`` (exp of the token-weighted mean loss) and
    ``word_accuracy``: the masked accuracy over the masked tokens that are alphabetic word pieces
    (``for``, ``##ing``), leaving out punctuation, digits and symbols, whose high frequency in code
    and markup can make ``masked_accuracy`` look good for a model that predicts ``-`` or ``"``.

    Batches are dicts with ``input_ids`` ``int [batch, length]`` and optionally ``attention_mask``
    (see :func:`keras_ssl.text.text_dataset`). ``model(batch)`` returns logits ``[batch, length, vocab]``.
    """

    def __init__(
        self,
        hf_model,
        tokenizer,
        masker: Optional[TokenMasker] = None,
        gather_logits: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        model_vocab = int(hf_model.config.vocab_size)
        if len(tokenizer) > model_vocab:
            raise ValueError(
                f"The tokenizer has {len(tokenizer)} tokens but the model's vocabulary has only "
                f"{model_vocab}: ids above {model_vocab - 1} would index past the embeddings. Use the "
                "tokenizer the model was trained with, or call "
                "`hf_model.resize_token_embeddings(len(tokenizer))` first."
            )
        self.hf_model = hf_model
        self.tokenizer = tokenizer
        self.masker = masker if masker is not None else TokenMasker(tokenizer)
        self.gather_logits = gather_logits
        self._split = split_masked_lm(hf_model)
        self._encoder = base_encoder(hf_model)
        self._word_tokens = tf.constant(word_token_table(tokenizer, model_vocab))
        self.max_positions = getattr(hf_model.config, "max_position_embeddings", None)
        # True when from_pretrained found no MLM-head weights: call fit_head before fit.
        self.head_is_fresh = False
        # All weights live in the (built) HF model: callbacks such as BackupAndRestore need a built model.
        self.built = bool(hf_model.built)

    # --- construction --------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        tokenizer=None,
        mask_rate: float = 0.15,
        mask_token_rate: float = 0.8,
        random_token_rate: float = 0.1,
        strategy: str = "token",
        seed: Optional[int] = None,
        **hf_kwargs,
    ) -> MaskedLanguageModel:
        """Load any model ``TFAutoModelForMaskedLM`` loads (a local directory or a hub name).

        A checkpoint without MLM-head weights (e.g. a sentence encoder) gets a fresh head, says so
        and sets ``head_is_fresh``: warm the head up with :meth:`fit_head` before ``fit``. A directory
        written by :meth:`save_pretrained` restores the masking settings too.
        """
        from transformers import AutoTokenizer, TFAutoModelForMaskedLM

        looks_local = os.path.sep in name_or_path or name_or_path.startswith(".")
        if looks_local and not os.path.exists(name_or_path):
            raise FileNotFoundError(f"No model directory at {name_or_path!r}.")
        tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(name_or_path)
        hf_model, info = TFAutoModelForMaskedLM.from_pretrained(
            name_or_path, output_loading_info=True, **hf_kwargs
        )
        prefix = hf_model.base_model_prefix
        fresh = [k for k in info.get("missing_keys", []) if _is_head_weight(k, prefix)]
        if fresh:
            logger.warning(
                "keras_ssl: %s has no masked-LM head weights; the head (%d tensors) starts "
                "freshly initialised. Call model.fit_head(train_data) before fit() so that it learns "
                "to read the encoder (otherwise it first learns to predict the most frequent tokens).",
                name_or_path,
                len(fresh),
            )
        masker_kwargs = dict(
            mask_rate=mask_rate,
            mask_token_rate=mask_token_rate,
            random_token_rate=random_token_rate,
            strategy=strategy,
            seed=seed,
        )
        saved = os.path.join(name_or_path, MASKER_CONFIG)
        if os.path.isfile(saved):
            with open(saved) as f:
                masker_kwargs = {**json.load(f), **({"seed": seed} if seed is not None else {})}
        model = cls(hf_model, tokenizer, masker=TokenMasker(tokenizer, **masker_kwargs))
        model.head_is_fresh = bool(fresh)
        return model

    @classmethod
    def from_config(
        cls,
        tokenizer,
        hidden_size: int = 256,
        num_layers: int = 4,
        num_heads: int = 4,
        intermediate_size: Optional[int] = None,
        max_position_embeddings: int = 512,
        architecture: str = "bert",
        masker: Optional[TokenMasker] = None,
        seed: Optional[int] = None,
        **config_kwargs,
    ) -> MaskedLanguageModel:
        """A freshly initialised model sized for ``tokenizer`` (``architecture``: bert/roberta/distilbert)."""
        from transformers import AutoConfig, TFAutoModelForMaskedLM

        if tokenizer.mask_token_id is None:
            TokenMasker(tokenizer)  # raises the clear "no mask token" error
        if architecture == "distilbert":
            sizes = dict(dim=hidden_size, n_layers=num_layers, n_heads=num_heads,
                         hidden_dim=intermediate_size or 4 * hidden_size)
        else:
            sizes = dict(hidden_size=hidden_size, num_hidden_layers=num_layers,
                         num_attention_heads=num_heads,
                         intermediate_size=intermediate_size or 4 * hidden_size)
        extra = {"type_vocab_size": 1} if architecture == "roberta" else {}
        config = AutoConfig.for_model(
            architecture,
            vocab_size=len(tokenizer),
            max_position_embeddings=max_position_embeddings + (2 if architecture == "roberta" else 0),
            pad_token_id=tokenizer.pad_token_id or 0,
            **sizes,
            **extra,
            **config_kwargs,
        )
        if seed is not None:
            keras.utils.set_random_seed(seed)
        hf_model = TFAutoModelForMaskedLM.from_config(config)
        hf_model(hf_model.dummy_inputs, training=False)  # build outside our scope: HF weight names
        masker = masker if masker is not None else TokenMasker(tokenizer, seed=seed)
        return cls(hf_model, tokenizer, masker=masker)

    # --- the training pieces ---------------------------------------------------------------
    def stat_metrics(self) -> list:
        return [RatioMetric("masked_accuracy"), RatioMetric("perplexity", transform=tf.exp),
                RatioMetric("word_accuracy")]

    def _as_features(self, inputs) -> Dict[str, tf.Tensor]:
        if not isinstance(inputs, dict):
            inputs = {"input_ids": inputs}
        if "input_ids" not in inputs:
            raise ValueError(
                "MaskedLanguageModel expects batches with 'input_ids' (and optionally "
                f"'attention_mask'); got keys {sorted(inputs)}. Build them with "
                "keras_ssl.text.text_dataset(...)."
            )
        ids = inputs["input_ids"]
        if ids.dtype == tf.string:
            raise ValueError(
                "MaskedLanguageModel got raw strings; it trains on token ids. Tokenize with "
                "keras_ssl.text.text_dataset(texts, tokenizer=model.tokenizer, ...)."
            )
        length = ids.shape[-1]
        if self.max_positions is not None and length is not None and length > self.max_positions:
            raise ValueError(
                f"Sequences of length {length} exceed the model's {self.max_positions} position "
                f"embeddings. Use max_length <= {self.max_positions} in text_dataset."
            )
        return inputs

    def pretext(self, inputs, training: bool) -> Dict[str, tf.Tensor]:
        inputs = self._as_features(inputs)
        step = self.optimizer.iterations if training and self.optimizer is not None else 0
        return self.masker(
            inputs["input_ids"], inputs.get("attention_mask"), step=step, deterministic=not training
        )

    def compute_loss_and_stats(self, views, training: bool):
        ids, labels = views["input_ids"], views["labels"]
        attention_mask = views.get("attention_mask")
        use_gather = self.gather_logits and self._split is not None and not self._xla
        if use_gather:
            encoder, head = self._split
            hidden = encoder(ids, attention_mask, training=training)
            selected = tf.not_equal(labels, IGNORE_INDEX)
            picked = tf.boolean_mask(hidden, selected)[:, None, :]  # [n, 1, hidden]
            logits = head(picked, training)[:, 0, :]  # [n, vocab]
            labels = tf.boolean_mask(labels, selected)
        else:
            logits = self.hf_model(input_ids=ids, attention_mask=attention_mask, training=training).logits
        ce_sum, correct, count = masked_lm_terms(logits, labels)
        word_correct, word_count = self._word_terms(logits, labels)
        global_count = replica_sum(count)
        if not self._xla:
            tf.cond(global_count > 0, lambda: tf.constant(True), _warn_nothing_masked)
        loss_share = tf.math.divide_no_nan(ce_sum, global_count)
        stats = {"masked_accuracy": (correct, count), "perplexity": (ce_sum, count),
                 "word_accuracy": (word_correct, word_count)}
        return loss_share, stats

    def _word_terms(self, logits: tf.Tensor, labels: tf.Tensor):
        """``(correct, count)`` float32 over the predicted positions whose label is a word token."""
        labels = tf.cast(labels, tf.int32)
        safe = tf.clip_by_value(labels, 0, tf.shape(self._word_tokens)[0] - 1)
        word = tf.cast(tf.not_equal(labels, IGNORE_INDEX) & tf.gather(self._word_tokens, safe), tf.float32)
        correct = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels), tf.float32)
        return tf.reduce_sum(correct * word), tf.reduce_sum(word)

    @property
    def _xla(self) -> bool:
        """Whether steps are XLA-compiled (``compile(jit_compile=True)``): static shapes only."""
        return bool(getattr(self, "_jit_compile", False))

    def call(self, inputs, training: bool = False) -> tf.Tensor:
        """Logits ``[batch, length, vocab]`` for ``input_ids`` (and ``attention_mask``)."""
        inputs = self._as_features(inputs)
        return self.hf_model(
            input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"), training=training
        ).logits

    def fit_head(self, data, steps: int = 200, learning_rate: float = 3e-3,
                 init_head: Optional[bool] = None, log_every: int = 0,
                 print_fn=print) -> Dict[str, List[float]]:
        """Fit only the LM head on frozen encoder features (see :func:`keras_ssl.text.fit_head`).

        Use it on a fresh head (``head_is_fresh``) before ``fit``: the encoder runs in inference
        mode, the word embeddings stay frozen, and the compiled optimizer is untouched. Returns the
        per-step ``{"loss", "masked_accuracy"}`` history.
        """
        from keras_ssl.text.head_warmup import fit_head

        return fit_head(self, data, steps=steps, learning_rate=learning_rate, init_head=init_head,
                        log_every=log_every, print_fn=print_fn)

    # --- using the model -------------------------------------------------------------------
    def _tokenize(self, texts: Sequence[str], max_length: Optional[int] = None) -> Dict[str, np.ndarray]:
        limit = max_length or min(self.max_positions or 512, 512)
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=limit,
                             return_tensors="np")
        return {"input_ids": enc["input_ids"].astype(np.int32),
                "attention_mask": enc["attention_mask"].astype(np.int32)}

    def fill_mask(self, texts: Union[str, Sequence[str]], top_k: int = 5) -> list:
        """Predictions for each mask token, in the Hugging Face fill-mask pipeline's format.

        One text with one mask -> ``[{"score", "token", "token_str", "sequence"}, ...]``; several masks
        -> one such list per mask (each ``sequence`` keeps the other masks); a list of texts -> one
        result per text. A text without a mask token gives ``[]``, but one that writes another
        tokenizer's mask (``[MASK]`` for RoBERTa's ``<mask>`` or the reverse) is a ``ValueError``, and so
        is a mask beyond the tokens the model reads (``max_position_embeddings``, at most 512).
        """
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        if not batch:
            return []
        mask_id = self.tokenizer.mask_token_id
        mask = self.tokenizer.mask_token
        for row, text in enumerate(batch):
            foreign = [m for m in _MASK_SPELLINGS if m != mask and m in text and mask not in text]
            if foreign:  # "[MASK]" typed for a RoBERTa-style tokenizer: not a silent []
                raise ValueError(f"Text {row} ({text[:60]!r}) writes {foreign[0]}, but this model's mask "
                                 f"token is {mask}. Fix: write {mask} where a word should be predicted.")
        enc = self._tokenize(batch)
        logits = self(enc, training=False).numpy()
        hidden = set(self.tokenizer.all_special_ids) - {mask_id}  # [CLS], [SEP], [PAD]: not shown
        results = []
        for row, ids in enumerate(enc["input_ids"]):
            length = int(enc["attention_mask"][row].sum())
            ids = ids[:length]
            positions = np.flatnonzero(ids == mask_id)
            longest = length == enc["input_ids"].shape[1]  # only the longest rows can have been cut
            if longest and len(positions) < self.tokenizer(batch[row])["input_ids"].count(mask_id):
                raise ValueError(
                    f"Text {row} ({batch[row][:60]!r}...) has a {mask} beyond the first {length} tokens the "
                    f"model reads. Fix: shorten the text before the {mask} (keep the context around it).")
            per_mask = []
            for pos in positions:
                scores = _softmax(logits[row, pos])
                best = np.argsort(-scores)[:top_k]
                options = []
                for token in best:
                    filled = ids.copy()
                    filled[pos] = token
                    options.append({
                        "score": float(scores[token]),
                        "token": int(token),
                        "token_str": self.tokenizer.decode([int(token)]),
                        "sequence": self.tokenizer.decode([int(t) for t in filled if int(t) not in hidden]),
                    })
                per_mask.append(options)
            results.append(per_mask[0] if len(per_mask) == 1 else per_mask)
        return results[0] if single else results

    def encode(self, texts: Union[str, Sequence[str]], batch_size: int = 32,
               max_length: Optional[int] = None) -> np.ndarray:
        """Mean-pooled sentence embeddings ``float32 [n_texts, hidden]`` (padding excluded)."""
        batch = [texts] if isinstance(texts, str) else list(texts)
        out = []
        for start in range(0, len(batch), batch_size):
            enc = self._tokenize(batch[start:start + batch_size], max_length)
            hidden = self._encoder(tf.constant(enc["input_ids"]), tf.constant(enc["attention_mask"]))
            out.append(mean_pool(hidden, enc["attention_mask"]).numpy())
        return np.concatenate(out, 0) if out else np.zeros((0, self.hf_model.config.hidden_size), np.float32)

    def save_pretrained(self, directory: str) -> None:
        """Write model, tokenizer and masking settings; ``TFAutoModelForMaskedLM`` loads it back."""
        os.makedirs(directory, exist_ok=True)
        self.hf_model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        config = self.masker.get_config()
        with open(os.path.join(directory, MASKER_CONFIG), "w") as f:
            json.dump(config, f, indent=2)

    def get_config(self) -> Dict[str, Any]:
        return {"masker": self.masker.get_config(), "gather_logits": self.gather_logits}


def word_token_table(tokenizer, size: int) -> np.ndarray:
    """bool ``[size]``: the token is alphabetic once its word-piece marker is removed (``##ing``,
    ``Ġthe``, ``▁for``); special tokens, punctuation, digits and mixed tokens are not words."""
    table = np.zeros(size, bool)
    special = set(tokenizer.all_special_ids)
    for i, token in enumerate(tokenizer.convert_ids_to_tokens(list(range(min(len(tokenizer), size))))):
        if token is None or i in special:
            continue
        text = token[2:] if token.startswith("##") else token.lstrip("Ġ▁")
        table[i] = text.isalpha()
    return table


def _is_head_weight(name: str, base_prefix: str) -> bool:
    """Whether a missing-weight name of ``TFAutoModelForMaskedLM.from_pretrained`` is an LM-head weight.

    PyTorch checkpoints name them ``cls.predictions...``; TensorFlow checkpoints of a bare encoder
    report the whole head layer (``mlm___cls``). Anything outside the base model is head.
    """
    first = re.split(r"[./]|___", name, maxsplit=1)[0]
    return any(h in name for h in _HEAD_HINTS) or (first != base_prefix and "position_ids" not in name)


def mean_pool(hidden: tf.Tensor, attention_mask) -> tf.Tensor:
    """Mean of ``hidden [batch, length, dim]`` over real tokens -> float32 ``[batch, dim]``."""
    hidden = tf.cast(hidden, tf.float32)
    weight = tf.cast(attention_mask, tf.float32)[..., None]
    return tf.reduce_sum(hidden * weight, 1) / tf.maximum(tf.reduce_sum(weight, 1), 1.0)


def _warn_nothing_masked():
    tf.print(
        "keras_ssl warning: a batch had no maskable tokens (only padding/special tokens); "
        "its loss is 0.",
        output_stream=sys.stderr,
    )
    return tf.constant(False)


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64) - x.max()
    e = np.exp(x)
    return e / e.sum()


def top_predictions(results: List[dict]) -> List[str]:
    """The best ``token_str`` of each mask in a :meth:`MaskedLanguageModel.fill_mask` result."""
    if results and isinstance(results[0], dict):
        return [results[0]["token_str"]]
    return [options[0]["token_str"] for options in results]
