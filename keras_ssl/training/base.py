"""The one training-step shape shared by every keras_ssl method.

A method is a :class:`SSLModel` subclass that supplies three pieces:

* :meth:`SSLModel.pretext` turns a batch into views/targets (masking, augmentation);
* :meth:`SSLModel.compute_loss_and_stats` scores them and returns *this replica's share* of the
  global-batch loss plus health statistics as ``(numerator, denominator)`` pairs;
* :meth:`SSLModel.post_step` runs after the optimizer step (EMA targets, queues). It receives the
  ``step_outputs`` that :meth:`SSLModel.compute_step` returns (e.g. MoCo's gathered keys), so values
  flow from the loss to the update as tensors of the same traced step: no state is kept on the model.

The base class owns gradients, loss scaling for mixed precision, cross-replica exactness and
metrics, so every method trains under any ``tf.distribute`` strategy and with ``jit_compile``.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Dict, Mapping, Tuple

from keras_ssl.backend import keras, tf
from keras_ssl.training.metrics import RatioMetric, ShareMean
from keras_ssl.training.replicas import num_replicas

Stats = Mapping[str, Tuple[tf.Tensor, tf.Tensor]]


class SSLModel(keras.Model):
    """Base ``keras.Model`` with the shared custom ``train_step`` / ``test_step``.

    Subclasses list their health metrics in :meth:`stat_metrics` and implement
    :meth:`compute_loss_and_stats`. Labels in ``(x, y)`` batches are ignored.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.loss_tracker = ShareMean("loss")
        self._stat_metrics = {m.name: m for m in self.stat_metrics()}

    # --- pieces a method supplies -------------------------------------------------------
    def stat_metrics(self) -> list:
        """Metrics fed by the ``stats`` that :meth:`compute_loss_and_stats` returns."""
        return []

    def pretext(self, inputs: Any, training: bool) -> Any:
        """Turn a batch into the views/targets the loss needs. Identity by default."""
        return inputs

    def compute_loss_and_stats(self, views: Any, training: bool) -> Tuple[tf.Tensor, Stats]:
        """Return ``(loss_share, stats)``; loss shares of all replicas sum to the global loss."""
        raise NotImplementedError

    def compute_step(self, views: Any, training: bool) -> Tuple[tf.Tensor, Stats, Any]:
        """``(loss_share, stats, step_outputs)``: :meth:`compute_loss_and_stats` plus what this step
        hands to :meth:`post_step` (a nest of tensors, or ``None``: the default)."""
        loss_share, stats = self.compute_loss_and_stats(views, training)
        return loss_share, stats, None

    def post_step(self, step_outputs: Any = None) -> None:
        """Updates after the optimizer step (EMA, queues). Nothing by default.

        ``step_outputs`` are the third value of :meth:`compute_step` for this step, computed in the
        same replica context (so under a strategy, per replica; gather them in the loss if every
        replica needs the global batch). Overrides that need nothing may omit the argument.
        """
        return None

    def optimized_variables(self) -> list:
        """Variables the optimizer updates: all trainable ones unless a method excludes some."""
        return self.trainable_variables

    # --- the shared step ----------------------------------------------------------------
    def fit(self, *args, **kwargs):
        """``keras.Model.fit``, plus a guard that stops on a NaN/inf loss with a clear error, and
        an exact data position when ``keras.callbacks.BackupAndRestore`` resumes mid-run.

        Keras restores the weights, optimizer and epoch/step counters but starts a fresh pass over
        the data, so a run resumed at step ``k`` of an epoch would train on the epoch's first
        batches again (and, for a repeated dataset with ``steps_per_epoch``, on the stream's first
        batches). Here the batches already consumed are skipped first, so the resumed run sees the
        same batches as an uninterrupted one (given a deterministic dataset; docs/distributed.md).
        """
        arguments = inspect.signature(keras.Model.fit).bind(self, *args, **kwargs).arguments
        arguments.pop("self")
        callbacks = list(arguments.get("callbacks") or [])
        if not any(isinstance(c, NonFiniteLossError.Guard) for c in callbacks):
            callbacks.append(NonFiniteLossError.Guard())
        arguments["callbacks"] = callbacks
        per_epoch = _recreates_iterator(arguments.get("x"), arguments.get("steps_per_epoch"))
        self._resume_plan = _ResumePlan(per_epoch, arguments.get("initial_epoch", 0))
        self._build_optimizer()
        try:
            return super().fit(**arguments)
        finally:
            self._resume_plan = None
            if isinstance(self.train_function, _SkipThenTrain):
                self.train_function = self.train_function.inner

    def _build_optimizer(self) -> None:
        """Create the optimizer's slots for :meth:`optimized_variables` before ``fit`` starts.

        ``BackupAndRestore`` otherwise builds an unbuilt optimizer on *all* trainable variables
        (EMA targets included) while a step builds it on the optimized ones only; building it here
        gives every run the same optimizer variables, so checkpoints restore slot for slot.
        """
        optimizer = getattr(self, "optimizer", None)
        inner = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer
        unbuilt = isinstance(inner, keras.optimizers.Optimizer) and not getattr(inner, "_built", False)
        if self.built and unbuilt and self.optimized_variables():
            with self.distribute_strategy.scope():
                inner.build(self.optimized_variables())

    def _maybe_load_initial_counters_from_ckpt(self, steps_per_epoch, initial_epoch):
        epoch, step = super()._maybe_load_initial_counters_from_ckpt(steps_per_epoch, initial_epoch)
        plan = getattr(self, "_resume_plan", None)
        if plan is None or (epoch, step) == (initial_epoch, 0):
            return epoch, step
        if plan.per_epoch_iterator:  # a fresh pass per epoch: skip this epoch's trained batches
            skip = step
        else:  # one stream over all epochs, started at ``first_epoch``
            skip = (epoch - plan.first_epoch) * int(steps_per_epoch or 0) + step
        if skip > 0 and self.train_function is not None:
            self.train_function = _SkipThenTrain(self, self.train_function, skip)
        return epoch, step

    @property
    def metrics(self):
        return [self.loss_tracker, *self._stat_metrics.values()]

    def _record(self, loss_share: tf.Tensor, stats: Stats) -> Dict[str, tf.Tensor]:
        self.loss_tracker.update_state(loss_share)
        for name, (numerator, denominator) in stats.items():
            self._stat_metrics[name].update_state(numerator, denominator)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        inputs, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        views = self.pretext(inputs, training=True)
        with tf.GradientTape() as tape:
            loss_share, stats, step_outputs = self.compute_step(views, training=True)
            loss_share = tf.cast(loss_share, tf.float32)
            if self.losses:  # regularisers are per-model, so each replica carries 1/N of them
                loss_share += tf.add_n([tf.cast(x, tf.float32) for x in self.losses]) / num_replicas()
            optimizer = self.optimizer
            scaled = isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer)
            target = optimizer.get_scaled_loss(loss_share) if scaled else loss_share
        variables = self.optimized_variables()
        gradients = tape.gradient(target, variables)
        if scaled:  # LossScaleOptimizer skips the non-finite steps of its loss scaling itself
            gradients = optimizer.get_unscaled_gradients(gradients)
        else:
            # A NaN/inf gradient is reported as a NaN loss (NonFiniteLossError stops fit) and zeroed
            # so that it never reaches the weights. The loss alone is not enough: oneDNN's fused
            # batch-norm + ReLU (TensorFlow's default on AVX-512 CPUs) maps NaN to 0 in the forward
            # pass, so NaN inputs may only show in the gradients.
            finite = all_finite(gradients)
            loss_share = tf.where(finite, loss_share, float("nan"))
            gradients = [_zero_unless(finite, g) for g in gradients]
        optimizer.apply_gradients(
            (g, v) for g, v in zip(gradients, variables) if g is not None
        )
        if step_outputs is None:
            self.post_step()
        else:
            self.post_step(step_outputs)
        return self._record(loss_share, stats)

    def test_step(self, data):
        inputs, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        views = self.pretext(inputs, training=False)
        loss_share, stats = self.compute_loss_and_stats(views, training=False)
        return self._record(tf.cast(loss_share, tf.float32), stats)


