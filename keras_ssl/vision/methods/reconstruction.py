"""Reconstruction: rebuild the image (autoencoders, denoising) or its colours (colorization).

The encoder's pooled features are the bottleneck: the decoder sees nothing else of the input (the
colorization decoder also sees the lightness it colours), so what the features must carry is what a
downstream classifier reads. :meth:`pretext` returns ``(input, target)``; losses are means over the
global batch (per-example values gathered from all replicas), so one replica or many train alike.
"""

from __future__ import annotations

from typing import Callable, Optional, Union

import numpy as np

from keras_ssl import losses
from keras_ssl.augment.corruption import corruption as _corruption
from keras_ssl.backend import keras, tf
from keras_ssl.vision.base import as_float_images
from keras_ssl.vision.color import ab_gamut, lab_to_rgb, rgb_to_lab
from keras_ssl.vision.decoders import pixel_decoder
from keras_ssl.vision.methods._shared import SingleImageMethod

Corruption = Union[None, str, Callable]


def _check_decoder(decoder: keras.Model, inputs: list, expected: tuple, method: str) -> keras.Model:
    try:
        shape = tuple(decoder.compute_output_shape([tuple(i) for i in inputs] if len(inputs) > 1
                                                   else tuple(inputs[0])))[1:]
    except Exception:  # subclassed decoders without compute_output_shape: run it once
        shape = tuple(decoder([tf.zeros((1, *i[1:])) for i in inputs] if len(inputs) > 1
                              else tf.zeros((1, *inputs[0][1:]))).shape[1:])
    if tuple(int(d) for d in shape) != tuple(int(d) for d in expected):
        raise ValueError(
            f"{method}: the decoder outputs {tuple(shape)} per example but the target is {tuple(expected)}. "
            "Build the decoder for the encoder's input size (e.g. vision.decoders.pixel_decoder(feature_dim, "
            "output_shape)) or leave decoder=None for the default."
        )
    return decoder


class Autoencoder(SingleImageMethod):
    """(Denoising) autoencoder: rebuild each image from the pooled features of (a corrupted copy of) it.

    Hinton & Salakhutdinov (2006); denoising autoencoders, Vincent et al. (2008, 2010): the input is
    corrupted and the clean image is the target. The corruption runs in the graph, fresh every step
    (:mod:`keras_ssl.augment.corruption`): ``None`` (plain autoencoder), ``"gaussian"`` (σ 0.1),
    ``"salt_and_pepper"`` (10 % of pixels), ``"erasing"`` (random erasing, Zhong et al. 2020),
    ``"patches"`` (half of the 4x4 patches blanked), or any op ``f(images, training)``. Validation
    corrupts too, so the validation loss measures the same task.

    ``decoder``: a Keras model ``[batch, D] -> [batch, H, W, C]`` with pixels in ``[0, 1]``; default
    :func:`keras_ssl.vision.decoders.pixel_decoder` with ``decoder_width`` filters. ``augment``: an
    optional augmentation applied before the corruption (target and input share it). ``loss``:
    ``"mse"`` (default) or ``"bce"`` (pixels as Bernoulli probabilities, common for MNIST).
    Metrics: ``loss``, ``psnr`` (dB, reconstruction vs clean image), ``embedding_std``.
    """

    def __init__(self, encoder: keras.Model, decoder: Optional[keras.Model] = None,
                 augment: Optional[Callable] = None, corruption: Corruption = None, loss: str = "mse",
                 decoder_width: int = 32, seed: Optional[int] = None, **kwargs):
        super().__init__(encoder, augment, **kwargs)
        if loss not in ("mse", "bce"):
            raise ValueError(f"loss must be 'mse' or 'bce', got {loss!r}.")
        self.loss_kind = loss
        self.corruption = _corruption(corruption, seed)
        if hasattr(self.corruption, "build_state"):  # its step counter is a model weight from the start
            self.corruption.build_state()
        decoder = decoder or pixel_decoder(self.feature_dim, self.image_shape, decoder_width)
        self.decoder = _check_decoder(decoder, [(None, self.feature_dim)], self.image_shape, "Autoencoder")

    def health_metric_names(self):
        return ("psnr", "embedding_std")

    def pretext(self, inputs, training: bool):
        images = self.augmented(self._check_images(inputs), training)
        corrupted = images if self.corruption is None else self.corruption(images, training=True)
        return corrupted, images

    def _forward(self, images: tf.Tensor, training: bool) -> tuple:
        """``(features [batch, D], reconstruction float32 [batch, H, W, C])`` of float ``images``."""
        features = self.encoder(images, training=training)
        return features, tf.cast(self.decoder(features, training=training), tf.float32)

    def reconstruct(self, images, training: bool = False) -> tf.Tensor:
        """Reconstructions ``float32 [batch, H, W, C]`` of (uncorrupted) ``images``."""
        return self._forward(self._check_images(images), training)[1]

    def ssl_loss(self, corrupted, clean, training):
        features, output = self._forward(corrupted, training)
        squared = tf.reduce_mean(tf.square(output - clean), axis=[1, 2, 3])
        if self.loss_kind == "bce":
            p = tf.clip_by_value(output, 1e-7, 1.0 - 1e-7)
            per_example = -tf.reduce_mean(clean * tf.math.log(p) + (1.0 - clean) * tf.math.log(1.0 - p),
                                          axis=[1, 2, 3])
        else:
            per_example = squared
        psnr = -10.0 * tf.math.log(tf.maximum(squared, 1e-10)) / tf.math.log(10.0)
        return self.global_mean(per_example), {
            "psnr": self.global_mean(tf.stop_gradient(psnr)),
            "embedding_std": losses.embedding_std(self.gather(tf.stop_gradient(features))),
        }

    def reconstruction_panels(self, images) -> list:
        """``[(title, float32 [n, H, W, C])]`` for :func:`keras_ssl.vision.render_reconstructions`."""
        clean = self._check_images(images)
        panels = [("original", clean)]
        if self.corruption is not None:
            corrupted = self.corruption(clean, training=True)
            panels.append(("corrupted", corrupted))
        else:
            corrupted = clean
        return panels + [("reconstruction", self._forward(corrupted, training=False)[1])]


