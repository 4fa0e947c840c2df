"""``TabularClassifier``: a classification head on a tabular encoder, for probing and fine-tuning.

The tabular counterpart of :class:`~keras_ssl.vision.ImageClassifier`: it takes raw column dicts
(the batches of :func:`~keras_ssl.tabular.tabular_dataset`), runs the encoder (preprocessing
inside) and a head:

* **linear probe**: ``TabularClassifier(encoder, n, freeze_encoder=True)``; only the head trains,
  the encoder runs in inference mode and its weights stay bit-for-bit.
* **full fine-tune**: ``TabularClassifier(encoder, n)``; everything trains.
* **LP-FT** (Kumar et al. 2022): :meth:`TabularClassifier.fit_lp_ft`, probe then fine-tune.

Labels are integer class ids ``0 .. num_classes - 1`` (``tabular_dataset`` maps string labels to
ids). Float labels raise ``ValueError`` (when ``fit`` gets arrays, or when a ``tf.data`` step is
traced); ids out of range raise ``ValueError`` for arrays and ``InvalidArgumentError`` at run time
for ``tf.data``. Save with ``save_weights``/``load_weights`` into a classifier built the same way
(the same fitted preprocessing: its vocabularies are config, not weights).
"""

from __future__ import annotations

from typing import Optional, Sequence

from keras_ssl.backend import keras, tf
from keras_ssl.tabular.encoders import TabularEncoder
from keras_ssl.training.labels import ClassIdLabelsMixin


def _encoder_of(encoder) -> TabularEncoder:
    inner = getattr(encoder, "encoder", None)
    if not isinstance(encoder, TabularEncoder) and isinstance(inner, TabularEncoder):
        encoder = inner  # a SCARF/VIME model: its encoder, shared
    if not isinstance(encoder, TabularEncoder):
        raise TypeError(
            "TabularClassifier needs a TabularEncoder (tabular.mlp_encoder(prep)) or a tabular SSL model "
            f"whose .encoder is one; got {type(encoder).__name__}.")
    return encoder


class TabularClassifier(ClassIdLabelsMixin, keras.Model):
    """Raw columns ``{name: [batch]}`` -> logits ``[batch, num_classes]`` on ``encoder``.

    Args:
        encoder: a :class:`~keras_ssl.tabular.TabularEncoder` or a model with one as ``.encoder``
            (SCARF, VIME); shared, not copied.
        num_classes: number of classes (>= 2).
        head: ``"linear"`` (one ``Dense``) or ``"mlp"`` (``Dense(hidden_dim, relu)`` then ``Dense``).
        freeze_encoder: linear probe (sets ``encoder.trainable = False``, seen by a method sharing it).
        class_names: names of the classes (default: the preprocessing's ``label_names`` when there
            are ``num_classes`` of them).
        dropout: dropout rate on the features, before the last ``Dense``.
        hidden_dim: width of the ``"mlp"`` head (default: the feature dimension).

    ``model(raw)`` returns float32 logits; ``predict`` returns probabilities ``[n, num_classes]``.
    ``compile(optimizer)`` adds sparse categorical cross-entropy (from logits) and accuracy. Labels,
    their checks and :meth:`fit_lp_ft`: :class:`~keras_ssl.training.labels.ClassIdLabelsMixin`.
    """

    missing_labels_message = ("TabularClassifier trains on (features, labels) batches; got no labels. Build "
                              "the dataset with tabular_dataset(..., label='column').")
    label_dtype_hint = ("Float labels are a regression target, which TabularClassifier does not fit; map "
                        "class names to ids (tabular_dataset does) or cast integers.")

    def __init__(self, encoder, num_classes: int, head: str = "linear", freeze_encoder: bool = False,
                 class_names: Optional[Sequence[str]] = None, dropout: float = 0.0,
                 hidden_dim: Optional[int] = None, name: str = "tabular_classifier", **kwargs):
        super().__init__(name=name, **kwargs)
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be at least 2 (regression heads are not supported); got "
                             f"{num_classes}.")
        if head not in ("linear", "mlp"):
            raise ValueError(f"head must be 'linear' or 'mlp'; got {head!r}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {dropout}.")
        self.encoder = _encoder_of(encoder)
        self.num_classes = int(num_classes)
        names = self.encoder.preprocessing.label_names
        if class_names is None and names is not None and len(names) == self.num_classes:
            class_names = names
        if class_names is not None and len(class_names) != self.num_classes:
            raise ValueError(f"class_names has {len(class_names)} names for {num_classes} classes.")
        object.__setattr__(self, "class_names",  # a plain list, not tracked by Keras
                           None if class_names is None else [str(c) for c in class_names])
        self.feature_dim = self.encoder.feature_dim
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

    @property
    def encoder_frozen(self) -> bool:
        return self._encoder_frozen

    def set_encoder_frozen(self, frozen: bool) -> None:
        """Freeze (probe) or unfreeze (fine-tune) the encoder; ``compile`` again afterwards."""
        self._encoder_frozen = bool(frozen)
        self.encoder.trainable = not frozen
        self.encoder.preprocessing.trainable = False  # fitted statistics never train

    def call(self, raw, training: bool = False) -> tf.Tensor:
        """Float32 logits ``[batch, num_classes]`` of the raw column dict."""
        features = self.encoder(raw, training=False if self._encoder_frozen else training)
        return tf.cast(self.head(features, training=training), tf.float32)

    def predict_step(self, data) -> tf.Tensor:
        """Probabilities ``[batch, num_classes]``."""
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return tf.nn.softmax(self(x, training=False), axis=-1)

    def get_config(self) -> dict:
        return {"num_classes": self.num_classes, "class_names": self.class_names}
