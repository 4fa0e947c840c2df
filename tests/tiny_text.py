"""A tiny deterministic BERT masked LM, shared by the tests and their subprocess scripts."""

from keras_ssl.backend import keras


def tiny_deterministic_mlm(tokenizer, hidden_size: int = 32, max_position_embeddings: int = 64):
    """One BERT layer (intermediate 2 x hidden), no dropout, seed 0, masker seed 1, Adam(1e-3)."""
    from transformers import AutoConfig, TFAutoModelForMaskedLM

    from keras_ssl.text import MaskedLanguageModel, TokenMasker

    keras.utils.set_random_seed(0)
    config = AutoConfig.for_model("bert", vocab_size=len(tokenizer), hidden_size=hidden_size,
                                  num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=2 * hidden_size,
                                  max_position_embeddings=max_position_embeddings,
                                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    hf = TFAutoModelForMaskedLM.from_config(config)
    hf(hf.dummy_inputs, training=False)
    model = MaskedLanguageModel(hf, tokenizer, masker=TokenMasker(tokenizer, seed=1))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model
