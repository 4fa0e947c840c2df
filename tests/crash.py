"""A callback that kills training at an optimizer step, for kill-and-resume tests."""

from __future__ import annotations

from keras_ssl.backend import keras


class CrashAtStep(keras.callbacks.Callback):
    """Raise ``RuntimeError("simulated crash")`` after optimizer step ``step`` (a killed process)."""

    def __init__(self, step: int):
        super().__init__()
        self.step = int(step)

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            raise RuntimeError("simulated crash")
