"""Self-distillation without negatives: BYOL (EMA target), SimSiam (stop-gradient) and DINO (EMA
teacher, centred and sharpened softmax targets over multi-crop views)."""

from __future__ import annotations

from typing import List, Optional, Tuple

from keras_ssl import losses
from keras_ssl.backend import keras, tf
from keras_ssl.training import replica_sum
from keras_ssl.vision import heads as H
from keras_ssl.vision.base import Augment
from keras_ssl.vision.ema import ema_update
from keras_ssl.vision.methods._shared import MomentumMethod, ProjectedMethod, build_head


class SimSiam(ProjectedMethod):
    """SimSiam (Chen & He, 2021): predictor + stop-gradient, symmetric negative cosine.

    Paper defaults: 3-layer projector 2048 with BN on the output, predictor 2048 -> 512 -> 2048.
    """

    def __init__(self, encoder, augment: Augment = None, projection: Optional[keras.layers.Layer] = None,
                 prediction: Optional[keras.layers.Layer] = None, **kwargs):
        super().__init__(encoder, augment, projection or H.simsiam_projection(), **kwargs)
        out_dim = int(self.projection.compute_output_shape((None, self.feature_dim))[-1])
        self.prediction = build_head(prediction or H.simsiam_prediction(output_dim=out_dim), out_dim)

    def ssl_loss(self, view1, view2, training):
        z1, z2 = self.project(view1, training), self.project(view2, training)
        p1, p2 = self.prediction(z1, training=training), self.prediction(z2, training=training)
        z1, z2, p1, p2 = (self.gather(x) for x in (z1, z2, p1, p2))
        loss = 0.5 * (losses.simsiam_loss(p1, tf.stop_gradient(z2))
                      + losses.simsiam_loss(p2, tf.stop_gradient(z1)))
        return loss, {"embedding_std": losses.embedding_std(z1)}


class BYOL(MomentumMethod):
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
        self.prediction = build_head(prediction or H.byol_prediction(output_dim=out_dim), out_dim)

    def ssl_loss(self, view1, view2, training):
        p1 = self.prediction(self.project(view1, training), training=training)
        p2 = self.prediction(self.project(view2, training), training=training)
        t1, t2 = self.target(view1, training), self.target(view2, training)
        p1, p2, t1, t2 = (self.gather(x) for x in (p1, p2, t1, t2))
        loss = losses.byol_loss(p1, t2) + losses.byol_loss(p2, t1)
        return loss, {"embedding_std": losses.embedding_std(p1)}


