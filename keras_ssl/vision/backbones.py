"""Image encoders ``[batch, H, W, C] -> [batch, features]`` for the vision SSL methods."""

from __future__ import annotations

import inspect
from typing import Optional, Sequence, Tuple

from keras_ssl.backend import keras, tf


def _batchnorm(sync: bool, name: str) -> keras.layers.BatchNormalization:
    # PyTorch's defaults (momentum 0.1 -> Keras 0.9, eps 1e-5), as in the papers' CIFAR ResNets.
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, synchronized=sync, name=name)


def _conv(filters: int, kernel: int, stride: int, name: str) -> keras.layers.Conv2D:
    return keras.layers.Conv2D(
        filters,
        kernel,
        strides=stride,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=name,
    )


def _basic_block(x: tf.Tensor, filters: int, stride: int, sync: bool, name: str) -> tf.Tensor:
    """ResNet BasicBlock: two 3x3 convs with a (projected when the shape changes) identity shortcut."""
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _conv(filters, 1, stride, f"{name}_shortcut_conv")(x)
        shortcut = _batchnorm(sync, f"{name}_shortcut_bn")(shortcut)
    x = _conv(filters, 3, stride, f"{name}_conv1")(x)
    x = keras.layers.ReLU(name=f"{name}_relu1")(_batchnorm(sync, f"{name}_bn1")(x))
    x = _conv(filters, 3, 1, f"{name}_conv2")(x)
    x = _batchnorm(sync, f"{name}_bn2")(x)
    return keras.layers.ReLU(name=f"{name}_out")(keras.layers.Add(name=f"{name}_add")([x, shortcut]))


def resnet18_cifar(
    input_shape: Tuple[int, int, int] = (32, 32, 3),
    width: int = 64,
    sync_batchnorm: bool = False,
    name: str = "resnet18_cifar",
) -> keras.Model:
    """CIFAR-style ResNet-18 ``[batch, H, W, C] -> [batch, 8 * width]`` (512 features at width 64).

    3x3 stride-1 stem without max-pool, four stages of two BasicBlocks with ``width * (1, 2, 4, 8)``
    filters (strides 1, 2, 2, 2), global average pooling. About 11.17M trainable parameters at width 64.
    """
    inputs = keras.Input(shape=input_shape, name="images")
    x = _conv(width, 3, 1, "stem_conv")(inputs)
    x = keras.layers.ReLU(name="stem_relu")(_batchnorm(sync_batchnorm, "stem_bn")(x))
    for stage, (multiplier, stride) in enumerate(zip((1, 2, 4, 8), (1, 2, 2, 2))):
        for block in range(2):
            x = _basic_block(
                x,
                width * multiplier,
                stride if block == 0 else 1,
                sync_batchnorm,
                f"stage{stage + 1}_block{block + 1}",
            )
    outputs = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, outputs, name=name)


def small_cnn(
    input_shape: Tuple[int, int, int] = (8, 8, 1),
    width: int = 32,
    sync_batchnorm: bool = False,
    name: str = "small_cnn",
    strides: Sequence[int] = (1, 2, 2),
) -> keras.Model:
    """A small conv net for fast tests ``[batch, H, W, C] -> [batch, 2 ** (len(strides) - 1) * width]``.

    One conv3x3-BN-ReLU block per entry of ``strides``, with ``width, 2 width, 4 width, ...`` filters,
    then global average pooling. The default, three blocks with strides ``(1, 2, 2)``, works from
    4x4 inputs up (8x8 digits, 32x32 images) but sees only 9x9 pixels per feature before the
    pooling; ``strides=(2, 2, 2, 2)`` sees 31x31 (all of a 32x32 digit) at a fraction of the cost.
    """
    inputs = keras.Input(shape=input_shape, name="images")
    x = inputs
    for i, stride in enumerate(strides):
        x = _conv(width * 2**i, 3, int(stride), f"conv{i + 1}")(x)
        x = keras.layers.ReLU(name=f"relu{i + 1}")(_batchnorm(sync_batchnorm, f"bn{i + 1}")(x))
    outputs = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, outputs, name=name)


def from_keras_application(
    name: str, input_shape: Optional[Tuple[int, int, int]] = None, **kwargs
) -> keras.Model:
    """Any ``keras.applications`` model as a randomly initialised encoder ``[batch, H, W, C] -> [batch, F]``.

    ``name`` is the constructor's name (``"ResNet50"``; matched case-insensitively). Built with
    ``weights=None, include_top=False, pooling="avg"``; ``kwargs`` go to the constructor. Some models
    (EfficientNet, ConvNeXt) rescale raw ``[0, 255]`` pixels internally; feed them what they expect.
    """
    constructors = {
        key: value
        for key, value in vars(keras.applications).items()
        if callable(value) and not inspect.ismodule(value) and not key.startswith("_")
    }
    constructor = constructors.get(name)
    if constructor is None:
        matches = [value for key, value in constructors.items() if key.lower() == name.lower()]
        if len(matches) != 1:
            raise ValueError(
                f"Unknown keras.applications model {name!r}; choose from {sorted(constructors)}."
            )
        constructor = matches[0]
    kwargs.setdefault("weights", None)
    kwargs.setdefault("include_top", False)
    kwargs.setdefault("pooling", "avg")
    return constructor(input_shape=input_shape, **kwargs)


__all__ = ["from_keras_application", "resnet18_cifar", "small_cnn"]
