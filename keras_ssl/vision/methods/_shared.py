"""Pieces the methods share: built heads, a projection head and an EMA target network (two-view
methods); one augmented view per image (single-image pretexts)."""

from __future__ import annotations

from typing import Callable, Optional

from keras_ssl import losses
from keras_ssl.backend import keras, tf
from keras_ssl.vision.base import Augment, VisionSSLModel, clone_network
from keras_ssl.vision.ema import cosine_momentum, ema_update


def build_head(head: keras.layers.Layer, dim: int) -> keras.layers.Layer:
    """Create all of ``head``'s weights now (sub-layers build lazily on their first call)."""
    head(tf.zeros((2, dim)), training=False)
    return head


def structural_weights(layer: keras.layers.Layer) -> list:
    """All weights (BN statistics included) layer by layer, in creation order.

    Unlike ``layer.weights``, the order does not depend on which layers are trainable, so a network
    and its frozen clone line up weight for weight.
    """
    seen, out = set(), []
    for sub in layer._flatten_layers(include_self=True, recursive=True):
        for w in sub._trainable_weights + sub._non_trainable_weights:
            if id(w) not in seen:
                seen.add(id(w))
                out.append(w)
    return out


class SingleImageMethod(VisionSSLModel):
    """A pretext on one view of each image (reconstruction, rotation, masked modelling): ``augment`` is
    one callable or ``None``, and a global batch of one image is enough."""

    min_global_batch = 1

    def __init__(self, encoder, augment: Optional[Callable] = None, **kwargs):
        self.check_single_augment(augment)
        super().__init__(encoder, augment, **kwargs)

    @classmethod
    def check_single_augment(cls, augment) -> None:
        if isinstance(augment, (tuple, list)):
            raise ValueError(f"{cls.__name__} takes one augmentation (it has one view), not a pair.")

    def augmented(self, images: tf.Tensor, training: bool) -> tf.Tensor:
        """``images`` through ``augment`` (unchanged without one)."""
        return images if self.augment is None else self.augment(images, training=training)

    def classification_loss(self, logits: tf.Tensor, labels: tf.Tensor, features: tf.Tensor,
                            accuracy_name: str):
        """A classifying pretext's ``(loss, health)``: cross-entropy of ``logits`` ``[batch, K]`` against
        ``labels`` ``int [batch]`` and accuracy (``accuracy_name``), both over the global batch, and the
        ``embedding_std`` of the encoder's ``features``."""
        logits = tf.cast(logits, tf.float32)
        per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        correct = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=labels.dtype), labels), tf.float32)
        return self.global_mean(per_example), {
            accuracy_name: self.global_mean(correct),
            "embedding_std": losses.embedding_std(self.gather(tf.stop_gradient(features))),
        }


class ProjectedMethod(VisionSSLModel):
    """A method with an encoder followed by a projection head."""

    def __init__(self, encoder, augment: Augment, projection, **kwargs):
        super().__init__(encoder, augment, **kwargs)
        self.projection = build_head(projection, self.feature_dim)

    def project(self, images, training):
        return self.projection(self.encoder(images, training=training), training=training)

    def gathered_projections(self, view1, view2, training):
        """``(z1, z2)``: both views' projections, each gathered from all replicas ``[global, dim]``."""
        return self.gather(self.project(view1, training)), self.gather(self.project(view2, training))


class MomentumMethod(ProjectedMethod):
    """A method with an EMA target/key network (encoder + projection) updated after each step."""

    def __init__(self, encoder, augment, projection, momentum: float, total_steps: Optional[int],
                 cosine: bool, **kwargs):
        super().__init__(encoder, augment, projection, **kwargs)
        self.target_encoder = clone_network(self.encoder, "target_encoder")
        self.target_projection = build_head(type(self.projection).from_config(self.projection.get_config()),
                                        self.feature_dim)
        self.target_projection.set_weights(self.projection.get_weights())
        self.base_momentum = float(momentum)
        self.total_steps = total_steps
        self.cosine = cosine

    def optimized_variables(self) -> list:
        frozen = {id(v) for v in self.target_encoder.weights + self.target_projection.weights}
        return [v for v in self.trainable_variables if id(v) not in frozen]

    def target(self, images, training):
        features = self.target_encoder(images, training=training)
        return tf.stop_gradient(self.target_projection(features, training=training))

    def momentum(self) -> tf.Tensor:
        if not self.cosine or not self.total_steps:
            return tf.constant(self.base_momentum)
        return cosine_momentum(self.optimizer.iterations, self.total_steps, base=self.base_momentum)

    def post_step(self, step_outputs=None):
        online = structural_weights(self.encoder) + structural_weights(self.projection)
        target = structural_weights(self.target_encoder) + structural_weights(self.target_projection)
        ema_update(target, online, self.momentum())
