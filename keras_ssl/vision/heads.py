"""MLP projection and prediction heads, with factories carrying each paper's defaults."""

from __future__ import annotations

from typing import Sequence

from keras_ssl.backend import keras, tf


def _batchnorm(synchronized: bool, name: str, affine: bool = True) -> keras.layers.BatchNormalization:
    # PyTorch's BatchNorm1d defaults (momentum 0.1 -> Keras 0.9, eps 1e-5), which the papers' code uses.
    return keras.layers.BatchNormalization(
        momentum=0.9, epsilon=1e-5, center=affine, scale=affine, synchronized=synchronized, name=name
    )


class MLPHead(keras.layers.Layer):
    """``[batch, in] -> [batch, output_dim]``: ``(Dense -> BN -> ReLU)`` per hidden layer, then ``Dense``.

    Hidden ``Dense`` layers have no bias when a BN follows (its ``beta`` replaces it). With
    ``last_batchnorm`` the output goes through a BN without affine parameters (SimSiam's projector).
    ``synchronized_bn`` makes BN statistics global over the replicas of a ``tf.distribute`` strategy
    (``BatchNormalization(synchronized=True)``; a plain BN with a single replica).
    """

    def __init__(
        self,
        hidden_dims: Sequence[int] = (2048,),
        output_dim: int = 128,
        batchnorm: bool = True,
        last_batchnorm: bool = False,
        last_bias: bool = True,
        synchronized_bn: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_dims = tuple(int(d) for d in hidden_dims)
        self.output_dim = int(output_dim)
        self.batchnorm = bool(batchnorm)
        self.last_batchnorm = bool(last_batchnorm)
        self.last_bias = bool(last_bias)
        self.synchronized_bn = bool(synchronized_bn)
        self.hidden_dense = [
            keras.layers.Dense(dim, use_bias=not self.batchnorm, name=f"dense_{i}")
            for i, dim in enumerate(self.hidden_dims)
        ]
        self.hidden_norms = (
            [_batchnorm(self.synchronized_bn, f"batchnorm_{i}") for i in range(len(self.hidden_dims))]
            if self.batchnorm
            else []
        )
        self.output_layer = keras.layers.Dense(self.output_dim, use_bias=self.last_bias, name="output")
        self.output_norm = (
            _batchnorm(self.synchronized_bn, "output_batchnorm", affine=False)
            if self.last_batchnorm
            else None
        )

    def call(self, inputs: tf.Tensor, training=None) -> tf.Tensor:
        x = inputs
        for i, dense in enumerate(self.hidden_dense):
            x = dense(x)
            if self.batchnorm:
                x = self.hidden_norms[i](x, training=training)
            x = tf.nn.relu(x)
        x = self.output_layer(x)
        if self.output_norm is not None:
            x = self.output_norm(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)[:-1].concatenate([self.output_dim])

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "hidden_dims": list(self.hidden_dims),
                "output_dim": self.output_dim,
                "batchnorm": self.batchnorm,
                "last_batchnorm": self.last_batchnorm,
                "last_bias": self.last_bias,
                "synchronized_bn": self.synchronized_bn,
            }
        )
        return config


def simclr_projection(output_dim: int = 128, hidden_dim: int = 2048, **kwargs) -> MLPHead:
    """SimCLR's projection head ``g``: one hidden layer, ``hidden -> BN -> ReLU -> 128``."""
    kwargs.setdefault("name", "simclr_projection")
    return MLPHead((hidden_dim,), output_dim, **kwargs)


def byol_projection(hidden_dim: int = 4096, output_dim: int = 256, **kwargs) -> MLPHead:
    """BYOL's projector: ``4096 -> BN -> ReLU -> 256``."""
    kwargs.setdefault("name", "byol_projection")
    return MLPHead((hidden_dim,), output_dim, **kwargs)


def byol_prediction(hidden_dim: int = 4096, output_dim: int = 256, **kwargs) -> MLPHead:
    """BYOL's predictor, the same shape as its projector: ``4096 -> BN -> ReLU -> 256``."""
    kwargs.setdefault("name", "byol_prediction")
    return MLPHead((hidden_dim,), output_dim, **kwargs)


def simsiam_projection(output_dim: int = 2048, num_layers: int = 3, **kwargs) -> MLPHead:
    """SimSiam's projector: ``num_layers`` layers of width ``output_dim``, BN (no affine) on the output,
    no output bias (3 layers on ImageNet, 2 in the paper's CIFAR runs)."""
    kwargs.setdefault("name", "simsiam_projection")
    return MLPHead(
        (output_dim,) * (num_layers - 1), output_dim, last_batchnorm=True, last_bias=False, **kwargs
    )


