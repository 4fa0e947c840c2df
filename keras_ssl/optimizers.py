"""Optimizers and learning-rate schedules with the defaults fine-tuning recipes use."""

from __future__ import annotations

import math
from typing import Sequence

from keras_ssl.backend import keras, tf

NO_DECAY = ("bias", "LayerNorm", "layer_norm", "layernorm", "gamma", "beta")


class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to ``learning_rate`` over ``warmup_steps``, then decay to ``end_factor`` x.

    ``decay="linear"`` (Hugging Face's default) or ``"cosine"``; constant after ``total_steps``.
    """

    def __init__(
        self,
        learning_rate: float,
        warmup_steps: int,
        total_steps: int,
        decay: str = "linear",
        end_factor: float = 0.0,
    ):
        super().__init__()
        if decay not in ("linear", "cosine"):
            raise ValueError(f"decay must be 'linear' or 'cosine', got {decay!r}.")
        if warmup_steps < 0 or total_steps < 1:
            raise ValueError("warmup_steps must be >= 0 and total_steps >= 1.")
        self.learning_rate = float(learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(max(total_steps, warmup_steps + 1))
        self.decay = decay
        self.end_factor = float(end_factor)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = tf.cast(max(self.warmup_steps, 1), tf.float32)
        progress = (step - self.warmup_steps) / float(self.total_steps - self.warmup_steps)
        progress = tf.clip_by_value(progress, 0.0, 1.0)
        if self.decay == "cosine":
            shape = 0.5 * (1.0 + tf.cos(math.pi * progress))
        else:
            shape = 1.0 - progress
        decayed = self.end_factor + (1.0 - self.end_factor) * shape
        warmup = tf.minimum((step + 1.0) / warm, 1.0) if self.warmup_steps > 0 else 1.0
        return self.learning_rate * tf.where(step < self.warmup_steps, warmup, decayed)

    def get_config(self) -> dict:
        return {
            "learning_rate": self.learning_rate,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "decay": self.decay,
            "end_factor": self.end_factor,
        }


def adamw(
    learning_rate: float = 5e-5,
    warmup_steps: int = 0,
    total_steps: int = 10_000,
    weight_decay: float = 0.01,
    decay: str = "linear",
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-6,
    clipnorm: float | None = 1.0,
    no_decay: Sequence[str] = NO_DECAY,
) -> keras.optimizers.Optimizer:
    """AdamW with warmup + decay, no weight decay on biases and norm parameters.

    The BERT fine-tuning recipe: ``lr`` 5e-5, ``weight_decay`` 0.01, ``epsilon`` 1e-6, linear decay,
    global-norm clipping at 1.0.
    """
    schedule = WarmupDecay(learning_rate, warmup_steps, total_steps, decay=decay)
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule,
        weight_decay=weight_decay,
        beta_1=beta_1,
        beta_2=beta_2,
        epsilon=epsilon,
        global_clipnorm=clipnorm,
    )
    optimizer.exclude_from_weight_decay(var_names=list(no_decay))
    return optimizer


__all__ = ["WarmupDecay", "adamw"]
