"""Pixel decoders: pooled encoder features ``[batch, D]`` back to images ``[batch, H, W, C]``.

The reconstruction pretexts (:mod:`keras_ssl.vision.methods.reconstruction`) read the same pooled
features a downstream classifier reads, so whatever the decoder needs to rebuild the image must pass
through them. The default decoder works for any encoder with a static input size (the package's
backbones, ``keras.applications`` models with ``pooling="avg"``, a user's model).
"""

from __future__ import annotations

from typing import Optional, Tuple

from keras_ssl.backend import keras


def _start_size(height: int, width: int, max_upsamplings: int = 3) -> Tuple[int, int, int]:
    """``(h0, w0, k)``: halve both sides while they stay even and at least 8 (at most 3 times)."""
    k = 0
    while k < max_upsamplings and height % 2 == 0 and width % 2 == 0 and min(height, width) >= 8:
        height, width, k = height // 2, width // 2, k + 1
    return height, width, k


def pixel_decoder(
    feature_dim: int,
    output_shape: Tuple[int, int, int],
    width: int = 32,
    condition_channels: int = 0,
    output_activation: Optional[str] = "sigmoid",
    name: str = "pixel_decoder",
) -> keras.Model:
    """``[batch, feature_dim]`` (and a ``[batch, H, W, condition_channels]`` image) -> ``[batch, H, W, C]``.

    A ``Dense`` layer lays the features out on an ``h0 x w0`` grid (``H / 2^k``, ``k <= 3``: 28 -> 7,
    32 -> 4), then ``k`` stages of a stride-2 transposed convolution and a 3x3 convolution (ReLU,
    ``width * 2^(k - 1 - i)`` filters), then a 3x3 convolution to ``C`` channels with
    ``output_activation`` (``"sigmoid"`` for pixels in ``[0, 1]``, ``None`` for unbounded targets or
    logits). With ``condition_channels > 0`` the decoder also takes an image at full resolution (e.g.
    colorization's lightness), concatenated before two final 3x3 convolutions. No batch norm: the
    decoder's output for an image does not depend on the rest of its batch or on the replica count.
    The output layer computes in float32 under mixed precision.
    """
    height, width_px, channels = (int(d) for d in output_shape)
    h0, w0, k = _start_size(height, width_px)
    features = keras.Input((int(feature_dim),), name="features")
    top = width * 2 ** max(k - 1, 0)
    x = keras.layers.Dense(h0 * w0 * top, activation="relu", name="to_grid")(features)
    x = keras.layers.Reshape((h0, w0, top), name="grid")(x)
    for i in range(k):
        filters = width * 2 ** (k - 1 - i)
        x = keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same", activation="relu",
                                         name=f"up{i + 1}")(x)
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{i + 1}")(x)
    inputs = [features]
    if condition_channels:
        condition = keras.Input((height, width_px, int(condition_channels)), name="condition")
        inputs.append(condition)
        x = keras.layers.Concatenate(name="with_condition")([x, condition])
        for j in range(2):
            x = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name=f"fuse{j + 1}")(x)
    outputs = keras.layers.Conv2D(channels, 3, padding="same", activation=output_activation,
                                  dtype="float32", name="pixels")(x)
    return keras.Model(inputs if condition_channels else features, outputs, name=name)


__all__ = ["pixel_decoder"]
