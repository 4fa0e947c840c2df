"""Self-distillation without negatives: BYOL (EMA target) and SimSiam (stop-gradient)."""

from __future__ import annotations

from typing import Optional

from keras_ssl import losses
from keras_ssl.backend import keras, tf
from keras_ssl.vision import heads as H
from keras_ssl.vision.base import Augment
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
