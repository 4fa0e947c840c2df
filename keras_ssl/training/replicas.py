"""Cross-replica reductions that are exact under any ``tf.distribute`` strategy.

Every loss in keras_ssl returns this replica's *share* of the global-batch loss: the shares of
all replicas add up to the loss of the whole global batch. Keras then sums gradients over
replicas, so one replica or many give the same update.
"""

from __future__ import annotations

from keras_ssl.backend import tf


def num_replicas() -> int:
    """Number of replicas training in sync under the current strategy (1 outside any)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def replica_sum(x: tf.Tensor) -> tf.Tensor:
    """Sum ``x`` over all replicas (identity with one replica). Not differentiable by design."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return tf.stop_gradient(x)
    return tf.stop_gradient(ctx.all_reduce(tf.distribute.ReduceOp.SUM, x))


def replica_gather(x: tf.Tensor, axis: int = 0) -> tf.Tensor:
    """Concatenate ``x`` from all replicas along ``axis`` in replica order; gradients flow back."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return x
    return ctx.all_gather(x, axis=axis)
