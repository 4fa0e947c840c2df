"""Transformation prediction: recognise which geometric transformation was applied (RotNet)."""

from __future__ import annotations

from typing import Callable, Optional

from keras_ssl import losses
from keras_ssl.backend import keras, tf
from keras_ssl.vision import heads as H
from keras_ssl.vision.methods._shared import SingleImageMethod, build_head


class RotationPrediction(SingleImageMethod):
    """RotNet (Gidaris et al., 2018): classify the rotation (0, 90, 180, 270 degrees) of an image.

    All four rotations of every image are in the same batch (the paper's best setting): a batch of
    ``B`` square images trains on ``4B``, with a 4-way cross-entropy averaged over the global batch.
    ``augment``: an optional augmentation applied before rotating (the paper uses none beyond
    flips/crops). ``head``: logits from pooled features; default
    :func:`keras_ssl.vision.heads.rotation_head` (``256 -> BN -> ReLU -> 4``, synchronised BN).
    Metrics: ``loss``, ``rotation_accuracy``, ``embedding_std``.
    """

    NUM_ROTATIONS = 4

    def __init__(self, encoder: keras.Model, augment: Optional[Callable] = None,
                 head: Optional[keras.layers.Layer] = None, **kwargs):
        super().__init__(encoder, augment, **kwargs)
        height, width = self.image_shape[:2]
        if height is None or height != width:
            raise ValueError(f"RotationPrediction needs square images (a 90-degree rotation must keep the "
                             f"shape); the encoder takes {height}x{width}. Crop or resize the images.")
        self.head = build_head(head or H.rotation_head(), self.feature_dim)
        classes = int(self.head.compute_output_shape((None, self.feature_dim))[-1])
        if classes != self.NUM_ROTATIONS:
            raise ValueError(f"The rotation head must output {self.NUM_ROTATIONS} logits, not {classes}.")

    def health_metric_names(self):
        return ("rotation_accuracy", "embedding_std")

    def pretext(self, inputs, training: bool):
        images = self.augmented(self._check_images(inputs), training)
        rotated = tf.concat([tf.image.rot90(images, k) for k in range(self.NUM_ROTATIONS)], axis=0)
        labels = tf.repeat(tf.range(self.NUM_ROTATIONS), tf.shape(images)[0])
        return rotated, labels

    def ssl_loss(self, rotated, labels, training):
        features = self.encoder(rotated, training=training)
        logits = tf.cast(self.head(features, training=training), tf.float32)
        per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        correct = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=labels.dtype), labels), tf.float32)
        return self.global_mean(per_example), {
            "rotation_accuracy": self.global_mean(correct),
            "embedding_std": losses.embedding_std(self.gather(tf.stop_gradient(features))),
        }

    def predict_rotation(self, images) -> tf.Tensor:
        """Rotation probabilities ``[batch, 4]`` (``k``: rotated ``k`` x 90 degrees counter-clockwise)."""
        features = self.encoder(self._check_images(images), training=False)
        return tf.nn.softmax(tf.cast(self.head(features, training=False), tf.float32))


__all__ = ["RotationPrediction"]
