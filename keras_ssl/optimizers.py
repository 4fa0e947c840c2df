"""Optimizers and learning-rate schedules with the defaults fine-tuning recipes use."""

from __future__ import annotations

import math
import re
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


# Biases and normalisation parameters: LARS neither adapts their learning rate nor decays them.
LARS_EXCLUDE = ("bias", "gamma", "beta", "batch_?norm", "BatchNorm", "layer_?norm", "LayerNorm")


class LARS(keras.optimizers.Optimizer):
    """Layer-wise Adaptive Rate Scaling (You et al., 2017) as in SimCLR's and BYOL's code.

    For each variable ``w`` with gradient ``g``::

        g = g + weight_decay * w                          # unless excluded from weight decay
        trust = eta * ||w|| / ||g||  (1 if ||w|| or ||g|| is 0; 1 if excluded from adaptation)
        v = momentum * v + learning_rate * trust * g      # "classic" momentum, lr inside
        w = w - v                                         # (nesterov: w - momentum * v - lr * trust * g)

    Variables whose name contains (``re.search``) a pattern of ``exclude_from_layer_adaptation``
    (default: biases and BN/LayerNorm parameters) are updated like momentum SGD; the same patterns
    exclude them from weight decay unless ``exclude_from_weight_decay`` gives another list. Weight
    decay is coupled (added to the gradient before the trust ratio), never decoupled.
    """

    def __init__(
        self,
        learning_rate=0.1,
        momentum: float = 0.9,
        weight_decay: float = 1e-6,
        eta: float = 0.001,
        nesterov: bool = False,
        exclude_from_layer_adaptation: Sequence[str] = LARS_EXCLUDE,
        exclude_from_weight_decay: Sequence[str] | None = None,
        name: str = "LARS",
        **kwargs,
    ):
        super().__init__(name=name, weight_decay=weight_decay, **kwargs)
        self._learning_rate = self._build_learning_rate(learning_rate)
        self.momentum = float(momentum)
        self.eta = float(eta)
        self.nesterov = bool(nesterov)
        self._exclude_from_layer_adaptation = list(exclude_from_layer_adaptation)
        decay_excluded = self._exclude_from_layer_adaptation
        self.exclude_from_weight_decay(
            var_names=list(decay_excluded if exclude_from_weight_decay is None else exclude_from_weight_decay)
        )

    def build(self, var_list):
        super().build(var_list)
        if getattr(self, "_built", False):
            return
        self.momentums = [self.add_variable_from_reference(var, "m") for var in var_list]
        self._built = True

    def _use_layer_adaptation(self, variable) -> bool:
        return not any(re.search(pattern, variable.name) for pattern in self._exclude_from_layer_adaptation)

    def _apply_weight_decay(self, variables):
        """No decoupled decay: LARS adds ``weight_decay * w`` to the gradient in :meth:`update_step`."""

    def update_step(self, gradient, variable):
        lr = tf.cast(self.learning_rate, variable.dtype)
        momentum = tf.cast(self.momentum, variable.dtype)
        velocity = self.momentums[self._index_dict[self._var_key(variable)]]
        grad = tf.convert_to_tensor(gradient)  # sparse gradients are densified
        if self.weight_decay and self._use_weight_decay(variable):
            grad += tf.cast(self.weight_decay, variable.dtype) * variable
        if self._use_layer_adaptation(variable):
            w_norm, g_norm = tf.norm(variable), tf.norm(grad)
            ratio = tf.math.divide_no_nan(self.eta * w_norm, g_norm)
            lr = lr * tf.where((w_norm > 0) & (g_norm > 0), ratio, tf.ones_like(ratio))
        velocity.assign(momentum * velocity + lr * grad)
        if self.nesterov:
            variable.assign_sub(momentum * velocity + lr * grad)
        else:
            variable.assign_sub(velocity)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "learning_rate": self._serialize_hyperparameter(self._learning_rate),
                "momentum": self.momentum,
                "eta": self.eta,
                "nesterov": self.nesterov,
                "exclude_from_layer_adaptation": list(self._exclude_from_layer_adaptation),
                "exclude_from_weight_decay": list(self._exclude_from_weight_decay_names),
            }
        )
        return config


def lars(
    learning_rate: float = 0.3,
    warmup_steps: int = 0,
    total_steps: int = 10_000,
    weight_decay: float = 1e-6,
    momentum: float = 0.9,
    eta: float = 0.001,
    exclude: Sequence[str] = LARS_EXCLUDE,
) -> LARS:
    """LARS with linear warmup and cosine decay to 0 (SimCLR's recipe).

    SimCLR: ``learning_rate = 0.3 * batch_size / 256``, 10 warmup epochs, ``weight_decay`` 1e-6
    (BYOL: ``0.2 * batch_size / 256`` and 1.5e-6). ``exclude``: name patterns of the variables neither
    adapted nor decayed.
    """
    schedule = WarmupDecay(learning_rate, warmup_steps, total_steps, decay="cosine")
    return LARS(
        learning_rate=schedule,
        momentum=momentum,
        weight_decay=weight_decay,
        eta=eta,
        exclude_from_layer_adaptation=exclude,
    )


def scale_learning_rates(optimizer: keras.optimizers.Optimizer, multipliers) -> keras.optimizers.Optimizer:
    """Give variables their own learning rate: ``lr * multiplier`` (1 for variables not listed).

    ``multipliers``: ``(variable, float)`` pairs (or ``{variable.ref(): float}``). The multiplier
    scales the learning rate itself wherever the optimizer reads it (the update step and AdamW's
    decoupled weight decay), not the gradient: Adam normalises gradient scale away. ``optimizer`` (a
    ``keras.optimizers.Optimizer``) is changed in place and returned; global-norm clipping still sees
    all gradients together. Exact under ``tf.distribute`` (tested with 2 replicas).
    """
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise TypeError(
            f"scale_learning_rates needs a keras.optimizers.Optimizer, got {type(optimizer).__name__}. "
            "Legacy optimizers and LossScaleOptimizer are not supported."
        )
    pairs = multipliers.items() if isinstance(multipliers, dict) else multipliers
    table = {optimizer._var_key(v.deref() if hasattr(v, "deref") else v): float(m) for v, m in pairs}
    base = type(optimizer)
    if not getattr(base, "_keras_ssl_scaled", False):
        optimizer.__class__ = _scaled_class(base)
    optimizer._keras_ssl_multipliers = table
    optimizer._keras_ssl_scale = None
    return optimizer


def _scaled_class(base: type) -> type:
    class Scaled(base):
        _keras_ssl_scaled = True

        @property
        def learning_rate(self):
            lr = super().learning_rate
            scale = getattr(self, "_keras_ssl_scale", None)
            return lr if scale is None else lr * scale

        @learning_rate.setter
        def learning_rate(self, value):
            base.learning_rate.fset(self, value)

        def _scaled(self, variable, fn):
            self._keras_ssl_scale = self._keras_ssl_multipliers.get(self._var_key(variable), 1.0)
            try:
                return fn()
            finally:
                self._keras_ssl_scale = None

        def update_step(self, gradient, variable):
            return self._scaled(variable, lambda: super(Scaled, self).update_step(gradient, variable))

        def _apply_weight_decay(self, variables):
            for variable in variables:
                self._scaled(variable, lambda v=variable: super(Scaled, self)._apply_weight_decay([v]))

    Scaled.__name__ = Scaled.__qualname__ = f"Scaled{base.__name__}"
    return Scaled


__all__ = ["LARS", "LARS_EXCLUDE", "WarmupDecay", "adamw", "lars", "scale_learning_rates"]
