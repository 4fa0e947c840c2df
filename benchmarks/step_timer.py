"""Per-step timing for the benchmarks: every training step timed inside one ``fit`` call.

Timing whole ``fit`` calls also counts what ``fit`` does around the steps: ending a pass over the
data sometimes waited ~10 s here (tf.data's autotuning thread stopping), in every path alike.
"""

from __future__ import annotations

import time

from keras_ssl.backend import keras


class StepTimer(keras.callbacks.Callback):
    """``seconds`` and ``losses`` of each training step (reading the loss waits for the step's result)."""

    def __init__(self):
        super().__init__()
        self.seconds: list = []
        self.losses: list = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float((logs or {}).get("loss", float("nan"))))
        self.seconds.append(time.perf_counter() - self._start)
