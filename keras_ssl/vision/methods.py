"""SimCLR, MoCo v2, BYOL, SimSiam, Barlow Twins and VICReg on :class:`VisionSSLModel`.

Each method is its heads, its loss wiring and (for momentum methods) a post-step update; the
training step itself is the shared one. Defaults are the papers'; small dims suit small data.
"""

from __future__ import annotations

from typing import Optional

from keras_ssl import losses
from keras_ssl.backend import keras, tf
from keras_ssl.vision import heads as H
from keras_ssl.vision.base import Augment, VisionSSLModel, clone_network
from keras_ssl.vision.ema import cosine_momentum, ema_update
from keras_ssl.vision.queue import MemoryQueue


def _build(head: keras.layers.Layer, dim: int) -> keras.layers.Layer:
    """Create all of ``head``'s weights now (sub-layers build lazily on their first call)."""
    head(tf.zeros((2, dim)), training=False)
    return head


def _structural_weights(layer: keras.layers.Layer) -> list:
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


class _Projected(VisionSSLModel):
    """A method with an encoder followed by a projection head."""

    def __init__(self, encoder, augment: Augment, projection, **kwargs):
        super().__init__(encoder, augment, **kwargs)
        self.projection = _build(projection, self.feature_dim)

    def project(self, images, training):
        return self.projection(self.encoder(images, training=training), training=training)

    def gathered_projections(self, view1, view2, training):
        """``(z1, z2)``: both views' projections, each gathered from all replicas ``[global, dim]``."""
        return self.gather(self.project(view1, training)), self.gather(self.project(view2, training))


class SimCLR(_Projected):
    """SimCLR (Chen et al., 2020): NT-Xent over the 2N views of the global batch.

    Paper defaults: temperature 0.1 (0.5 for CIFAR), 2-layer projection 2048 -> 128, LARS.
    Metrics: ``loss``, ``contrastive_accuracy`` (positive is the nearest view), ``embedding_std``.
    """

    def __init__(self, encoder, augment: Augment = None, temperature: float = 0.1,
                 projection: Optional[keras.layers.Layer] = None, **kwargs):
        super().__init__(encoder, augment, projection or H.simclr_projection(), **kwargs)
        self.temperature = temperature

    def health_metric_names(self):
        return ("contrastive_accuracy", "embedding_std")

    def ssl_loss(self, view1, view2, training):
        z1, z2 = self.gathered_projections(view1, view2, training)
        loss, accuracy = losses.nt_xent(z1, z2, temperature=self.temperature)
        return loss, {"contrastive_accuracy": accuracy, "embedding_std": losses.embedding_std(z1)}


class BarlowTwins(_Projected):
    """Barlow Twins (Zbontar et al., 2021): cross-correlation of batch-normalised embeddings -> I.

    Paper defaults: lambda 5e-3, 3-layer projector of 8192 units. Statistics span the global batch.
    """

    def __init__(self, encoder, augment: Augment = None, lambda_: float = 5e-3,
                 projection: Optional[keras.layers.Layer] = None, **kwargs):
        super().__init__(encoder, augment, projection or H.barlow_projection(), **kwargs)
        self.lambda_ = lambda_

    def ssl_loss(self, view1, view2, training):
        z1, z2 = self.gathered_projections(view1, view2, training)
        loss = losses.barlow_twins_loss(z1, z2, lambda_=self.lambda_)
        return loss, {"embedding_std": losses.embedding_std(z1)}


class VICReg(_Projected):
    """VICReg (Bardes et al., 2022): invariance + variance + covariance, weights 25 / 25 / 1.

    Paper defaults: 3-layer expander of 8192 units. Statistics span the global batch.
    """

    def __init__(self, encoder, augment: Augment = None, sim_weight: float = 25.0, var_weight: float = 25.0,
                 cov_weight: float = 1.0, projection: Optional[keras.layers.Layer] = None, **kwargs):
        super().__init__(encoder, augment, projection or H.vicreg_projection(), **kwargs)
        self.weights_ = dict(sim_weight=sim_weight, var_weight=var_weight, cov_weight=cov_weight)

    def health_metric_names(self):
        return ("invariance", "variance", "covariance", "embedding_std")

    def ssl_loss(self, view1, view2, training):
        z1, z2 = self.gathered_projections(view1, view2, training)
        loss, parts = losses.vicreg_loss(z1, z2, **self.weights_)
        return loss, {**{k: parts[k] for k in ("invariance", "variance", "covariance")},
                      "embedding_std": losses.embedding_std(z1)}