def simsiam_prediction(hidden_dim: int = 512, output_dim: int = 2048, **kwargs) -> MLPHead:
    """SimSiam's bottleneck predictor: ``512 -> BN -> ReLU -> 2048``."""
    kwargs.setdefault("name", "simsiam_prediction")
    return MLPHead((hidden_dim,), output_dim, **kwargs)


def barlow_projection(dim: int = 8192, num_layers: int = 3, **kwargs) -> MLPHead:
    """Barlow Twins' projector: ``8192-8192-8192``, BN + ReLU between layers, no output bias."""
    kwargs.setdefault("name", "barlow_projection")
    return MLPHead((dim,) * (num_layers - 1), dim, last_bias=False, **kwargs)


def vicreg_projection(dim: int = 8192, num_layers: int = 3, **kwargs) -> MLPHead:
    """VICReg's expander: ``8192-8192-8192``, BN + ReLU between layers, no output bias."""
    kwargs.setdefault("name", "vicreg_projection")
    return MLPHead((dim,) * (num_layers - 1), dim, last_bias=False, **kwargs)


def moco_projection(hidden_dim: int = 2048, output_dim: int = 128, **kwargs) -> MLPHead:
    """MoCo v2's MLP head: ``2048 -> ReLU -> 128`` without BN (hidden layer keeps its bias)."""
    kwargs.setdefault("name", "moco_projection")
    kwargs.setdefault("batchnorm", False)
    return MLPHead((hidden_dim,), output_dim, **kwargs)


def rotation_head(hidden_dim: int = 256, num_rotations: int = 4, **kwargs) -> MLPHead:
    """RotNet's classifier on pooled features: ``hidden -> BN -> ReLU -> 4`` rotation logits."""
    kwargs.setdefault("name", "rotation_head")
    return MLPHead((hidden_dim,), num_rotations, **kwargs)


def jigsaw_head(num_permutations: int = 1000, hidden_dim: int = 1024, **kwargs) -> MLPHead:
    """Jigsaw's classifier on the tiles' concatenated features: ``hidden -> BN -> ReLU -> N`` logits, one
    per permutation (the paper's fc7 -> fc8, with 4096 hidden units on 1024-d tile features)."""
    kwargs.setdefault("name", "jigsaw_head")
    return MLPHead((hidden_dim,), num_permutations, **kwargs)


def nnclr_projection(hidden_dim: int = 2048, output_dim: int = 256, num_layers: int = 3, **kwargs) -> MLPHead:
    """NNCLR's projector: ``num_layers`` layers, ``2048 -> BN -> ReLU -> 2048 -> BN -> ReLU -> 256 -> BN``."""
    kwargs.setdefault("name", "nnclr_projection")
    hidden = (hidden_dim,) * (num_layers - 1)
    return MLPHead(hidden, output_dim, last_batchnorm=True, last_bias=False, **kwargs)


def nnclr_prediction(hidden_dim: int = 4096, output_dim: int = 256, **kwargs) -> MLPHead:
    """NNCLR's predictor: ``4096 -> BN -> ReLU -> 256``."""
    kwargs.setdefault("name", "nnclr_prediction")
    return MLPHead((hidden_dim,), output_dim, **kwargs)


