"""Exponential-moving-average targets (BYOL, MoCo): momentum schedule, EMA update, weight copy.

The updates run in-graph from either context of a ``tf.distribute`` strategy: inside
``strategy.run`` (e.g. ``SSLModel.post_step``) or outside it. Mirrored variables are updated
through ``strategy.extended.update``, so every replica's copy receives the same update.
"""

from __future__ import annotations

import math
from typing import Iterable, List, Union

from keras_ssl.backend import keras, tf

Variables = Union[keras.layers.Layer, Iterable[tf.Variable]]


def cosine_momentum(step, total_steps: int, base: float = 0.996) -> tf.Tensor:
    """BYOL's target decay rate ``tau = 1 - (1 - base) (cos(pi k / K) + 1) / 2``.

    Rises from ``base`` at ``k = 0`` to 1 at ``k = K = total_steps`` (and stays 1 after).
    Returns a float32 scalar; ``step`` may be a Python number or a tensor (``optimizer.iterations``).
    """
    progress = tf.clip_by_value(tf.cast(step, tf.float32) / float(max(total_steps, 1)), 0.0, 1.0)
    return 1.0 - (1.0 - base) * (tf.cos(math.pi * progress) + 1.0) / 2.0


def _variables(source: Variables) -> List[tf.Variable]:
    return list(source.weights) if isinstance(source, keras.layers.Layer) else list(source)


def _pairs(targets: Variables, onlines: Variables):
    targets, onlines = _variables(targets), _variables(onlines)
    if len(targets) != len(onlines):
        raise ValueError(f"{len(targets)} target variables but {len(onlines)} online variables.")
    for target, online in zip(targets, onlines):
        if not target.shape.is_compatible_with(online.shape):
            raise ValueError(
                f"Shape mismatch: target {target.name} {target.shape} vs {online.name} {online.shape}."
            )
    return list(zip(targets, onlines))


def _update(target: tf.Variable, fn, *args) -> None:
    """Apply ``fn(target_component, *args)`` to every replica copy of ``target``."""
    if getattr(target, "synchronization", None) == tf.VariableSynchronization.ON_READ:
        # Sync-on-read variables (BN moving statistics) hold one copy per replica that is written
        # locally: each replica updates its own copy from its own online copy.
        fn(target, *args)
    else:
        tf.distribute.get_strategy().extended.update(target, fn, args=args, group=False)


def ema_update(target_variables: Variables, online_variables: Variables, momentum) -> None:
    """``target <- m * target + (1 - m) * online`` for every pair of variables, in place.

    Args:
        target_variables, online_variables: equal-length lists of variables (or layers/models,
            whose ``weights`` are used, in order), paired by position.
        momentum: ``m``, a float or a float scalar tensor (e.g. :func:`cosine_momentum`).
    """

    def assign(target, online, m):
        m = tf.cast(m, target.dtype)
        return target.assign(m * target + (1.0 - m) * tf.cast(online, target.dtype))

    momentum = tf.convert_to_tensor(momentum, tf.float32)
    for target, online in _pairs(target_variables, online_variables):
        _update(target, assign, online, momentum)


def copy_weights(target_model: Variables, online_model: Variables) -> None:
    """Copy every weight of ``online_model`` into ``target_model`` (models/layers or variable lists)."""

    def assign(target, online):
        return target.assign(tf.cast(online, target.dtype))

    for target, online in _pairs(target_model, online_model):
        _update(target, assign, online)


__all__ = ["copy_weights", "cosine_momentum", "ema_update"]
