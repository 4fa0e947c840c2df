"""Run ``keras-ssl`` in-process, stalling after training step ``N`` so that a test can kill it.

Usage: ``cli_stall.py N ARGS...``. Once step ``N`` has run (after the callbacks before it, such as
``BackupAndRestore``), prints ``STALL <step>`` and sleeps until killed.
"""

import sys
import time

from keras_ssl.cli import main, runs


def stalling(original, at: int):
    def callbacks(args, output):
        from keras_ssl.backend import keras

        class Stall(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                step = int(self.model.optimizer.iterations.numpy())
                if step >= at:
                    print(f"STALL {step}", flush=True)
                    time.sleep(3600)

        return [*original(args, output), Stall()]

    return callbacks


if __name__ == "__main__":
    runs.training_callbacks = stalling(runs.training_callbacks, int(sys.argv[1]))
    sys.exit(main(sys.argv[2:]))
