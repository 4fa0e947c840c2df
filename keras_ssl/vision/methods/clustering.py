"""Online clustering: SwAV (swapped assignments between multi-crop views, Sinkhorn-Knopp codes)."""

from __future__ import annotations

from typing import List, Optional

import numpy as np

from keras_ssl import losses
from keras_ssl.backend import keras, tf
from keras_ssl.vision import heads as H
from keras_ssl.vision.base import Augment, VisionSSLModel
from keras_ssl.vision.methods._shared import build_head
from keras_ssl.vision.queue import SupportSet


class Prototypes(keras.layers.Layer):
    """SwAV's prototypes: a bias-free linear layer ``[batch, D] -> [batch, K]`` whose ``K`` columns
    ``c_k`` are unit vectors, so the scores ``z . c_k`` of normalised ``z`` are cosines.

    :meth:`normalize` projects the columns back onto the unit sphere (after every optimizer step).
    ``call(z, frozen)`` stops the gradient to the prototypes where ``frozen`` is true.
    """

    def __init__(self, num_prototypes: int, **kwargs):
        super().__init__(**kwargs)
        if int(num_prototypes) < 2:
            raise ValueError(f"num_prototypes must be at least 2 (codes spread a batch over the "
                             f"prototypes), got {num_prototypes}.")
        self.num_prototypes = int(num_prototypes)

    def build(self, input_shape):
        def unit_columns(shape, dtype=None):
            return tf.math.l2_normalize(keras.initializers.RandomNormal(seed=0)(shape, tf.float32), axis=0)

        self.kernel = self.add_weight("kernel", shape=(int(input_shape[-1]), self.num_prototypes),
                                      initializer=unit_columns, trainable=True)
        super().build(input_shape)

    def call(self, z: tf.Tensor, frozen=False) -> tf.Tensor:
        kernel = tf.cast(self.kernel, z.dtype)
        if frozen is not False:  # forward value unchanged, gradient zero while frozen
            keep = tf.cast(tf.logical_not(tf.convert_to_tensor(frozen)), z.dtype)
            kernel = keep * kernel + (1 - keep) * tf.stop_gradient(kernel)
        return tf.matmul(z, kernel)

    def normalize(self, skip=False) -> None:
        """``c_k <- c_k / ||c_k||`` for every prototype (unchanged where ``skip``), on every replica."""

        def assign(kernel, skip):
            return kernel.assign(tf.where(skip, kernel, tf.math.l2_normalize(kernel, axis=0)))

        skip = tf.convert_to_tensor(skip)
        tf.distribute.get_strategy().extended.update(self.kernel, assign, args=(skip,), group=False)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_prototypes": self.num_prototypes}


def cluster_entropy(scores: tf.Tensor) -> tf.Tensor:
    """How evenly a batch spreads over the prototypes: ``[N, K] scores -> []`` in ``[0, 1]``.

    Each row goes to its highest-scoring prototype; the result is the entropy of the batch's mean
    one-hot assignment divided by ``ln min(N, K)`` (its largest possible value): 1 when the rows
    spread evenly, 0 when all land on one prototype (collapse). Scores rather than the Sinkhorn
    codes: the codes are spread by construction, even when the embeddings have collapsed.
    """
    scores = _f32(scores)
    usage = tf.reduce_mean(tf.one_hot(tf.argmax(scores, axis=-1), tf.shape(scores)[-1]), axis=0)
    n, k = tf.shape(scores)[0], tf.shape(scores)[1]
    entropy = -tf.reduce_sum(tf.math.multiply_no_nan(tf.math.log(usage), usage))
    return entropy / tf.math.log(tf.cast(tf.maximum(tf.minimum(n, k), 2), tf.float32))


def prediction_sharpness(scores: tf.Tensor, temperature: float) -> tf.Tensor:
    """How far the swapped predictions are from uniform: ``[N, K] scores -> []`` in ``[0, 1]``.

    ``1 - H(softmax(scores / temperature)) / ln K``, averaged over the rows: 0 when every row predicts
    the uniform distribution over the prototypes, the plateau where the loss sits at ``ln K`` and
    nothing is learned (the scores have become nearly equal, whatever their argmax: ``cluster_entropy``
    can stay high there), 1 for one-hot predictions.
    """
    log_p = tf.nn.log_softmax(_f32(scores) / temperature, axis=-1)
    entropy = -tf.reduce_sum(tf.exp(log_p) * log_p, axis=-1)
    k = tf.cast(tf.maximum(tf.shape(scores)[-1], 2), tf.float32)
    return 1.0 - tf.reduce_mean(entropy) / tf.math.log(k)


