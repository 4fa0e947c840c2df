"""Split a Hugging Face TF masked LM into its encoder and its LM head.

Computing the vocabulary projection only at the masked positions (15 % of tokens) removes most of
the head's FLOPs; that needs the encoder and the head as two calls. Architectures without a
known split fall back to the full model and gather logits afterwards (same loss, no speed-up).
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

from keras_ssl.backend import tf

Encoder = Callable[..., tf.Tensor]
Head = Callable[[tf.Tensor, bool], tf.Tensor]


def _encoder(hf_model, attribute: str) -> Encoder:
    body = getattr(hf_model, attribute)

    def encode(input_ids, attention_mask=None, training=False, **extra):
        return body(input_ids=input_ids, attention_mask=attention_mask, training=training, **extra)[0]

    return encode


def split_masked_lm(hf_model) -> Optional[Tuple[Encoder, Head]]:
    """``(encoder, head)`` for known architectures, else ``None``.

    ``encoder(input_ids, attention_mask, training) -> [batch, length, hidden]``;
    ``head(hidden [batch, n, hidden], training) -> logits [batch, n, vocab]`` (any ``n``).
    """
    model_type = getattr(hf_model.config, "model_type", "")
    if model_type in ("bert", "megatron-bert") and hasattr(hf_model, "mlm"):
        return _encoder(hf_model, "bert"), lambda h, training: hf_model.mlm(h, training=training)
    if model_type in ("roberta", "xlm-roberta", "camembert", "roberta-prelayernorm") and hasattr(
        hf_model, "lm_head"
    ):
        return _encoder(hf_model, hf_model.base_model_prefix), lambda h, training: hf_model.lm_head(h)
    if model_type == "distilbert":

        def distil_head(h, training):
            h = hf_model.vocab_layer_norm(hf_model.act(hf_model.vocab_transform(h)))
            return hf_model.vocab_projector(h)

        return _encoder(hf_model, "distilbert"), distil_head
    if model_type == "albert" and hasattr(hf_model, "predictions"):
        return _encoder(hf_model, "albert"), lambda h, training: hf_model.predictions(h)
    if model_type == "electra" and hasattr(hf_model, "generator_lm_head"):

        def electra_head(h, training):
            h = hf_model.generator_predictions(h, training=training)
            return hf_model.generator_lm_head(h, training=training)

        return _encoder(hf_model, "electra"), electra_head
    return None


def base_encoder(hf_model) -> Encoder:
    """The transformer body without the LM head: ``-> [batch, length, hidden]``."""
    return _encoder(hf_model, hf_model.base_model_prefix)