class DINOHead(keras.layers.Layer):
    """DINO's projection head ``[batch, in] -> [batch, out_dim]`` (Caron et al., 2021, Sec. 3.1).

    ``num_layers - 1`` hidden ``Dense -> GELU`` layers (width ``hidden_dim``), a linear bottleneck
    ``bottleneck_dim``, L2 normalisation, then a weight-normalised linear layer without bias,
    ``W = g v / ||v||`` per output unit with ``g`` fixed to 1: only the direction ``v``
    (``last_layer_direction``, ``[bottleneck_dim, out_dim]``) is trained, so each output is a cosine
    similarity in ``[-1, 1]``. ``norm_last_layer=False`` trains ``g`` too (``last_layer_scale``,
    ``[out_dim]``, starting at 1; the official code's ``--norm_last_layer false``, solo-learn's CIFAR
    setting): the logits can then outgrow ``[-1, 1]``, which small encoders whose projections start
    alike need to give the teacher confident targets. ``use_batchnorm`` adds BN after the hidden layers
    (the paper's ResNet runs).
    ``kernel_initializer``: of the hidden and bottleneck layers; default the paper's truncated normal with
    std 0.02, which suits widths of hundreds and more (narrow heads shrink their inputs layer after
    layer with it: use e.g. ``"he_normal"`` for tiny test heads).
    """

    def __init__(self, out_dim: int = 65536, hidden_dim: int = 2048, bottleneck_dim: int = 256,
                 num_layers: int = 3, use_batchnorm: bool = False, kernel_initializer=None,
                 norm_last_layer: bool = True, **kwargs):
        super().__init__(**kwargs)
        if num_layers < 1 or min(out_dim, hidden_dim, bottleneck_dim) < 1:
            raise ValueError(
                f"DINOHead needs num_layers >= 1 and positive dims; got num_layers={num_layers}, "
                f"out_dim={out_dim}, hidden_dim={hidden_dim}, bottleneck_dim={bottleneck_dim}."
            )
        self.out_dim, self.hidden_dim = int(out_dim), int(hidden_dim)
        self.bottleneck_dim = int(bottleneck_dim)
        self.num_layers, self.use_batchnorm = int(num_layers), bool(use_batchnorm)
        self.norm_last_layer = bool(norm_last_layer)
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer or keras.initializers.TruncatedNormal(stddev=0.02))

        def init():  # a fresh instance per layer: tf_keras repeats an unseeded instance's values
            return self.kernel_initializer.__class__.from_config(self.kernel_initializer.get_config())

        self.hidden_dense = [keras.layers.Dense(self.hidden_dim, kernel_initializer=init(), name=f"dense_{i}")
                             for i in range(self.num_layers - 1)]
        self.hidden_norms = [_batchnorm(True, f"batchnorm_{i}") for i in range(self.num_layers - 1)
                             ] if self.use_batchnorm else []
        self.bottleneck = keras.layers.Dense(self.bottleneck_dim, kernel_initializer=init(),
                                             name="bottleneck")

    def build(self, input_shape):
        self.last_layer_direction = self.add_weight(
            "last_layer_direction", shape=(self.bottleneck_dim, self.out_dim), dtype=tf.float32,
            initializer=keras.initializers.TruncatedNormal(stddev=0.02), trainable=True,
            experimental_autocast=False,
        )
        if not self.norm_last_layer:  # only then: checkpoints of g-fixed heads keep their variables
            self.last_layer_scale = self.add_weight(
                "last_layer_scale", shape=(self.out_dim,), dtype=tf.float32, initializer="ones",
                trainable=True, experimental_autocast=False)
        super().build(input_shape)

    def last_layer_kernel(self, frozen=None) -> tf.Tensor:
        """The effective last kernel ``[bottleneck_dim, out_dim]``: unit-norm columns (times ``g`` where
        ``norm_last_layer=False``). Where ``frozen`` (a bool scalar) is True, no gradient reaches the
        direction nor ``g`` (DINO's first steps)."""
        direction = self.last_layer_direction
        scale = None if self.norm_last_layer else self.last_layer_scale
        if frozen is not None:
            direction = tf.where(frozen, tf.stop_gradient(direction), direction)
            if scale is not None:
                scale = tf.where(frozen, tf.stop_gradient(scale), scale)
        kernel = tf.math.l2_normalize(direction, axis=0)
        return kernel if scale is None else kernel * scale

    def call(self, inputs: tf.Tensor, training=None, freeze_last_layer=None) -> tf.Tensor:
        x = inputs
        for i, dense in enumerate(self.hidden_dense):
            x = dense(x)
            if self.use_batchnorm:
                x = self.hidden_norms[i](x, training=training)
            x = tf.nn.gelu(x, approximate=False)
        x = tf.math.l2_normalize(tf.cast(self.bottleneck(x), tf.float32), axis=-1)
        return tf.cast(tf.matmul(x, self.last_layer_kernel(freeze_last_layer)), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)[:-1].concatenate([self.out_dim])

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"out_dim": self.out_dim, "hidden_dim": self.hidden_dim,
                       "bottleneck_dim": self.bottleneck_dim, "num_layers": self.num_layers,
                       "use_batchnorm": self.use_batchnorm, "norm_last_layer": self.norm_last_layer,
                       "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)})
        return config


def dino_head(out_dim: int = 65536, hidden_dim: int = 2048, bottleneck_dim: int = 256, **kwargs) -> DINOHead:
    """DINO's head: ``2048 -> GELU -> 2048 -> GELU -> 256 -> L2 -> weight-normalised 65536`` (g = 1)."""
    kwargs.setdefault("name", "dino_head")
    return DINOHead(out_dim, hidden_dim, bottleneck_dim, **kwargs)


__all__ = [
    "DINOHead",
    "MLPHead",
    "barlow_projection",
    "byol_prediction",
    "byol_projection",
    "dino_head",
    "jigsaw_head",
    "moco_projection",
    "nnclr_prediction",
    "nnclr_projection",
    "rotation_head",
    "simclr_projection",
    "simsiam_prediction",
    "simsiam_projection",
    "vicreg_projection",
]
