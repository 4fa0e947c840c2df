"""Counter-based random numbers: uniforms that are a pure function of their coordinates.

``uniform(seed, stream, step, row_key, index)`` hashes its integer arguments with the murmur3
finaliser in ``uint32`` arithmetic (wrap-around is defined, and XLA compiles it). Because a draw
depends only on its coordinates, the masks of an example do not depend on which replica it lands
on, on the batch it shares, or on how many replicas train: one replica or many see the same masks.
"""

from __future__ import annotations

from keras_ssl.backend import tf

_U32 = tf.uint32


def _c(value: int) -> tf.Tensor:
    return tf.constant(value & 0xFFFFFFFF, _U32)


def fmix32(x: tf.Tensor) -> tf.Tensor:
    """Murmur3's 32-bit finaliser: a bijective avalanche mix of ``uint32`` values."""
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, _c(16)))
    x = x * _c(0x85EBCA6B)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, _c(13)))
    x = x * _c(0xC2B2AE35)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, _c(16)))


def to_u32(x) -> tf.Tensor:
    """Reinterpret an integer tensor (int32/int64/Python int) as ``uint32`` (low 32 bits)."""
    x = tf.convert_to_tensor(x)
    if x.dtype == _U32:
        return x
    if x.dtype != tf.int64:
        x = tf.cast(x, tf.int64)
    return tf.cast(tf.bitwise.bitwise_and(x, tf.constant(0xFFFFFFFF, tf.int64)), _U32)


def row_keys(ids: tf.Tensor, valid=None) -> tf.Tensor:
    """Content hash of each row of ``ids`` ``[batch, length]`` -> ``uint32 [batch, 1]``.

    ``valid`` (bool ``[batch, length]``, optional) marks the positions that count: padding left
    out of the hash makes a row's key, and so its masks, independent of how far its batch pads it.
    """
    ids = to_u32(ids)
    pos = to_u32(tf.range(tf.shape(ids)[-1]))
    mixed = fmix32(ids * _c(0x9E3779B1) + pos * _c(0x85EBCA77) + _c(0x165667B1))
    if valid is not None:
        mixed = tf.where(tf.cast(valid, tf.bool), mixed, tf.zeros_like(mixed))
    return fmix32(tf.reduce_sum(mixed, axis=-1, keepdims=True))


def random_bits(seed, stream: int, step, row_key: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """``uint32`` bits for every ``index`` (broadcast against ``row_key``)."""
    key = fmix32(_c(stream * 0x27D4EB2F) + to_u32(step) * _c(0x9E3779B9))
    key = fmix32(tf.bitwise.bitwise_xor(to_u32(seed), key))
    key = fmix32(tf.bitwise.bitwise_xor(key, row_key))
    return fmix32(tf.bitwise.bitwise_xor(key, fmix32(to_u32(index) + _c(0x632BE5AB))))


def uniform(seed, stream: int, step, row_key: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """Float32 uniforms in ``[0, 1)`` with 24 random bits, one per ``index`` element."""
    bits = tf.bitwise.right_shift(random_bits(seed, stream, step, row_key, index), _c(8))
    return tf.cast(bits, tf.float32) * (1.0 / (1 << 24))