class SimSiam(_Projected):
    """SimSiam (Chen & He, 2021): predictor + stop-gradient, symmetric negative cosine.

    Paper defaults: 3-layer projector 2048 with BN on the output, predictor 2048 -> 512 -> 2048.
    """

    def __init__(self, encoder, augment: Augment = None, projection: Optional[keras.layers.Layer] = None,
                 prediction: Optional[keras.layers.Layer] = None, **kwargs):
        super().__init__(encoder, augment, projection or H.simsiam_projection(), **kwargs)
        out_dim = int(self.projection.compute_output_shape((None, self.feature_dim))[-1])
        self.prediction = _build(prediction or H.simsiam_prediction(output_dim=out_dim), out_dim)

    def ssl_loss(self, view1, view2, training):
        z1, z2 = self.project(view1, training), self.project(view2, training)
        p1, p2 = self.prediction(z1, training=training), self.prediction(z2, training=training)
        z1, z2, p1, p2 = (self.gather(x) for x in (z1, z2, p1, p2))
        loss = 0.5 * (losses.simsiam_loss(p1, tf.stop_gradient(z2))
                      + losses.simsiam_loss(p2, tf.stop_gradient(z1)))
        return loss, {"embedding_std": losses.embedding_std(z1)}


class _Momentum(_Projected):
    """A method with an EMA target/key network (encoder + projection) updated after each step."""

    def __init__(self, encoder, augment, projection, momentum: float, total_steps: Optional[int],
                 cosine: bool, **kwargs):
        super().__init__(encoder, augment, projection, **kwargs)
        self.target_encoder = clone_network(self.encoder, "target_encoder")
        self.target_projection = _build(type(self.projection).from_config(self.projection.get_config()),
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
        online = _structural_weights(self.encoder) + _structural_weights(self.projection)
        target = _structural_weights(self.target_encoder) + _structural_weights(self.target_projection)
        ema_update(target, online, self.momentum())


class BYOL(_Momentum):
    """BYOL (Grill et al., 2020): online predictor regresses the EMA target's projection.

    Paper defaults: projection and prediction 4096 -> 256, base momentum 0.996 raised to 1 with a
    cosine schedule over ``total_steps`` (constant momentum when ``total_steps`` is None),
    symmetric loss ``2 - 2 cos``; the EMA update runs after the optimizer step.
    """

    def __init__(self, encoder, augment: Augment = None, momentum: float = 0.996,
                 total_steps: Optional[int] = None, projection: Optional[keras.layers.Layer] = None,
                 prediction: Optional[keras.layers.Layer] = None, **kwargs):
        super().__init__(encoder, augment, projection or H.byol_projection(), momentum, total_steps,
                         cosine=True, **kwargs)
        out_dim = int(self.projection.compute_output_shape((None, self.feature_dim))[-1])
        self.prediction = _build(prediction or H.byol_prediction(output_dim=out_dim), out_dim)

    def ssl_loss(self, view1, view2, training):
        p1 = self.prediction(self.project(view1, training), training=training)
        p2 = self.prediction(self.project(view2, training), training=training)
        t1, t2 = self.target(view1, training), self.target(view2, training)
        p1, p2, t1, t2 = (self.gather(x) for x in (p1, p2, t1, t2))
        loss = losses.byol_loss(p1, t2) + losses.byol_loss(p2, t1)
        return loss, {"embedding_std": losses.embedding_std(p1)}


class MoCo(_Momentum):
    """MoCo v2 (Chen et al., 2020): momentum key encoder, a queue of negatives, InfoNCE.

    Paper defaults: queue 65,536, momentum 0.999, temperature 0.2, MLP head 2048 -> 128. Keys of
    all replicas enter the queue after each step.
    """

    def __init__(self, encoder, augment: Augment = None, queue_size: int = 65536, momentum: float = 0.999,
                 temperature: float = 0.2, projection: Optional[keras.layers.Layer] = None, **kwargs):
        super().__init__(encoder, augment, projection or H.moco_projection(), momentum, None,
                         cosine=False, **kwargs)
        dim = int(self.projection.compute_output_shape((None, self.feature_dim))[-1])
        self.queue = MemoryQueue(queue_size, dim)
        self.temperature = temperature

    def health_metric_names(self):
        return ("contrastive_accuracy", "embedding_std")

    def ssl_loss(self, view1, view2, training):
        q = self.gather(self.project(view1, training))
        k = self.gather(self.target(view2, training))
        loss, accuracy = losses.info_nce(q, k, self.queue.values(), temperature=self.temperature)
        health = {"contrastive_accuracy": accuracy, "embedding_std": losses.embedding_std(q)}
        return loss, health, {"keys": k}  # the step's global keys go to post_step

    def post_step(self, step_outputs=None):
        super().post_step(step_outputs)
        self.queue.enqueue(tf.math.l2_normalize(step_outputs["keys"], axis=-1))
