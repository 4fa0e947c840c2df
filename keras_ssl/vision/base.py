"""The shared base of the vision methods: images in, two views, embeddings from all replicas.

A vision method supplies :meth:`VisionSSLModel.ssl_loss`, computed on embeddings of the **global**
batch (gathered from all replicas with :func:`keras_ssl.training.replica_gather`, gradients flowing
back). Every replica computes the same global loss, so each contributes ``loss / num_replicas``:
negatives span all replicas and batch statistics are global, whatever the strategy.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Sequence, Tuple, Union

from keras_ssl.backend import keras, tf
from keras_ssl.training import RatioMetric, SSLModel, num_replicas, replica_gather

Augment = Union[None, Callable, Tuple[Callable, Callable]]


def as_float_images(images) -> tf.Tensor:
    """uint8 ``[0, 255]`` or float ``[0, 1]`` images ``[batch, H, W, C]`` -> float32 ``[0, 1]``."""
    images = tf.convert_to_tensor(images)
    if images.shape.rank != 4:
        raise ValueError(
            f"Vision methods expect image batches of shape [batch, height, width, channels]; got shape "
            f"{images.shape}. Add a channel axis for grayscale images (x[..., None]) and batch the data."
        )
    if images.dtype == tf.uint8:
        return tf.cast(images, tf.float32) / 255.0
    if not images.dtype.is_floating:
        raise ValueError(f"Images must be uint8 in [0, 255] or float in [0, 1]; got dtype {images.dtype}.")
    return tf.cast(images, tf.float32)


def _clone_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
    config = layer.get_config()
    if isinstance(layer, keras.layers.BatchNormalization) and getattr(layer, "synchronized", False):
        config["synchronized"] = True  # tf_keras drops it from get_config: keep BN statistics global
    return layer.__class__.from_config(config)


def clone_network(model: keras.Model, name: str) -> keras.Model:
    """A copy of ``model`` with its own variables and the same weights (for EMA targets)."""
    try:
        copy = keras.models.clone_model(model, clone_function=_clone_layer)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"Cannot clone {model.name} to make the momentum/target network: use a functional or "
            "Sequential Keras model as the encoder (subclassed models cannot be cloned)."
        ) from err
    copy._name = name
    copy.set_weights(model.get_weights())
    # Stays "trainable": in Keras 2 a frozen BatchNormalization runs in inference mode, but targets
    # use batch statistics like the online network. The optimizer skips it (optimized_variables).
    return copy


class VisionSSLModel(SSLModel):
    """Base of every vision method: the two-view methods (SimCLR, MoCo, BYOL, SimSiam, Barlow Twins,
    VICReg) and the single-image pretexts (autoencoders, colorization, rotation prediction), whose
    :meth:`pretext` returns an ``(input, target)`` pair instead of two views.

    ``encoder``: a built Keras model mapping images ``[batch, H, W, C]`` to features ``[batch, D]``.
    ``augment``: a callable applied to each view, a pair ``(view1, view2)`` of callables (asymmetric
    views, e.g. BYOL), or ``None`` (both views are the inputs; useful for tests). Batches may be
    images or ``(images, labels)``; labels are ignored. ``model(images)`` / ``predict`` return the
    encoder's features.
    """

    min_global_batch = 2

    def __init__(self, encoder: keras.Model, augment: Augment = None, **kwargs):
        super().__init__(**kwargs)
        if not getattr(encoder, "built", False) or not encoder.inputs:
            raise ValueError(
                "The encoder must be a built Keras model with a known input shape, e.g. "
                "vision.backbones.resnet18_cifar((32, 32, 3)) or keras.applications.ResNet50("
                "weights=None, include_top=False, pooling='avg', input_shape=(224, 224, 3))."
            )
        if len(encoder.outputs[0].shape) != 2:
            raise ValueError(
                f"The encoder must output features [batch, dim]; it outputs {encoder.outputs[0].shape}. "
                "Add a pooling layer (e.g. pooling='avg' for keras.applications models)."
            )
        self.encoder = encoder
        self.augment = augment
        self.feature_dim = int(encoder.outputs[0].shape[-1])
        self.image_shape = tuple(encoder.inputs[0].shape[1:])
        # Every weight exists once a method's __init__ has built its heads: callbacks such as
        # BackupAndRestore need a built model.
        self.built = True

    # --- pieces a method supplies -------------------------------------------------------
    def ssl_loss(self, view1: tf.Tensor, view2: tf.Tensor, training: bool
                 ) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
        """Global-batch loss and health values (each a global scalar) for two views.

        May return a third value, the ``step_outputs`` handed to :meth:`post_step` after the
        optimizer step (MoCo: the gathered keys that enter its queue).
        """
        raise NotImplementedError

    def stat_metrics(self) -> list:
        return [RatioMetric(name) for name in self.health_metric_names()]

    def health_metric_names(self) -> Sequence[str]:
        return ("embedding_std",)

    # --- shared plumbing -----------------------------------------------------------------
    def _check_images(self, images: tf.Tensor) -> tf.Tensor:
        images = as_float_images(images)
        channels = images.shape[-1]
        if channels is not None and self.image_shape[-1] is not None and channels != self.image_shape[-1]:
            raise ValueError(
                f"Images have {channels} channels but the encoder takes {self.image_shape[-1]}. "
                "Convert the images (e.g. tf.image.grayscale_to_rgb) or build the encoder for "
                f"{channels} channels."
            )
        return images

    def pretext(self, inputs: Any, training: bool) -> Tuple[tf.Tensor, tf.Tensor]:
        images = self._check_images(inputs)
        if self.augment is None:
            return images, images
        if isinstance(self.augment, (tuple, list)):
            first, second = self.augment
        else:
            first = second = self.augment
        return first(images, training=training), second(images, training=training)

    def gather(self, x: tf.Tensor) -> tf.Tensor:
        """``x`` from all replicas, concatenated along the batch axis (gradients flow back)."""
        return replica_gather(x, axis=0)

    def global_mean(self, per_example: tf.Tensor) -> tf.Tensor:
        """Mean of per-example values ``[local_batch]`` over the global batch (exact for unequal
        replica batches; gradients flow back to this replica's examples)."""
        return tf.reduce_mean(self.gather(tf.cast(per_example, tf.float32)))

    def compute_step(self, views, training: bool):
        view1, view2 = views
        self._check_batch_size(view1)
        loss, health, *step_outputs = self.ssl_loss(view1, view2, training)
        loss = tf.cast(loss, tf.float32)
        share = 1.0 / num_replicas()
        stats = {name: (tf.cast(value, tf.float32) * share, share) for name, value in health.items()}
        return loss * share, stats, (step_outputs[0] if step_outputs else None)

    def compute_loss_and_stats(self, views, training: bool):
        loss_share, stats, _ = self.compute_step(views, training)
        return loss_share, stats

    def _check_batch_size(self, images: tf.Tensor) -> None:
        local = images.shape[0]
        if local is not None and local * num_replicas() < self.min_global_batch:
            raise ValueError(
                f"{type(self).__name__} needs at least {self.min_global_batch} images in a global batch "
                f"(got {local * num_replicas()}): its loss compares images within the batch. Use a "
                "larger batch_size, or drop the last partial batch (dataset.batch(n, drop_remainder=True))."
            )

    def call(self, images, training: bool = False) -> tf.Tensor:
        """Encoder features ``[batch, D]``."""
        if isinstance(images, (tuple, list)):
            images = images[0]
        return self.encoder(self._check_images(images), training=training)

    def get_config(self) -> dict:
        return {}