class DINO(MomentumMethod):
    """DINO (Caron et al., 2021): a student matches an EMA teacher's centred, sharpened distribution.

    Student = ``encoder`` + ``head`` (:func:`~keras_ssl.vision.heads.dino_head`: 3-layer GELU MLP,
    bottleneck, L2 normalisation, weight-normalised last layer with its norm fixed to 1); teacher =
    an EMA copy of both (momentum ``momentum`` raised to 1 with a cosine schedule over
    ``total_steps``; constant without ``total_steps``). The teacher sees the global crops, the
    student every crop; the loss is ``H(P_t, P_s)`` averaged over (teacher view ``i``, student view
    ``j != i``) pairs, ``P_t = softmax((t - center) / tau_t)`` without gradient,
    ``P_s = softmax(s / tau_s)`` (:func:`keras_ssl.losses.dino_cross_entropy`). ``center``
    ``[out_dim]`` (a non-trainable weight) moves after each step towards the mean teacher output of
    the global batch (all replicas, all global crops) with ``center_momentum``; 1.0 switches
    centering off (the center stays 0: the teacher collapses to one dimension).

    ``augment``: a :class:`~keras_ssl.augment.MultiCrop` (e.g. ``augment.multi_crop.dino(...)``; the
    encoder must then accept any image size), a callable or a pair (two global views), or ``None``.
    ``teacher_temperature_warmup=(start, end, steps)`` raises ``tau_t`` linearly from ``start`` to
    ``end`` over the first ``steps`` optimizer steps (then ``end``; ``teacher_temperature`` is unused).
    ``freeze_last_layer_steps``: the head's last layer gets no gradient for that many first steps.
    ``clip_norm``: each weight's gradient is clipped to this norm after the replicas' gradients are
    summed (sets the optimizer's ``clipnorm`` in :meth:`compile`).

    Paper defaults: ``out_dim`` 65,536, head 2048 -> 256, ``tau_s`` 0.1, ``tau_t`` 0.04 (warmed up
    to 0.07 over 30 epochs for long runs), center momentum 0.9, teacher momentum 0.996 -> 1 (cosine),
    last layer frozen for the first epoch, gradient clipping 3.0, 2 global 224px + 10 local 96px
    crops. Metrics: ``loss``, ``teacher_entropy`` (entropy of ``P_t`` / ln K: 1 for a uniform
    teacher, 0 for a one-hot one; both are collapse), ``kl_teacher_student``, ``embedding_std``
    (encoder features of the first view).
    """

    multi_view = True

    def __init__(self, encoder, augment: Augment = None, out_dim: int = 65536,
                 head: Optional[keras.layers.Layer] = None, teacher_temperature: float = 0.04,
                 teacher_temperature_warmup: Optional[Tuple[float, float, int]] = None,
                 student_temperature: float = 0.1, center_momentum: float = 0.9, momentum: float = 0.996,
                 total_steps: Optional[int] = None, freeze_last_layer_steps: int = 0,
                 clip_norm: Optional[float] = None, **kwargs):
        _check_dino_arguments(teacher_temperature, teacher_temperature_warmup, student_temperature,
                              center_momentum, momentum, freeze_last_layer_steps, clip_norm)
        if freeze_last_layer_steps and head is not None and not isinstance(head, H.DINOHead):
            raise ValueError(
                "freeze_last_layer_steps needs a DINOHead (vision.heads.dino_head(...)) as the head: "
                f"got a {type(head).__name__}. Pass freeze_last_layer_steps=0 or use dino_head."
            )
        super().__init__(encoder, augment, head or H.dino_head(out_dim), momentum, total_steps, cosine=True,
                         **kwargs)
        self.out_dim = int(self.projection.compute_output_shape((None, self.feature_dim))[-1])
        self.center = self.add_weight("center", shape=(self.out_dim,), dtype=tf.float32,
                                      initializer="zeros", trainable=False)
        self.teacher_temperature = float(teacher_temperature)
        self.teacher_temperature_warmup = teacher_temperature_warmup
        self.student_temperature = float(student_temperature)
        self.center_momentum = float(center_momentum)
        self.freeze_last_layer_steps = int(freeze_last_layer_steps)
        self.clip_norm = clip_norm

    def compile(self, optimizer="rmsprop", **kwargs):
        super().compile(optimizer=optimizer, **kwargs)
        if self.clip_norm is not None:
            inner = getattr(self.optimizer, "inner_optimizer", self.optimizer)  # LossScaleOptimizer
            if getattr(inner, "global_clipnorm", None) or not hasattr(inner, "clipnorm"):
                raise ValueError(
                    "DINO's clip_norm sets the optimizer's per-weight clipnorm: use a tf_keras optimizer "
                    "without global_clipnorm, or pass clip_norm=None and clip in the optimizer yourself."
                )
            inner.clipnorm = float(self.clip_norm)

    def health_metric_names(self):
        return ("teacher_entropy", "kl_teacher_student", "embedding_std")

    def _step(self) -> tf.Tensor:
        optimizer = getattr(self, "optimizer", None)
        return tf.constant(0, tf.int64) if optimizer is None else tf.cast(optimizer.iterations, tf.int64)

    def teacher_temperature_at(self, step) -> tf.Tensor:
        """``tau_t`` at optimizer step ``step`` (a float32 scalar)."""
        if self.teacher_temperature_warmup is None:
            return tf.constant(self.teacher_temperature, tf.float32)
        start, end, steps = self.teacher_temperature_warmup
        progress = tf.minimum(tf.cast(step, tf.float32) / float(max(int(steps), 1)), 1.0)
        return start + (end - start) * progress

    def _head(self, head, features: List[tf.Tensor], training, frozen=None) -> List[tf.Tensor]:
        """``head`` on all views' features at once (its batch norm, if any, sees them together)."""
        kwargs = {} if frozen is None or not isinstance(head, H.DINOHead) else {"freeze_last_layer": frozen}
        out = head(tf.concat(features, axis=0), training=training, **kwargs)
        return tf.split(out, len(features), axis=0)

    def multi_view_loss(self, views, num_global, training):
        if not 1 <= num_global <= len(views) or len(views) < 2:
            raise ValueError(
                f"DINO needs at least two views with 1 <= num_global <= views; got {len(views)} views "
                f"and num_global={num_global}."
            )
        step = self._step()
        features = self.encode_views(views, training)
        student = self._head(self.projection, features, training, frozen=step < self.freeze_last_layer_steps)
        teacher_features = self.encode_views(views[:num_global], training, network=self.target_encoder)
        teacher = [tf.stop_gradient(tf.cast(t, tf.float32))
                   for t in self._head(self.target_projection, teacher_features, training)]
        per_example, extras = losses.dino_cross_entropy(
            student, teacher, self.center, self.student_temperature, self.teacher_temperature_at(step))
        health = {name: self.global_mean(value) for name, value in extras.items()}
        health["embedding_std"] = losses.embedding_std(self.gather(features[0]))
        # The batch center: mean teacher output over the global batch and the global crops.
        count = replica_sum(tf.cast(tf.shape(teacher[0])[0] * num_global, tf.float32))
        batch_center = replica_sum(tf.add_n([tf.reduce_sum(t, axis=0) for t in teacher])) / count
        return self.global_mean(per_example), health, {"batch_center": batch_center}

    def post_step(self, step_outputs=None):
        super().post_step(step_outputs)  # the teacher's EMA
        ema_update([self.center], [step_outputs["batch_center"]], self.center_momentum)


def _check_dino_arguments(teacher_temperature, warmup, student_temperature, center_momentum, momentum,
                          freeze_last_layer_steps, clip_norm) -> None:
    for name, value in (("teacher_temperature", teacher_temperature),
                        ("student_temperature", student_temperature)):
        if not value > 0:
            raise ValueError(f"DINO's {name} must be positive; got {value!r}.")
    if warmup is not None and (len(warmup) != 3 or not (warmup[0] > 0 and warmup[1] > 0 and warmup[2] >= 0)):
        raise ValueError(
            "teacher_temperature_warmup must be (start, end, steps) with positive temperatures, e.g. "
            f"(0.04, 0.07, 3000); got {warmup!r}."
        )
    for name, value in (("center_momentum", center_momentum), ("momentum", momentum)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"DINO's {name} must be in [0, 1]; got {value!r}.")
    if not isinstance(freeze_last_layer_steps, int) or freeze_last_layer_steps < 0:
        raise ValueError(f"freeze_last_layer_steps must be an int >= 0; got {freeze_last_layer_steps!r}.")
    if clip_norm is not None and not clip_norm > 0:
        raise ValueError(f"clip_norm must be positive or None; got {clip_norm!r}.")
