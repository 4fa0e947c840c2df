"""``ImageClassifier``: a classification head on any image encoder, for probing and fine-tuning.

Three recipes, one class:

* **linear probe**: ``ImageClassifier(encoder, n, freeze_encoder=True)``; only the head trains and
  the encoder runs in inference mode (its weights and batch-norm statistics stay bit-for-bit).
* **full fine-tune**: ``ImageClassifier(encoder, n)``; everything trains.
* **LP-FT** (probe, then fine-tune; Kumar et al. 2022): :meth:`ImageClassifier.fit_lp_ft` trains
  the head on the frozen encoder first, then everything at a smaller learning rate, so the
  pretrained features are not distorted by gradients from a random head.

``freeze_batchnorm=True`` keeps every ``BatchNormalization`` layer of the encoder frozen even
while the rest fine-tunes. A frozen Keras BN layer (``trainable=False``) runs in **inference mode**:
it normalises with its moving statistics and never updates them (nor gamma/beta). That is the usual
choice for small fine-tuning batches.

Labels are integer class ids ``0 .. num_classes - 1`` (sparse). Float, string or one-hot labels
and ids out of range raise ``ValueError`` when ``fit``/``evaluate`` get arrays (checked in NumPy
first). With ``tf.data`` input a non-integer dtype raises ``ValueError`` when the step is traced and
out-of-range ids raise ``InvalidArgumentError`` at run time, except under ``jit_compile=True``
(XLA drops the assertion and the loss becomes NaN). Array labels that miss some of the
``num_classes`` classes only **warn** (``UserWarning``): a small label budget can legitimately lack
a class, but the head will never learn to predict it.

``layerwise_lr_decay=d`` (fine-tuning transformers, e.g. 0.75 for MAE's ViT): each encoder variable
trains at ``lr * d ** k``, ``k`` its distance from the top
(:meth:`ImageClassifier.layerwise_multipliers`); the head at ``lr``. A per-variable learning rate
(``optimizers.scale_learning_rates``), not a gradient scale, which Adam would normalise away.
"""

from __future__ import annotations

import re
from typing import List, Optional, Sequence, Tuple

from keras_ssl.backend import keras, tf
from keras_ssl.optimizers import scale_learning_rates
from keras_ssl.training.labels import ClassIdLabelsMixin
from keras_ssl.vision.base import as_float_images, check_channels, check_image_input

_BLOCK = re.compile(r"layer_\._(\d+)/")  # a Hugging Face transformer block (ViT, ViT-MAE, BERT)


def _encoder_of(encoder) -> keras.Model:
    from keras_ssl.vision.base import VisionSSLModel

    encoder = encoder.encoder if isinstance(encoder, VisionSSLModel) else encoder
    if not isinstance(encoder, keras.Model) or not encoder.built or not encoder.inputs:
        raise ValueError(
            "The encoder must be a built Keras model with a known input shape (or a keras_ssl vision "
            "method, whose .encoder is used), e.g. vision.backbones.small_cnn((32, 32, 1))."
        )
    if len(encoder.inputs[0].shape) != 4:
        raise ValueError(f"The encoder must take images [batch, H, W, C]; it takes "
                         f"{encoder.inputs[0].shape}.")
    if len(encoder.outputs[0].shape) != 2:
        raise ValueError(
            f"The encoder must output features [batch, dim]; it outputs {encoder.outputs[0].shape}. "
            "Add a pooling layer (e.g. pooling='avg' for keras.applications models)."
        )
    return encoder


