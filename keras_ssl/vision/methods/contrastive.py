"""Instance contrast: SimCLR (negatives from the global batch), MoCo v2 (negatives from a queue) and
NNCLR (positives are nearest neighbours from a support set)."""

from __future__ import annotations

from typing import Optional

from keras_ssl import losses
from keras_ssl.backend import keras, tf
from keras_ssl.training import num_replicas
from keras_ssl.vision import heads as H
from keras_ssl.vision.base import Augment
from keras_ssl.vision.methods._shared import MomentumMethod, ProjectedMethod, build_head
from keras_ssl.vision.queue import MemoryQueue, SupportSet


class SimCLR(ProjectedMethod):
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


class MoCo(MomentumMethod):
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


class NNCLR(ProjectedMethod):
    """NNCLR (Dwibedi et al., 2021): the positive of a view is its nearest neighbour in a support set.

    ``z = projection(encoder(view))``, ``p = prediction(z)``. The support set is a
    :class:`~keras_ssl.vision.queue.SupportSet` of L2-normalised projections of the first view, of all
    replicas (gathered), enqueued after each step. For each ``z1`` the most cosine-similar support row
    ``NN(z1)`` (stop-gradient) is looked up **before** the step's batch enters the set; the loss is
    InfoNCE between ``NN(z1)`` and the other view's predictions ``p2`` with the global batch's other
    predictions as negatives, symmetrised: ``(L(NN(z1), p2) + L(NN(z2), p1)) / 2``. Until the set has
    wrapped around only its filled slots are searched; at the very first step (nothing filled) a
    view's own projection stands in for its neighbour.

    Paper defaults: support set 98,304, temperature 0.1, projector 3 layers 2048 (BN) -> 256,
    predictor 4096 -> 256. Metrics: ``loss``, ``contrastive_accuracy`` (the neighbour's positive
    prediction is its most similar), ``embedding_std`` (of ``z1``), ``support_fill`` (filled fraction).
    """

    def __init__(self, encoder, augment: Augment = None, queue_size: int = 98304, temperature: float = 0.1,
                 projection: Optional[keras.layers.Layer] = None,
                 prediction: Optional[keras.layers.Layer] = None, **kwargs):
        if not isinstance(queue_size, int) or queue_size < 1:
            raise ValueError(f"NNCLR's queue_size must be a positive int; got {queue_size!r}.")
        if not temperature > 0:
            raise ValueError(f"NNCLR's temperature must be positive; got {temperature!r}.")
        super().__init__(encoder, augment, projection or H.nnclr_projection(), **kwargs)
        dim = int(self.projection.compute_output_shape((None, self.feature_dim))[-1])
        self.prediction = build_head(prediction or H.nnclr_prediction(output_dim=dim), dim)
        predicted = int(self.prediction.compute_output_shape((None, dim))[-1])
        if predicted != dim:
            raise ValueError(
                f"NNCLR's prediction head outputs {predicted}-d vectors but the projection {dim}-d ones; "
                "they are compared by cosine, so the sizes must match, e.g. "
                f"prediction=vision.heads.nnclr_prediction(output_dim={dim})."
            )
        self.support_set = SupportSet(queue_size, dim, name="support_set")
        self.temperature = float(temperature)

    def health_metric_names(self):
        return ("contrastive_accuracy", "embedding_std", "support_fill")

    def _check_batch_size(self, images):
        super()._check_batch_size(images)
        local = images.shape[0]
        if local is not None and local * num_replicas() > self.support_set.size:
            raise ValueError(
                f"NNCLR's queue_size ({self.support_set.size}) is smaller than the global batch "
                f"({local * num_replicas()}): the support set must hold at least one global batch. "
                "Raise queue_size or lower the batch size."
            )

    def ssl_loss(self, view1, view2, training):
        z1, z2 = self.project(view1, training), self.project(view2, training)
        p1, p2 = self.prediction(z1, training=training), self.prediction(z2, training=training)
        z1, z2, p1, p2 = (self.gather(x) for x in (z1, z2, p1, p2))
        nn1 = self.support_set.nearest_neighbours(z1)
        nn2 = self.support_set.nearest_neighbours(z2)
        loss12, accuracy12 = losses.nnclr_loss(nn1, p2, self.temperature)
        loss21, accuracy21 = losses.nnclr_loss(nn2, p1, self.temperature)
        health = {"contrastive_accuracy": 0.5 * (accuracy12 + accuracy21),
                  "embedding_std": losses.embedding_std(z1), "support_fill": self.support_set.fill_fraction()}
        return 0.5 * (loss12 + loss21), health, {"projections": z1}

    def post_step(self, step_outputs=None):
        projections = tf.cast(step_outputs["projections"], tf.float32)
        self.support_set.enqueue(tf.math.l2_normalize(projections, axis=-1))
