"""Redundancy reduction: Barlow Twins and VICReg (statistics of the global batch, no negatives)."""

from __future__ import annotations

from typing import Optional

from keras_ssl import losses
from keras_ssl.backend import keras
from keras_ssl.vision import heads as H
from keras_ssl.vision.base import Augment
from keras_ssl.vision.methods._shared import ProjectedMethod


class BarlowTwins(ProjectedMethod):
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


class VICReg(ProjectedMethod):
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