def _f32(x):
    return tf.cast(x, tf.float32)


class SwAV(VisionSSLModel):
    """SwAV (Caron et al., 2020): codes of the global crops (Sinkhorn-Knopp over the global batch)
    predicted from every other crop's prototype scores.

    Each view goes through ``encoder -> projection -> L2-normalise -> prototypes`` (the encoder once
    per resolution, :meth:`encode_views`). Codes :func:`keras_ssl.losses.sinkhorn_knopp` of the scores
    gathered from all replicas, computed under stop-gradient for the global crops only; loss
    :func:`keras_ssl.losses.swapped_prediction_loss` with ``temperature``. ``augment``: a
    :class:`~keras_ssl.augment.MultiCrop` (e.g. ``augment.multi_crop(32, 16)``), or a plain callable /
    pair for two global views (the paper's 2x224 baseline; zero local crops is allowed, without a
    warning). A multi-crop encoder must take any image size: ``input_shape=(None, None, C)``.

    Paper defaults (ImageNet): 3000 prototypes, projection 2048 -> 128 (BN, ReLU), temperature 0.1,
    epsilon 0.05, 3 Sinkhorn iterations, LARS, batch 256 x 16 with a queue of 3840 from epoch 15
    (``queue_size=3840, queue_start_step=15 * steps_per_epoch``), prototypes frozen during the first
    epoch (``freeze_prototypes_steps=313`` at batch 4096), multi-crop 2x224 (scale 0.14-1) + 6x96
    (0.05-0.14). The queue holds past global-crop projections of all replicas, one queue per global
    crop; it only enters the codes, once ``queue_start_step`` is reached and it is full. Metrics:
    ``loss``, ``cluster_entropy`` (:func:`cluster_entropy` of the global crops; near 0 = collapse),
    ``prediction_sharpness`` (:func:`prediction_sharpness`; near 0 = the loss stuck at ``ln K``),
    ``embedding_std``.

    Small encoders and images: lower ``epsilon`` to 0.02-0.03. At the start their projections differ
    little (scores spread ~0.06 on digits), so with 0.05 the codes are nearly uniform, uniform
    predictions fit them, and the loss stalls at ``ln K`` (``prediction_sharpness`` ~0); on digits
    0.02 learns with and without local crops.
    """

    multi_view = True

    def __init__(self, encoder, augment: Augment = None, num_prototypes: int = 3000,
                 projection: Optional[keras.layers.Layer] = None, temperature: float = 0.1,
                 epsilon: float = 0.05, sinkhorn_iterations: int = 3, queue_size: int = 0,
                 queue_start_step: int = 0, freeze_prototypes_steps: int = 313, **kwargs):
        super().__init__(encoder, augment, **kwargs)
        if temperature <= 0 or epsilon <= 0:
            raise ValueError(f"temperature and epsilon must be positive, got {temperature}, {epsilon}.")
        if int(queue_size) < 0 or int(sinkhorn_iterations) < 1:
            raise ValueError(f"queue_size must be >= 0 and sinkhorn_iterations >= 1, got {queue_size}, "
                             f"{sinkhorn_iterations}.")
        self.prototypes = Prototypes(num_prototypes, name="prototypes")
        self.projection = build_head(projection or H.simclr_projection(name="swav_projection"),
                                     self.feature_dim)
        dim = int(self.projection.compute_output_shape((None, self.feature_dim))[-1])
        self.prototypes.build((None, dim))
        num_global = getattr(augment, "num_global", 2)
        if num_global + getattr(augment, "num_local", 0) < 2:
            raise ValueError("SwAV predicts one crop's codes from another: it needs at least two views "
                             "(num_global + num_local >= 2).")
        self.queues: List[SupportSet] = [SupportSet(int(queue_size), dim, seed=i, name=f"queue_{i}")
                                         for i in range(num_global)] if queue_size else []
        self.temperature, self.epsilon = float(temperature), float(epsilon)
        self.sinkhorn_iterations = int(sinkhorn_iterations)
        self.queue_start_step = int(queue_start_step)
        self.freeze_prototypes_steps = int(freeze_prototypes_steps)

    def health_metric_names(self):
        return ("cluster_entropy", "prediction_sharpness", "embedding_std")

    def _step(self) -> tf.Tensor:
        optimizer = getattr(self, "optimizer", None)
        return tf.constant(0, tf.int64) if optimizer is None else tf.cast(optimizer.iterations, tf.int64)

    def project(self, views: List[tf.Tensor], training: bool) -> List[tf.Tensor]:
        """L2-normalised projections ``[batch, P]`` of every view (float32)."""
        features = self.encode_views(views, training)
        return [tf.math.l2_normalize(_f32(self.projection(f, training=training)), axis=-1) for f in features]

    def assign_prototypes(self, images, batch_size: int = 256) -> np.ndarray:
        """Each image's highest-scoring prototype, ``int64 [n]`` (no augmentation, inference mode):
        the cluster SwAV puts it in. Score it against labels with
        :func:`keras_ssl.evaluation.cluster_purity` (``num_clusters=model.prototypes.num_prototypes``)."""
        images = np.asarray(images)
        if images.ndim != 4:
            raise ValueError(f"assign_prototypes takes images [n, H, W, C], got shape {images.shape}.")
        out = [np.argmax(self.prototypes(self.project([tf.constant(images[i:i + batch_size])],
                                                     training=False)[0]).numpy(), axis=1)
               for i in range(0, len(images), int(batch_size))]
        return np.concatenate(out).astype(np.int64) if out else np.zeros([0], np.int64)

    def codes(self, global_scores: tf.Tensor, queue: Optional[SupportSet]) -> tf.Tensor:
        """Sinkhorn codes ``[N, K]`` of the global batch's scores, with the queue's rows once it is used."""
        if queue is None:
            return losses.sinkhorn_knopp(global_scores, self.epsilon, self.sinkhorn_iterations)
        n = tf.shape(global_scores)[0]
        queued = self.prototypes(queue.values())

        def with_queue():
            scores = tf.concat([tf.cast(queued, tf.float32), tf.cast(global_scores, tf.float32)], axis=0)
            return losses.sinkhorn_knopp(scores, self.epsilon, self.sinkhorn_iterations)[-n:]

        use = (self._step() >= self.queue_start_step) & (tf.convert_to_tensor(queue.filled) >= queue.size)
        return tf.cond(use, with_queue,
                       lambda: losses.sinkhorn_knopp(global_scores, self.epsilon, self.sinkhorn_iterations))

    def multi_view_loss(self, views, num_global, training):
        frozen = self._step() < self.freeze_prototypes_steps
        z = [self.gather(p) for p in self.project(views, training)]  # [N, P] each, the global batch
        scores = [_f32(self.prototypes(zv, frozen=frozen)) for zv in z]
        queues = self.queues or [None] * num_global
        if len(queues) < num_global:
            raise ValueError(f"This SwAV was built for {len(queues)} global crops but gets {num_global}.")
        codes = [self.codes(scores[i], queues[i]) for i in range(num_global)]
        loss = losses.swapped_prediction_loss(scores, codes, self.temperature)
        global_scores = tf.concat(scores[:num_global], axis=0)
        health = {"cluster_entropy": cluster_entropy(global_scores),
                  "prediction_sharpness": prediction_sharpness(global_scores, self.temperature),
                  "embedding_std": losses.embedding_std(z[0])}
        return loss, health, {"projections": [tf.stop_gradient(zv) for zv in z[:num_global]],
                              "frozen": frozen}

    def post_step(self, step_outputs=None):
        self.prototypes.normalize(skip=step_outputs["frozen"])
        for queue, projections in zip(self.queues, step_outputs["projections"]):
            queue.enqueue(projections)

    def get_config(self) -> dict:
        return {}


__all__ = ["Prototypes", "SwAV", "cluster_entropy", "prediction_sharpness"]
