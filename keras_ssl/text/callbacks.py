"""Callbacks for masked-language modelling."""

from __future__ import annotations

from typing import Callable, Sequence

from keras_ssl.backend import keras


class FillMaskCallback(keras.callbacks.Callback):
    """Print fill-mask predictions for a few sentences every ``every`` epochs.

    ``sentences`` contain the tokenizer's mask token (e.g. ``"Paris is the [MASK] of France."``).
    Predictions of each call are kept in ``self.history`` (a list of ``(epoch, results)``).
    """

    def __init__(self, sentences: Sequence[str], top_k: int = 3, every: int = 1,
                 print_fn: Callable[[str], None] = print):
        super().__init__()
        self.sentences = list(sentences)
        self.top_k = top_k
        self.every = max(int(every), 1)
        self.print_fn = print_fn
        self.history: list = []

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if (epoch + 1) % self.every:
            return
        results = self.model.fill_mask(self.sentences, top_k=self.top_k)
        self.history.append((epoch, results))
        for sentence, result in zip(self.sentences, results):
            masks = [result] if result and isinstance(result[0], dict) else result
            shown = " | ".join(", ".join(f"{o['token_str']} ({o['score']:.2f})" for o in options)
                               for options in masks)
            self.print_fn(f"[epoch {epoch + 1}] {sentence} -> {shown}")
