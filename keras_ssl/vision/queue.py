"""MoCo's first-in-first-out queue of negative keys."""

from __future__ import annotations

from keras_ssl.backend import keras, tf
from keras_ssl.losses import nearest_neighbours


class MemoryQueue(keras.layers.Layer):
    """A ring buffer ``[size, dim]`` of keys with a write pointer, as non-trainable float32 weights.

    Starts filled with random unit vectors (MoCo's initialisation). :meth:`enqueue` overwrites the
    oldest entries with a batch of keys, wrapping around the end; the caller passes the *global*
    batch (already gathered from all replicas) so every replica's copy holds the same queue. Its
    variables are tracked, so the queue is saved with the model and by ``tf.train.Checkpoint``.
    """

    def __init__(self, size: int, dim: int, seed: int = 0, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if size < 1 or dim < 1:
            raise ValueError(f"size and dim must be positive, got {size}, {dim}.")
        self.size, self.dim, self.seed = int(size), int(dim), int(seed)

        def unit_rows(shape, dtype=None):
            noise = tf.random.stateless_normal(shape, seed=[self.seed, 0], dtype=tf.float32)
            return tf.math.l2_normalize(noise, axis=-1)

        self.queue = self.add_weight(
            "queue", shape=(self.size, self.dim), dtype=tf.float32, initializer=unit_rows, trainable=False
        )
        self.pointer = self.add_weight(
            "pointer", shape=(), dtype=tf.int64, initializer="zeros", trainable=False
        )

    def values(self) -> tf.Tensor:
        """The buffer ``[size, dim]`` (order of slots, not of age)."""
        return tf.convert_to_tensor(self.queue)

    def call(self, inputs=None) -> tf.Tensor:
        """Returns :meth:`values`; the input is ignored."""
        return self.values()

    def enqueue(self, keys: tf.Tensor) -> None:
        """Write ``keys`` ``[batch, dim]`` at the pointer, wrapping around, and advance the pointer.

        Equivalent to writing the rows one by one: a batch larger than the queue leaves its last
        ``size`` rows. ``keys`` are stored as given (cast to float32, without gradient; the caller
        normalises them).
        """
        keys = tf.stop_gradient(tf.cast(keys, tf.float32))
        keys = tf.ensure_shape(keys, [None, self.dim])

        def write(queue, keys):
            # Inside ``extended.update`` reads and writes of ``self.pointer`` touch the copy on
            # ``queue``'s replica, so every replica's buffer and pointer advance identically.
            pointer = self.pointer.read_value()
            n = tf.shape(keys, out_type=tf.int64)[0]
            keep = tf.minimum(n, self.size)
            indices = (pointer + n - keep + tf.range(keep, dtype=tf.int64)) % self.size
            queue.scatter_nd_update(indices[:, None], keys[n - keep :])
            return self.pointer.assign((pointer + n) % self.size)

        tf.distribute.get_strategy().extended.update(self.queue, write, args=(keys,), group=False)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"size": self.size, "dim": self.dim, "seed": self.seed})
        return config


class SupportSet(MemoryQueue):
    """NNCLR's support set: a :class:`MemoryQueue` of L2-normalised projections that also counts its
    filled slots (``filled``, an int64 weight saved with the model) and looks up nearest neighbours.

    Until the ring buffer has wrapped around, only the ``filled`` slots written so far are searched
    (the random initial rows are never returned); with no slot filled yet, :meth:`nearest_neighbours`
    returns the (normalised) queries themselves.
    """

    def __init__(self, size: int, dim: int, seed: int = 0, **kwargs):
        super().__init__(size, dim, seed, **kwargs)
        self.filled = self.add_weight(
            "filled", shape=(), dtype=tf.int64, initializer="zeros", trainable=False
        )

    def enqueue(self, keys: tf.Tensor) -> None:
        """:meth:`MemoryQueue.enqueue`, and ``filled <- min(filled + batch, size)``."""
        super().enqueue(keys)
        n = tf.shape(keys, out_type=tf.int64)[0]

        def count(filled, n):
            return filled.assign(tf.minimum(filled + n, self.size))

        tf.distribute.get_strategy().extended.update(self.filled, count, args=(n,), group=False)

    def fill_fraction(self) -> tf.Tensor:
        """Filled slots / size, a float32 scalar in ``[0, 1]``."""
        return tf.cast(tf.convert_to_tensor(self.filled), tf.float32) / float(self.size)

    def nearest_neighbours(self, queries: tf.Tensor) -> tf.Tensor:
        """The most cosine-similar filled row of the set for each query ``[N, dim] -> [N, dim]``
        (float32, without gradient); see :func:`keras_ssl.losses.nearest_neighbours`."""
        filled = tf.convert_to_tensor(self.filled)
        valid = tf.range(self.size, dtype=tf.int64) < filled
        neighbours, _ = nearest_neighbours(queries, self.values(), valid)
        own = tf.math.l2_normalize(tf.cast(queries, tf.float32), axis=-1)
        return tf.stop_gradient(tf.where(filled > 0, neighbours, own))


__all__ = ["MemoryQueue", "SupportSet"]
