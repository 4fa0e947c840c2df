"""Instance contrast: SimCLR (negatives from the global batch) and MoCo v2 (negatives from a queue)."""

from __future__ import annotations

from typing import Optional

from keras_ssl import losses
from keras_ssl.backend import keras, tf
from keras_ssl.vision import heads as H
from keras_ssl.vision.base import Augment
from keras_ssl.vision.methods._shared import MomentumMethod, ProjectedMethod
from keras_ssl.vision.queue import MemoryQueue


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
