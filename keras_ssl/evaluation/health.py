"""``HealthMonitor``: notices collapse from the health metrics a method logs every step.

:class:`~keras_ssl.evaluation.CollapseMonitor` encodes held-out images at epoch ends (feature
spread, effective rank); this callback reads what training already logs (SwAV's ``cluster_entropy``,
DINO's ``kl_teacher_student``, every vision method's ``embedding_std``), so it can act within an epoch
at no cost.
"""

from __future__ import annotations

import math
import warnings
from typing import Dict, List, Optional, Tuple

from keras_ssl.backend import keras
from keras_ssl.evaluation.callbacks import CollapseWarning

#: What each health metric's collapse usually means and what to try.
ADVICE = {
    "cluster_entropy": (
        "the crops land on a few prototypes: the embeddings are collapsing. Likely causes: a global batch "
        "too small for Sinkhorn's equipartition (add a queue: queue_size, e.g. 15 x the batch), prototypes "
        "trained from the first step (raise freeze_prototypes_steps), epsilon too large (codes carry no "
        "information; use 0.02-0.05, the lower for small encoders), or a learning rate too high (lower "
        "it, add warmup)."
    ),
    "prediction_sharpness": (
        "the swapped predictions are uniform over the prototypes and the loss sits at ln K: nothing is "
        "being learned (the scores are all nearly equal). Often: epsilon too large for how little "
        "the scores differ at the start (a small encoder or small images), so the Sinkhorn codes are "
        "nearly uniform and uniform predictions fit them; lower epsilon to 0.02-0.03 (measured on "
        "digits: epsilon 0.05 stalls at ln K, 0.02 learns, with or without local crops). Else a learning "
        "rate too high for the first steps (lower it, add warmup), or views with nothing to tell apart."
    ),
    "embedding_std": (
        "the embeddings are collapsing onto one direction. Likely causes: a learning rate too high (lower "
        "it, add warmup), augmentations too weak to make the views differ, a missing stop-gradient or "
        "predictor (SimSiam/BYOL), or too small a weight on the variance/decorrelation term (VICReg)."
    ),
    "kl_teacher_student": (
        "the student matches the teacher exactly: the teacher's output has collapsed (one-hot without "
        "centering, uniform with too much of it). Likely causes: centering off (center_momentum=1.0), a "
        "teacher temperature too high or a momentum too low, or a learning rate too high (lower it, add "
        "warmup)."
    ),
    "contrastive_accuracy": (
        "the positive pair is rarely the nearest view: the contrastive task is not being learned. "
        "Likely causes: a learning rate too high or a temperature too small."
    ),
}


class HealthMonitor(keras.callbacks.Callback):
    """Warn (and optionally stop) when a health metric stays below ``threshold``.

    ``metric``: a key of the training logs, e.g. ``"cluster_entropy"`` (SwAV) or ``"embedding_std"``
    (every vision method). ``threshold``: values below it count as collapsed; ``patience``: that many
    consecutive checks (epochs, or batches with ``per="batch"``) below it trigger a
    :class:`CollapseWarning` naming the likely cause and fix (once per collapse), and with ``stop=True``
    end training. ``collapsed_at`` records the (epoch, batch) of each trigger. ``also``: more
    ``{metric: threshold}`` pairs watched the same way (each with its own count). For per-method
    defaults use :meth:`for_model`.
    """

    def __init__(self, metric: str = "embedding_std", threshold: float = 0.01, patience: int = 3,
                 stop: bool = False, per: str = "epoch", also: Optional[Dict[str, float]] = None):
        super().__init__()
        if per not in ("epoch", "batch"):
            raise ValueError(f"per must be 'epoch' or 'batch', got {per!r}.")
        if int(patience) < 1:
            raise ValueError(f"patience must be at least 1, got {patience}.")
        self.metric, self.threshold = metric, float(threshold)
        self.checks = {metric: float(threshold), **{m: float(t) for m, t in (also or {}).items()}}
        self.patience, self.stop, self.per = int(patience), bool(stop), per
        self.below = {m: 0 for m in self.checks}
        self.epoch = 0
        self.collapsed_at: List[Tuple[int, Optional[int]]] = []

    @classmethod
    def for_model(cls, model, patience: int = 3, stop: bool = False, per: str = "epoch") -> HealthMonitor:
        """The metric and threshold that suit ``model``'s method.

        SwAV (``cluster_entropy``): 0.1, ten times less than an even spread over the prototypes; and
        ``prediction_sharpness`` 0.002 for the ``ln K`` plateau (measured per epoch on digits, seed 0:
        a healthy run dips to 0.006 in its first epochs, then rises to 0.3; a run stuck at ``ln K``
        falls from 0.003 to 0.0002 while its ``cluster_entropy`` stays ~0.8). DINO
        (``kl_teacher_student``): 0.01 (measured on digits-sized runs: 0.5-1.2 with centering, below
        0.001 once the teacher has collapsed without it). Other
        vision methods (``embedding_std``): ``0.1 / sqrt(D)``, a tenth of the value of well-spread
        ``D``-dimensional embeddings (Chen & He, 2021), ``D`` the projection's output size.
        """
        names = tuple(model.health_metric_names()) if hasattr(model, "health_metric_names") else ()
        if "cluster_entropy" in names:
            also = {"prediction_sharpness": 0.002} if "prediction_sharpness" in names else None
            return cls("cluster_entropy", 0.1, patience, stop, per, also=also)
        if "kl_teacher_student" in names:
            return cls("kl_teacher_student", 0.01, patience, stop, per)
        if "embedding_std" not in names:
            raise ValueError(f"{type(model).__name__} reports no collapse metric (its health metrics: "
                             f"{list(names)}); build HealthMonitor(metric=..., threshold=...) yourself.")
        head = getattr(model, "projection", None)
        dim = model.feature_dim
        if head is not None:
            dim = int(head.compute_output_shape((None, model.feature_dim))[-1])
        return cls("embedding_std", 0.1 / math.sqrt(dim), patience, stop, per)

    def on_train_begin(self, logs=None):
        self.below = {m: 0 for m in self.checks}

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.per == "batch":
            self._check(logs, batch)

    def on_epoch_end(self, epoch, logs=None):
        if self.per == "epoch":
            self._check(logs, None)

    def _check(self, logs, batch) -> None:
        for metric, threshold in self.checks.items():
            value = (logs or {}).get(metric)
            if value is None:
                raise ValueError(f"HealthMonitor watches {metric!r} but the training logs have only "
                                 f"{sorted(logs or {})}: pick one of them as metric.")
            value = float(value)
            self.below[metric] = self.below[metric] + 1 if value < threshold else 0
            if self.below[metric] == self.patience:
                self._collapsed(metric, threshold, value, batch)

    def _collapsed(self, metric: str, threshold: float, value: float, batch) -> None:
        self.collapsed_at.append((self.epoch, batch))
        where = f"epoch {self.epoch}" + ("" if batch is None else f", batch {batch}")
        advice = ADVICE.get(metric, "the representation may be collapsing.")
        warnings.warn(
            f"{type(self.model).__name__}: {metric} = {value:.4g} has stayed below {threshold:.4g} "
            f"for {self.patience} {self.per}(s) ({where}): {advice}"
            + (" Training stops." if self.stop else " Pass stop=True to stop training when this happens."),
            CollapseWarning, stacklevel=3,
        )
        if self.stop:
            self.model.stop_training = True


__all__ = ["ADVICE", "HealthMonitor"]
