"""The shared base of the vision methods: images in, two views, embeddings from all replicas.

A vision method supplies :meth:`VisionSSLModel.ssl_loss`, computed on embeddings of the **global**
batch (gathered from all replicas with :func:`keras_ssl.training.replica_gather`, gradients flowing
back). Every replica computes the same global loss, so each contributes ``loss / num_replicas``:
negatives span all replicas and batch statistics are global, whatever the strategy.

Multi-view methods (SwAV, DINO) set ``multi_view = True`` and supply
:meth:`VisionSSLModel.multi_view_loss` instead: they receive **all** views of a
:class:`~keras_ssl.augment.MultiCrop` (globals first), or the two views of a plain augmentation.
:meth:`VisionSSLModel.encode_views` runs a network once per resolution (globals together, locals
together); such an encoder must accept any image size: ``input_shape=(None, None, C)`` and global
pooling.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from keras_ssl.augment.multi_crop import MultiCrop
from keras_ssl.backend import keras, tf
from keras_ssl.training import RatioMetric, SSLModel, num_replicas, replica_gather, replica_sum

Augment = Union[None, Callable, Tuple[Callable, Callable], MultiCrop]


class Views(NamedTuple):
    """What :meth:`VisionSSLModel.pretext` gives a multi-view method: ``views`` (globals first, each
    ``[batch, H_v, W_v, C]``) and how many of them are global crops."""

    views: List[tf.Tensor]
    num_global: int


def _multi_view_methods() -> List[str]:
    """Names of the loaded methods that take a MultiCrop (SwAV and DINO even before they are imported)."""
    found, stack = {"SwAV", "DINO"}, list(VisionSSLModel.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if getattr(cls, "multi_view", False) and not cls.__name__.startswith("_"):
            found.add(cls.__name__)
    return sorted(found)


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


def channel_fix(channels: int, wanted: int) -> str:
    """How to turn ``channels``-channel images into the ``wanted`` channels an encoder takes."""
    if (channels, wanted) == (1, 3):
        return "repeat the grey channel: np.repeat(x, 3, axis=-1) or tf.image.grayscale_to_rgb(x)"
    if (channels, wanted) == (3, 1):
        return "convert them to grayscale: tf.image.rgb_to_grayscale(x)"
    if (channels, wanted) == (4, 3):
        return "drop the alpha channel: x[..., :3]"
    return f"convert the images, or build the encoder for {channels}-channel images"


def check_channels(channels: Optional[int], wanted: Optional[int]) -> None:
    """A ``ValueError`` with the fix when images have other ``channels`` than the encoder takes (unknown
    counts pass)."""
    if None not in (channels, wanted) and channels != wanted:
        raise ValueError(f"Images have {channels} channels but the encoder takes {wanted}. "
                         f"Fix: {channel_fix(channels, wanted)}.")


def check_image_input(x, image_shape: Tuple[Optional[int], ...], check_size: bool = True) -> None:
    """Eager check of what ``fit``/``evaluate``/``predict`` get (an array, a tensor or a batched
    ``tf.data.Dataset`` of images or ``(images, ...)``) against an encoder's ``(H, W, C)``: a
    ``ValueError`` naming the fix instead of Keras's trace of the graph. Unknown shapes pass; the size
    is checked only with ``check_size`` (methods whose augmentation crops to the encoder's size skip
    it). Also warns about float pixels beyond ``[0, 1]``."""
    warn_if_float_pixels_exceed_one(x)
    dataset = isinstance(x, tf.data.Dataset)
    if dataset:
        spec = x.element_spec
        spec = spec[0] if isinstance(spec, (tuple, list)) and spec else spec
        shape = spec.shape if isinstance(spec, tf.TensorSpec) else None
    else:
        shape = tf.TensorShape(x.shape) if hasattr(x, "shape") and hasattr(x, "dtype") else None
    if shape is None or shape.rank is None:
        return
    what = f"a dataset of elements {shape}" if dataset else f"images of shape {tuple(shape)}"
    if shape.rank != 4:
        fix = ("batch it: dataset.batch(32)" if dataset and shape.rank == 3 else
               "add a channel axis for grayscale images: x[..., None]" if shape.rank == 3 else
               "pass a batch of images")
        raise ValueError(f"Images must be batches [batch, height, width, channels]; got {what}. Fix: {fix}.")
    (height, width, channels), (want_h, want_w, want_c) = tuple(shape[1:]), tuple(image_shape)
    check_channels(channels, want_c)
    if check_size and None not in (height, width, want_h, want_w) and (height, width) != (want_h, want_w):
        raise ValueError(
            f"Images are {height}x{width} but the encoder takes {want_h}x{want_w}. Fix: resize them, "
            f"e.g. tf.image.resize(x, ({want_h}, {want_w})) or vision.image_dataset(..., "
            f"image_size=({want_h}, {want_w})), or use an encoder that takes any size.")


def warn_if_float_pixels_exceed_one(images) -> None:
    """Warn when a floating NumPy array of images reaches above 2: keras_ssl reads float images as
    ``[0, 1]`` (augmentations clip there), so 0-255 pixels given as floats would train on white."""
    if not isinstance(images, np.ndarray) or images.dtype.kind != "f" or images.size == 0:
        return
    top = float(np.nanmax(images))
    if top > 2.0:
        warnings.warn(
            f"Float images reach {top:g}, but keras_ssl reads float images as [0, 1] (augmentations clip "
            "there) and uint8 images as [0, 255]. If these are 0-255 pixels, pass them as uint8 "
            "(x.astype('uint8')) or divide by 255.", UserWarning, stacklevel=3)


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
    #: ``True`` for methods that implement :meth:`multi_view_loss` (all views, e.g. a MultiCrop's).
    multi_view = False
    #: ``False`` where the encoder sees something else than the images' channels and size (a
    #: grayscale lightness channel, tiles): ``fit`` then checks the images' rank only, before tracing.
    encoder_sees_the_images = True

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
        self._check_augment(augment)
        self.augment = augment
        self.feature_dim = int(encoder.outputs[0].shape[-1])
        self.image_shape = tuple(encoder.inputs[0].shape[1:])
        if isinstance(augment, MultiCrop):
            for size in (augment.global_size, augment.local_size):
                if size is not None:
                    self._check_view_size((size, size))
            augment.build_state()  # its step counters are model weights (checkpointed) from the start
        # Every weight exists once a method's __init__ has built its heads: callbacks such as
        # BackupAndRestore need a built model.
        self.built = True

    def fit(self, x=None, *args, **kwargs):
        """``keras.Model.fit`` (see :meth:`SSLModel.fit`), after an eager check of the images' rank and
        channels (:func:`check_image_input`), and of their size when there is no augmentation (one
        that crops decides the views' size itself)."""
        if self.encoder_sees_the_images:
            check_image_input(x, self.image_shape, check_size=self.augment is None)
        else:
            check_image_input(x, (None, None, None), check_size=False)
        return super().fit(x, *args, **kwargs)

    # --- pieces a method supplies -------------------------------------------------------
    def ssl_loss(self, view1: tf.Tensor, view2: tf.Tensor, training: bool
                 ) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
        """Global-batch loss and health values (each a global scalar) for two views.

        May return a third value, the ``step_outputs`` handed to :meth:`post_step` after the
        optimizer step (MoCo: the gathered keys that enter its queue).
        """
        raise NotImplementedError

    def multi_view_loss(self, views: List[tf.Tensor], num_global: int, training: bool
                        ) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
        """Global-batch loss and health values for all views (``multi_view = True`` methods only).

        ``views``: ``num_global`` global views then the local ones, each ``[local_batch, H_v, W_v, C]``
        (two global views for a plain augmentation or a pair). May return a third value, the
        ``step_outputs`` for :meth:`post_step`, as :meth:`ssl_loss`.
        """
        raise NotImplementedError

    def stat_metrics(self) -> list:
        return [RatioMetric(name) for name in self.health_metric_names()]

    def health_metric_names(self) -> Sequence[str]:
        return ("embedding_std",)

    # --- shared plumbing -----------------------------------------------------------------
    def _check_images(self, images: tf.Tensor) -> tf.Tensor:
        images = as_float_images(images)
        check_channels(images.shape[-1], self.image_shape[-1])
        return images

    def _check_augment(self, augment) -> None:
        if isinstance(augment, MultiCrop) and not self.multi_view:
            raise ValueError(
                f"{type(self).__name__} takes an augmentation callable (or a pair of them), not a MultiCrop: "
                "it compares two views of the same size. Multi-crop views are for the multi-view methods: "
                f"{', '.join(_multi_view_methods())}."
            )

    def _check_view_size(self, size: Tuple[Optional[int], Optional[int]]) -> None:
        """A clear error for an encoder whose fixed input size rejects a view of ``size`` (H, W)."""
        fixed = tuple(self.image_shape[:2])
        if any(f is not None and s is not None and f != s for f, s in zip(fixed, size)):
            raise ValueError(
                f"The encoder takes {fixed[0]}x{fixed[1]} images but gets {size[0]}x{size[1]} views: a "
                "multi-crop encoder must accept any size. Build it with input_shape=(None, None, C) and "
                "global pooling, e.g. vision.backbones.small_cnn((None, None, C)) or "
                "resnet18_cifar((None, None, 3))."
            )

    def pretext(self, inputs: Any, training: bool) -> Union[Tuple[tf.Tensor, tf.Tensor], Views]:
        """Two views ``(view1, view2)``; for ``multi_view`` methods a :class:`Views` of all views."""
        images = self._check_images(inputs)
        self._check_augment(self.augment)
        if isinstance(self.augment, MultiCrop):
            return Views(self.augment(images, training=training), self.augment.num_global)
        if self.augment is None:
            pair = (images, images)
        else:
            if isinstance(self.augment, (tuple, list)):
                first, second = self.augment
            else:
                first = second = self.augment
            pair = (first(images, training=training), second(images, training=training))
        return Views(list(pair), 2) if self.multi_view else pair

    def encode_views(self, views: Sequence[tf.Tensor], training: bool,
                     network: Optional[Callable] = None) -> List[tf.Tensor]:
        """``network`` (default: the encoder) on every view, one call per run of same-size views.

        Consecutive views of one size (the globals, then the locals) are concatenated along the batch
        axis and go through ``network`` together, as in the official SwAV/DINO code (batch norm sees
        them as one batch). Returns one output ``[batch, ...]`` per view, in order.
        """
        network = network or self.encoder
        groups: List[List[tf.Tensor]] = []
        for view in views:
            size = tuple(view.shape[1:3])
            if groups and tuple(groups[-1][0].shape[1:3]) == size and None not in size:
                groups[-1].append(view)
            else:
                self._check_view_size(size)
                groups.append([view])
        outputs: List[tf.Tensor] = []
        for group in groups:
            out = network(tf.concat(group, axis=0) if len(group) > 1 else group[0], training=training)
            outputs.extend(tf.split(out, len(group), axis=0) if len(group) > 1 else [out])
        return outputs

    def gather(self, x: tf.Tensor) -> tf.Tensor:
        """``x`` from all replicas, concatenated along the batch axis (gradients flow back)."""
        return replica_gather(x, axis=0)

    def global_mean(self, per_example: tf.Tensor) -> tf.Tensor:
        """Mean of per-example values ``[local_batch]`` over the global batch (exact for unequal
        replica batches; gradients flow back to this replica's examples)."""
        return tf.reduce_mean(self.gather(tf.cast(per_example, tf.float32)))

    def compute_step(self, views, training: bool):
        if self.multi_view:
            views, num_global = views
            for view in views:
                self._check_batch_size(view)
            views = self._assert_global_batch(list(views))
            loss, health, *step_outputs = self.multi_view_loss(views, num_global, training)
        else:
            view1, view2 = views
            self._check_batch_size(view1)
            self._check_batch_size(view2)
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

    def _assert_global_batch(self, views: List[tf.Tensor]) -> List[tf.Tensor]:
        """Under several replicas with batches of unknown size, stop every replica with a clear error
        before any collective op when the global batch is too small (a replica without images would
        otherwise fail deep inside synchronised batch norm)."""
        replicas = num_replicas()
        if replicas == 1 or views[0].shape[0] is not None:
            return views
        global_batch = replica_sum(tf.shape(views[0])[0])  # the same value on every replica
        needed = max(self.min_global_batch, replicas)
        check = tf.debugging.assert_greater_equal(
            global_batch, needed,
            message=f"{type(self).__name__} needs a global batch of at least {needed} images (at least "
                    f"{self.min_global_batch}, and one per replica on {replicas} replicas). Use a larger "
                    "batch_size, or drop the last partial batch (dataset.batch(n, drop_remainder=True)).")
        with tf.control_dependencies([check]):
            return [tf.identity(v) for v in views]

    def call(self, images, training: bool = False) -> tf.Tensor:
        """Encoder features ``[batch, D]``."""
        if isinstance(images, (tuple, list)):
            images = images[0]
        return self.encoder(self._check_images(images), training=training)

    def get_config(self) -> dict:
        return {}