def all_finite(tensors) -> tf.Tensor:
    """Scalar bool: every value of every tensor (``IndexedSlices`` included; ``None`` skipped) is finite."""
    checks = [tf.reduce_all(tf.math.is_finite(t.values if isinstance(t, tf.IndexedSlices) else t))
              for t in tensors if t is not None]
    return tf.reduce_all(tf.stack(checks)) if checks else tf.constant(True)


def _zero_unless(keep: tf.Tensor, gradient):
    if gradient is None:
        return None
    if isinstance(gradient, tf.IndexedSlices):
        values = tf.where(keep, gradient.values, tf.zeros_like(gradient.values))
        return tf.IndexedSlices(values, gradient.indices, gradient.dense_shape)
    return tf.where(keep, gradient, tf.zeros_like(gradient))


def _recreates_iterator(x, steps_per_epoch) -> bool:
    """Whether ``fit`` starts a fresh pass over ``x`` every epoch (the rule of Keras' data adapters)."""
    if isinstance(x, tf.data.Dataset):
        return steps_per_epoch is None or int(x.cardinality()) == int(steps_per_epoch)
    if isinstance(x, (tf.SparseTensor, tf.RaggedTensor)):
        return True
    if isinstance(x, (list, tuple)) and x and all(isinstance(v, (int, float, list, tuple)) for v in x):
        return True  # lists of Python scalars
    # Arrays and tensors (an endless stream of index batches), generators, Sequences, distributed
    # datasets: one iterator over all epochs.
    return False


class _ResumePlan:
    """How ``fit`` reads its data (a plain object: Keras does not track it into checkpoints)."""

    def __init__(self, per_epoch_iterator: bool, first_epoch: int):
        self.per_epoch_iterator, self.first_epoch = per_epoch_iterator, int(first_epoch)


class _SkipThenTrain:
    """A one-shot ``train_function``: drop ``skip`` batches, then train and put the original back."""

    def __init__(self, model: keras.Model, inner, skip: int):
        self.model, self.inner, self.skip = model, inner, int(skip)

    def __call__(self, iterator):
        self.model.train_function = self.inner
        for _ in range(self.skip):
            next(iterator)
        return self.inner(iterator)


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss."""

    class Guard(keras.callbacks.Callback):
        """Raise :class:`NonFiniteLossError` naming the likely causes as soon as the loss is NaN/inf.

        The shared train step reports a NaN loss when a gradient is NaN/inf, so this also fires when
        the NaN only shows in the gradients.
        """

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                self.model.stop_training = True
                raise NonFiniteLossError(
                    f"{type(self.model).__name__}: the loss or its gradients became {loss} at batch {batch}. "
                    "Likely causes: "
                    "a learning rate too high for the batch size (lower it or add warmup), inputs "
                    "with NaN/inf values or not scaled to [0, 1], a temperature too small, or "
                    "float16 overflow (use mixed_bfloat16 or loss scaling). Restore the last checkpoint "
                    "(BackupAndRestore/ModelCheckpoint) after fixing it."
                )


__all__ = ["NonFiniteLossError", "SSLModel", "RatioMetric", "ShareMean"]