class ImageClassifier(ClassIdLabelsMixin, keras.Model):
    """A classifier ``images [batch, H, W, C] -> logits [batch, num_classes]`` on ``encoder``.

    Args:
        encoder: a built Keras model ``[batch, H, W, C] -> [batch, D]`` or a keras_ssl vision method
            (its ``.encoder``; the encoder is shared, not copied).
        num_classes: number of classes (>= 2).
        head: ``"linear"`` (one ``Dense``) or ``"mlp"`` (``Dense(hidden_dim, relu)`` then ``Dense``).
        freeze_encoder: linear probe; the encoder neither trains nor updates batch-norm statistics
            (sets ``encoder.trainable = False``, which a vision method sharing the encoder sees too).
        freeze_batchnorm: keep the encoder's ``BatchNormalization`` layers frozen (inference mode).
        dropout: dropout rate on the features, before the (last) ``Dense``.
        hidden_dim: width of the ``"mlp"`` head (default: the feature dimension).
        class_names: optional names of the classes, served by the SavedModel export.
        layerwise_lr_decay: optional ``d`` in ``(0, 1]``: layer-wise learning-rate decay (above).

    ``model(images)`` returns float32 logits; ``predict`` returns probabilities
    ``[n, num_classes]``. Images are uint8 in ``[0, 255]`` or float in ``[0, 1]``, at the encoder's
    input size. ``compile(optimizer)`` adds sparse categorical cross-entropy (from logits) and
    accuracy; a custom ``loss`` receives the logits. Labels, their checks and :meth:`fit_lp_ft`:
    :class:`~keras_ssl.training.labels.ClassIdLabelsMixin` (batch norm stays frozen through LP-FT with
    ``freeze_batchnorm``).
    """

    missing_labels_message = "ImageClassifier trains on (images, labels) batches; got images without labels."

    def __init__(self, encoder, num_classes: int, head: str = "linear", freeze_encoder: bool = False,
                 freeze_batchnorm: bool = False, dropout: float = 0.0, hidden_dim: Optional[int] = None,
                 class_names: Optional[Sequence[str]] = None, layerwise_lr_decay: Optional[float] = None,
                 name: str = "image_classifier", **kwargs):
        super().__init__(name=name, **kwargs)
        if layerwise_lr_decay is not None and not 0.0 < float(layerwise_lr_decay) <= 1.0:
            raise ValueError(f"layerwise_lr_decay must be in (0, 1], got {layerwise_lr_decay}.")
        self.layerwise_lr_decay = None if layerwise_lr_decay is None else float(layerwise_lr_decay)
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be at least 2; got {num_classes}.")
        if head not in ("linear", "mlp"):
            raise ValueError(f"head must be 'linear' or 'mlp'; got {head!r}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {dropout}.")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} names for {num_classes} classes.")
        self.encoder = _encoder_of(encoder)
        self.num_classes = int(num_classes)
        self.class_names = None if class_names is None else [str(c) for c in class_names]
        self.image_shape = tuple(self.encoder.inputs[0].shape[1:])
        self.feature_dim = int(self.encoder.outputs[0].shape[-1])
        self.freeze_batchnorm = bool(freeze_batchnorm)
        layers = []
        if head == "mlp":
            width = hidden_dim or self.feature_dim
            layers.append(keras.layers.Dense(width, activation="relu", name="hidden"))
        if dropout:
            layers.append(keras.layers.Dropout(dropout, name="dropout"))
        layers.append(keras.layers.Dense(self.num_classes, dtype="float32", name="logits"))
        self.head = keras.Sequential(layers, name="head")
        self.head.build((None, self.feature_dim))
        self.set_encoder_frozen(freeze_encoder)
        self.built = True

    # --- freezing ----------------------------------------------------------------------------
    @property
    def encoder_frozen(self) -> bool:
        return self._encoder_frozen

    def set_encoder_frozen(self, frozen: bool) -> None:
        """Freeze (linear probe) or unfreeze (fine-tune) the encoder; ``compile`` again afterwards.

        Unfreezing restores the ``trainable`` flags the encoder's layers had before freezing (layers
        the user froze stay frozen); ``freeze_batchnorm`` layers stay frozen either way.
        """
        self._encoder_frozen = bool(frozen)
        layers = [layer for layer in self.encoder.submodules if isinstance(layer, keras.layers.Layer)]
        saved = getattr(self, "_trainable_before_freezing", None)
        if frozen and saved is None:
            saved = (self.encoder.trainable, [layer for layer in layers if not layer.trainable])
            object.__setattr__(self, "_trainable_before_freezing", saved)  # untracked by Keras
            self.encoder.trainable = False
        elif not frozen and saved is not None:
            object.__setattr__(self, "_trainable_before_freezing", None)
            self.encoder.trainable = True  # unfreezes every sublayer: re-freeze those that were frozen
            for layer in saved[1]:
                layer.trainable = False
            if not saved[0]:
                self.encoder.trainable = False
        if self.freeze_batchnorm:
            for layer in layers:
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.trainable = False

    # --- forward -------------------------------------------------------------------------------
    def features(self, images, training: bool = False) -> tf.Tensor:
        """Encoder features ``[batch, D]`` of uint8 or float images."""
        images = as_float_images(images)
        check_channels(images.shape[-1], self.image_shape[-1])
        return self.encoder(images, training=False if self._encoder_frozen else training)

    def call(self, images, training: bool = False) -> tf.Tensor:
        """Float32 logits ``[batch, num_classes]``."""
        if isinstance(images, (tuple, list)):
            images = images[0]
        return tf.cast(self.head(self.features(images, training), training=training), tf.float32)

    def predict_step(self, data) -> tf.Tensor:
        """Probabilities ``[batch, num_classes]`` (softmax of the logits)."""
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return tf.nn.softmax(self(x, training=False), axis=-1)

    # --- input checks ----------------------------------------------------------------------
    def check_images(self, x) -> None:
        """:func:`keras_ssl.vision.base.check_image_input` against the encoder's input shape;
        ``fit``/``evaluate``/``predict`` call it before tracing."""
        check_image_input(x, self.image_shape)

    def fit(self, x=None, y=None, *args, **kwargs):
        self.check_images(x)
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self.check_images(x)
        return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        self.check_images(x)
        return super().predict(x, *args, **kwargs)

    # --- training --------------------------------------------------------------------------
    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs) -> None:
        """``compile(optimizer)``: loss and metrics default to sparse cross-entropy (logits) and accuracy;
        with ``layerwise_lr_decay`` (and the encoder unfrozen) the optimizer's rates are scaled per layer."""
        optimizer = keras.optimizers.get(optimizer)
        if self.layerwise_lr_decay is not None and not self.encoder_frozen:
            optimizer = scale_learning_rates(optimizer, self.layerwise_multipliers(self.layerwise_lr_decay))
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def layerwise_multipliers(self, decay: float) -> List[Tuple[tf.Variable, float]]:
        """``(variable, decay ** k)`` for the encoder's trainable variables; the head is not listed (1).

        Transformer encoders (Hugging Face variables in numbered blocks ``layer_._N``, e.g. the MAE
        encoder): with ``L`` blocks, block ``N`` has ``k = L - N``, the embeddings (patch, position,
        class token) ``k = L + 1`` and variables after the blocks (the final layer norm) ``k = 0``,
        as MAE's and BEiT's fine-tuning recipes. Other Keras encoders: their layers with trainable
        weights in order, the last one ``k = 0``, each earlier one a step further.
        """
        if not 0.0 < float(decay) <= 1.0:
            raise ValueError(f"layerwise_lr_decay must be in (0, 1], got {decay}.")
        variables = list(self.encoder.trainable_variables)
        blocks = {v.ref(): int(m.group(1)) for v in variables if (m := _BLOCK.search(v.name))}
        if blocks:
            depth = max(blocks.values()) + 1
            out = []
            for v in variables:
                if v.ref() in blocks:
                    k = depth - blocks[v.ref()]
                elif "embeddings" in v.name or "cls_token" in v.name:
                    k = depth + 1
                else:
                    k = 0
                out.append((v, float(decay) ** k))
            return out
        weighted = [layer for layer in self.encoder.layers if layer.trainable_weights]
        out = []
        for i, layer in enumerate(weighted):
            out.extend((v, float(decay) ** (len(weighted) - 1 - i)) for v in layer.trainable_weights)
        return out

    def get_config(self) -> dict:
        return {"num_classes": self.num_classes, "class_names": self.class_names,
                "layerwise_lr_decay": self.layerwise_lr_decay}