def ab_prior(images, grid: int = 10, sigma: float = 5.0) -> np.ndarray:
    """Empirical distribution ``[Q]`` of the quantised ab colours of RGB ``images``, smoothed.

    Each pixel counts for its nearest cell of :func:`keras_ssl.vision.color.ab_gamut`; the histogram
    is smoothed with a Gaussian of ``sigma`` over the cell centres (Zhang et al., σ 5). Pass it to
    :class:`Colorization` as ``prior`` for class rebalancing.
    """
    centres = ab_gamut(grid)
    images = np.asarray(images)
    images = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"ab_prior needs colour images [batch, H, W, 3]; got shape {images.shape}.")
    counts = np.zeros(len(centres), np.float64)
    for start in range(0, len(images), 256):
        ab = rgb_to_lab(images[start:start + 256]).numpy()[..., 1:].reshape(-1, 2)
        nearest = np.argmin(((ab[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
        counts += np.bincount(nearest, minlength=len(centres))
    distance = ((centres[:, None, :] - centres[None]) ** 2).sum(-1)
    smoothed = np.exp(-distance / (2.0 * sigma ** 2)) @ (counts / counts.sum())
    return (smoothed / smoothed.sum()).astype(np.float32)


class Colorization(SingleImageMethod):
    """Colorization (Zhang et al., 2016): predict an image's colours (CIE ab) from its lightness L.

    RGB images are converted to Lab in the graph (:mod:`keras_ssl.vision.color`); the encoder sees
    ``L / 100`` (``[batch, H, W, 1]``, tiled to 3 channels for an encoder built for colour input, so
    it later reads grayscale-converted colour images), the decoder sees the pooled features and L and
    predicts ab for every pixel. Grayscale images have no colours to predict: they are an error.

    ``loss``:

    * ``"regression"`` (default): mean squared error on ``ab / 110``; simple, but regression to the
      mean gives desaturated colours (the paper's motivation for classification);
    * ``"classification"`` (the paper's): ab quantised to the Q in-gamut cells of a 10x10 grid
      (:func:`~keras_ssl.vision.color.ab_gamut`), soft targets on the 5 nearest cells (Gaussian
      σ 5), per-pixel cross-entropy weighted by class rebalancing ``w ∝ ((1 - λ) p + λ / Q)^-1``
      (``rebalance=λ``, 0.5 in the paper) with ``p`` the smoothed empirical ab distribution
      (``prior``, from :func:`ab_prior` on training images; ``None``: no rebalancing), normalised
      so ``E_p[w] = 1``. Colours are decoded with the annealed mean (temperature 0.38).

    Metrics: ``loss``, ``ab_error`` (mean absolute ab error of the decoded colours), ``embedding_std``.
    """

    encoder_sees_the_images = False  # it sees the lightness channel

    AB_SCALE = 110.0
    NEIGHBOURS, SIGMA, ANNEAL_T = 5, 5.0, 0.38

    def __init__(self, encoder: keras.Model, decoder: Optional[keras.Model] = None,
                 augment: Optional[Callable] = None, loss: str = "regression", prior=None,
                 rebalance: float = 0.5, decoder_width: int = 32, **kwargs):
        super().__init__(encoder, augment, **kwargs)
        if loss not in ("regression", "classification"):
            raise ValueError(f"loss must be 'regression' or 'classification', got {loss!r}.")
        if self.image_shape[-1] not in (1, 3):
            raise ValueError(f"Colorization's encoder must take 1 (lightness) or 3 channels; it takes "
                             f"{self.image_shape[-1]}.")
        self.loss_kind = loss
        centres = ab_gamut()
        self.ab_centres = tf.constant(centres)
        out_channels = 2 if loss == "regression" else len(centres)
        height, width = self.image_shape[:2]
        decoder = decoder or pixel_decoder(self.feature_dim, (height, width, out_channels), decoder_width,
                                           condition_channels=1, output_activation=None,
                                           name="colorization_decoder")
        self.decoder = _check_decoder(decoder, [(None, self.feature_dim), (None, height, width, 1)],
                                      (height, width, out_channels), "Colorization")
        weights = np.ones(len(centres), np.float32)
        if prior is not None:
            if loss != "classification":
                raise ValueError("prior (class rebalancing) applies to loss='classification' only.")
            prior = np.asarray(prior, np.float64)
            if prior.shape != (len(centres),) or np.any(prior < 0) or prior.sum() <= 0:
                raise ValueError(f"prior must be a distribution over the {len(centres)} ab cells "
                                 "(from vision.methods.reconstruction.ab_prior(images)).")
            if not 0.0 <= rebalance <= 1.0:
                raise ValueError(f"rebalance must be in [0, 1], got {rebalance}.")
            prior = prior / prior.sum()
            weights = 1.0 / ((1.0 - rebalance) * prior + rebalance / len(centres))
            weights = (weights / np.sum(prior * weights)).astype(np.float32)
        self.class_weights = tf.constant(weights)

    def health_metric_names(self):
        return ("ab_error", "embedding_std")

    @staticmethod
    def _colour_images(images) -> tf.Tensor:
        """uint8 or float RGB images -> float32 ``[0, 1]``; anything but 3 channels is an error."""
        images = as_float_images(images)
        if images.shape[-1] != 3:
            raise ValueError(
                f"Colorization needs colour images [batch, H, W, 3]; got {images.shape[-1]} channel(s). "
                "Grayscale images have no colours to predict: use an Autoencoder or RotationPrediction."
            )
        return images

    def _split(self, images):
        """RGB ``[batch, H, W, 3]`` -> (encoder input, L / 100 ``[..., 1]``, ab ``[..., 2]``)."""
        lab = rgb_to_lab(images)
        lightness = lab[..., :1] / 100.0
        encoder_input = lightness if self.image_shape[-1] == 1 else tf.tile(lightness, [1, 1, 1, 3])
        return encoder_input, lightness, lab[..., 1:]

    def pretext(self, inputs, training: bool):
        encoder_input, lightness, ab = self._split(self.augmented(self._colour_images(inputs), training))
        return encoder_input, tf.concat([lightness, ab], axis=-1)

    def _forward(self, encoder_input: tf.Tensor, lightness: tf.Tensor, training: bool) -> tuple:
        """``(features [batch, D], decoder output float32 [batch, H, W, 2 or Q])``."""
        features = self.encoder(encoder_input, training=training)
        return features, tf.cast(self.decoder([features, lightness], training=training), tf.float32)

    def _decode_ab(self, output: tf.Tensor) -> tf.Tensor:
        """Decoder output -> ab ``[..., 2]`` (the annealed mean for classification)."""
        if self.loss_kind == "regression":
            return output * self.AB_SCALE
        # softmax(log p / T) = softmax(logits / T): the per-pixel log-normaliser cancels
        probabilities = tf.nn.softmax(output / self.ANNEAL_T, axis=-1)
        return tf.tensordot(probabilities, self.ab_centres, axes=1)

    def ssl_loss(self, encoder_input, lab_target, training):
        lightness, ab = lab_target[..., :1], lab_target[..., 1:]
        features, output = self._forward(encoder_input, lightness, training)
        if self.loss_kind == "regression":
            per_pixel = tf.reduce_mean(tf.square(output - ab / self.AB_SCALE), axis=-1)
        else:
            per_pixel = self._soft_cross_entropy(output, ab)
        ab_error = tf.reduce_mean(tf.abs(tf.stop_gradient(self._decode_ab(output)) - ab), axis=[1, 2, 3])
        return self.global_mean(tf.reduce_mean(per_pixel, axis=[1, 2])), {
            "ab_error": self.global_mean(ab_error),
            "embedding_std": losses.embedding_std(self.gather(tf.stop_gradient(features))),
        }

    def _soft_cross_entropy(self, logits: tf.Tensor, ab: tf.Tensor) -> tf.Tensor:
        """Per-pixel rebalanced cross-entropy against soft targets on the 5 nearest ab cells."""
        # |ab - c|^2 = |ab|^2 - (2 ab.c - |c|^2): the bracket ranks the cells with one [B, H, W, Q]
        # matmul instead of differencing a [B, H, W, Q, 2] tensor (the step's cost over the plain
        # network fell from 1.36x to 1.14x, benchmarks/reconstruction_overhead.py)
        centres = self.ab_centres
        closeness = 2.0 * tf.tensordot(ab, tf.transpose(centres), axes=1) - tf.reduce_sum(centres ** 2, -1)
        nearest, cells = tf.math.top_k(closeness, k=self.NEIGHBOURS)
        distance = tf.reduce_sum(tf.square(ab), axis=-1, keepdims=True) - nearest  # [B, H, W, 5]
        target = tf.nn.softmax(-distance / (2.0 * self.SIGMA ** 2), axis=-1)  # Gaussian, normalised
        log_p = tf.gather(tf.nn.log_softmax(logits, axis=-1), cells, batch_dims=3)
        weight = tf.gather(self.class_weights, cells[..., 0])
        return -weight * tf.reduce_sum(target * log_p, axis=-1)

    def colorize(self, images, training: bool = False) -> tf.Tensor:
        """Colour ``images`` (RGB or grayscale ``[batch, H, W, 1 or 3]``) from their lightness -> RGB."""
        images = as_float_images(images)
        if images.shape[-1] == 1:
            images = tf.tile(images, [1, 1, 1, 3])
        encoder_input, lightness, _ = self._split(images)
        return self._coloured(encoder_input, lightness, training)

    def _coloured(self, encoder_input: tf.Tensor, lightness: tf.Tensor, training: bool = False) -> tf.Tensor:
        """RGB ``[0, 1]`` from the lightness and the decoded ab."""
        ab = self._decode_ab(self._forward(encoder_input, lightness, training)[1])
        return lab_to_rgb(tf.concat([lightness * 100.0, ab], axis=-1))

    def reconstruction_panels(self, images) -> list:
        """``[(title, float32 [n, H, W, C])]``: lightness, colourised, original."""
        images = self._colour_images(images)
        encoder_input, lightness, _ = self._split(images)
        return [("lightness", lightness), ("colourised", self._coloured(encoder_input, lightness)),
                ("original", images)]


__all__ = ["Autoencoder", "Colorization", "ab_prior"]
