"""See what a reconstruction pretext learned: inputs, corrupted inputs and outputs in one image (and the
jigsaw: images, puzzles and the model's solutions)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from keras_ssl.augment.grid import image_grid
from keras_ssl.backend import keras, tf


def render_reconstructions(model, images, n_images: int = 8, path: Optional[str] = None) -> np.ndarray:
    """One row per image, one column per panel of ``model.reconstruction_panels``.

    Autoencoder: original | corrupted (if it corrupts) | reconstruction; Colorization: lightness |
    colourised | original; Jigsaw: original | puzzle | solved by the model. ``images``:
    ``[batch, H, W, C]`` uint8 or float ``[0, 1]``; the first ``n_images`` are used. Returns
    ``uint8 [n * H, panels * W, 3]``; writes a PNG to ``path`` if given.
    """
    panels = getattr(model, "reconstruction_panels", None)
    if panels is None:
        raise ValueError(f"{type(model).__name__} does not produce images; render_reconstructions takes "
                         "a model that reconstructs them (vision.Autoencoder, vision.Colorization) or "
                         "solves puzzles (vision.Jigsaw).")
    columns = panels(tf.convert_to_tensor(images)[:n_images])
    return image_grid([images for _, images in columns], path)


class ReconstructionImages(keras.callbacks.Callback):
    """Write :func:`render_reconstructions` of fixed ``images`` to TensorBoard every ``every_n_epochs``.

    ``log_dir``: the TensorBoard directory (e.g. the ``keras.callbacks.TensorBoard`` one); the image
    appears under ``name`` at the epoch's step.
    """

    def __init__(self, images, log_dir: str, every_n_epochs: int = 1, n_images: int = 8,
                 name: str = "reconstructions"):
        super().__init__()
        self.images = np.asarray(images)[:n_images]
        self.log_dir, self.every_n_epochs, self.name = log_dir, int(every_n_epochs), name
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs:
            return
        grid = render_reconstructions(self.model, self.images, n_images=len(self.images))
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default():
            tf.summary.image(self.name, grid[None], step=epoch + 1)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


__all__ = ["ReconstructionImages", "render_reconstructions"]
