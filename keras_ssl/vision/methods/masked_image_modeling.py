"""Masked image modelling: MAE (He et al., 2022) on Hugging Face's ``TFViTMAEForPreTraining``.

BERT hides tokens and predicts them; MAE hides 75 % of an image's patches, encodes the visible ones
with a ViT and reconstructs the pixels of the hidden ones with a light decoder. What keras_ssl adds
to the Hugging Face model: masks from counter-based randomness (reproducible, the same on one replica
or many, exactly ``L - int(L (1 - ratio))`` patches per image), NHWC images in like every vision
method, the loss over the masked patches of the **global** batch, ``norm_pix_loss`` on by default,
un-normalised reconstructions for people to look at, and an unmasked encoder for downstream use.
"""

from __future__ import annotations

from typing import Callable, Optional

from keras_ssl.augment.ops import Augmentation
from keras_ssl.backend import keras, tf
from keras_ssl.vision.base import as_float_images
from keras_ssl.vision.methods._shared import SingleImageMethod

#: ViT sizes of :meth:`MAE.from_config`: "tiny" and "small" for CPU-sized runs, "base" the paper's
#: ViT-B/16 encoder with its 512-d x 8-block decoder.
MAE_SIZES = {
    "tiny": dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128,
                 decoder_hidden_size=64, decoder_num_hidden_layers=2, decoder_num_attention_heads=4,
                 decoder_intermediate_size=128),
    "small": dict(hidden_size=192, num_hidden_layers=12, num_attention_heads=3, intermediate_size=768,
                  decoder_hidden_size=128, decoder_num_hidden_layers=4, decoder_num_attention_heads=4,
                  decoder_intermediate_size=512),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                 decoder_hidden_size=512, decoder_num_hidden_layers=8, decoder_num_attention_heads=16,
                 decoder_intermediate_size=2048),
}


def _pixel_values(images: tf.Tensor) -> tf.Tensor:
    """NHWC float ``[0, 1]`` -> the model's channels-first pixels in ``[-1, 1]``."""
    return tf.transpose(images * 2.0 - 1.0, (0, 3, 1, 2))


def _patch_statistics(patches: tf.Tensor) -> tuple:
    """Each patch's mean and std ``[batch, L, 1]`` (variance + 1e-6, as MAE's ``norm_pix_loss``)."""
    mean, variance = tf.nn.moments(patches, axes=[-1], keepdims=True)
    return mean, tf.sqrt(variance + 1e-6)


class _PatchNoise(Augmentation):
    """Counter-based uniforms ``[batch, patches]`` whose argsort picks each image's visible patches."""

    stream = 301

    def draw(self, batch_size, num_patches: int) -> tf.Tensor:
        return self.uniform(batch_size, self.next_step(), num_patches)


class ViTFeatures(keras.layers.Layer):
    """A ViT-MAE encoder without masking: NHWC images in ``[0, 1]`` -> pooled features ``[batch, D]``.

    ``pooling="mean"`` averages the patch tokens (MAE's fine-tuning default), ``"cls"`` takes the
    class token. Shares its weights with the ``TFViTMAEMainLayer`` it wraps.
    """

    def __init__(self, vit, pooling: str = "mean", **kwargs):
        super().__init__(**kwargs)
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}.")
        self.vit, self.pooling = vit, pooling

    def call(self, images, training=False):
        config = self.vit.config
        num_patches = (config.image_size // config.patch_size) ** 2
        noise = tf.broadcast_to(tf.range(num_patches, dtype=tf.float32)[None],
                                (tf.shape(images)[0], num_patches))
        ratio, config.mask_ratio = config.mask_ratio, 0.0  # read when the call is traced: keep every patch
        try:
            hidden = self.vit(pixel_values=_pixel_values(tf.cast(images, tf.float32)), noise=noise,
                              training=training).last_hidden_state
        finally:
            config.mask_ratio = ratio
        return tf.reduce_mean(hidden[:, 1:], axis=1) if self.pooling == "mean" else hidden[:, 0]


class MAE(SingleImageMethod):
    """Masked autoencoder (He et al., 2022) training ``transformers.TFViTMAEForPreTraining``.

    ``hf_model``: a ``TFViTMAEForPreTraining`` (any ``ViTMAEConfig``); or build one with
    :meth:`from_config`. Images are NHWC ``uint8`` or float ``[0, 1]`` at the config's size, fed to
    the model channels-first in ``[-1, 1]``. Each step masks ``L - int(L (1 - mask_ratio))`` of the
    ``L`` patches of every image (argsort of counter-based noise: reproducible for a seed, the same
    on any number of replicas), and the loss is the mean squared error over the masked patches of
    the global batch, on per-patch normalised pixels when ``norm_pix_loss`` (default ``True``, as
    in every published MAE result; Hugging Face defaults to ``False``).

    ``model.encoder`` is a Keras model ``images -> [batch, D]`` that masks nothing (mean of the patch
    tokens; ``pooling="cls"`` for the class token), for ``ImageClassifier``, probes and export.

    Paper recipe: AdamW (β 0.9, 0.95), weight decay 0.05, base learning rate 1.5e-4 x batch / 256,
    40 warmup epochs, cosine decay, random resized crop (0.2-1) + flip only, mask ratio 0.75, ViT-B/16
    encoder with a 512-d x 8-block decoder (``MAE_SIZES["base"]``). Metrics: ``loss``.
    """

    def __init__(self, hf_model, augment: Optional[Callable] = None, mask_ratio: Optional[float] = None,
                 norm_pix_loss: bool = True, pooling: str = "mean", seed: Optional[int] = None, **kwargs):
        from transformers import TFViTMAEForPreTraining

        if not isinstance(hf_model, TFViTMAEForPreTraining):
            raise ValueError(f"MAE trains a transformers.TFViTMAEForPreTraining, got "
                             f"{type(hf_model).__name__}; build one with "
                             "vision.MAE.from_config(image_size, patch_size, ...).")
        self.check_single_augment(augment)  # before building the model
        config = hf_model.config
        if mask_ratio is not None:
            config.mask_ratio = float(mask_ratio)
        if not 0.0 < float(config.mask_ratio) < 1.0:
            raise ValueError(f"mask_ratio must lie in (0, 1), got {config.mask_ratio}.")
        config.norm_pix_loss = bool(norm_pix_loss)
        size, patch, channels = int(config.image_size), int(config.patch_size), int(config.num_channels)
        hf_model.build_in_name_scope()  # every weight, named as Hugging Face saves and loads them
        inputs = keras.Input((size, size, channels), name="images")
        encoder = keras.Model(inputs, ViTFeatures(hf_model.vit, pooling, name="vit_features")(inputs),
                              name="mae_encoder")
        super().__init__(encoder, augment, **kwargs)
        self.hf_model = hf_model
        self.norm_pix_loss = bool(norm_pix_loss)
        self.num_patches = (size // patch) ** 2
        self.mask_noise = _PatchNoise(seed=seed)
        self.mask_noise.build_state()

    @classmethod
    def from_config(cls, image_size: int, patch_size: int, num_channels: int = 3, size: str = "tiny",
                    mask_ratio: float = 0.75, augment: Optional[Callable] = None,
                    norm_pix_loss: bool = True, seed: Optional[int] = None, **config_overrides) -> MAE:
        """A fresh ``TFViTMAEForPreTraining`` of preset ``size`` (:data:`MAE_SIZES`) for
        ``image_size`` x ``image_size`` images with ``num_channels`` channels, cut into
        ``patch_size`` patches; ``config_overrides`` go to ``ViTMAEConfig``."""
        from transformers import TFViTMAEForPreTraining, ViTMAEConfig

        if size not in MAE_SIZES:
            raise ValueError(f"size must be one of {sorted(MAE_SIZES)}, got {size!r}.")
        if int(patch_size) < 1 or int(image_size) < int(patch_size):
            raise ValueError(f"Images of {image_size}x{image_size} are smaller than one "
                             f"{patch_size}x{patch_size} patch: choose a smaller patch_size.")
        if int(image_size) % int(patch_size):
            raise ValueError(f"image_size {image_size} is not divisible by patch_size {patch_size}: the "
                             "image must tile into whole patches (resize or crop the images, or change "
                             "patch_size).")
        if not 0.0 < float(mask_ratio) < 1.0:
            raise ValueError(f"mask_ratio must lie in (0, 1), got {mask_ratio}.")
        config = ViTMAEConfig(image_size=int(image_size), patch_size=int(patch_size),
                              num_channels=int(num_channels), mask_ratio=float(mask_ratio),
                              norm_pix_loss=bool(norm_pix_loss), **{**MAE_SIZES[size], **config_overrides})
        return cls(TFViTMAEForPreTraining(config), augment=augment, norm_pix_loss=norm_pix_loss, seed=seed)

    def health_metric_names(self):
        return ()

    def pretext(self, inputs, training: bool):
        images = self._check_images(inputs)
        size = self.image_shape[0]
        if images.shape[1] is not None and tuple(images.shape[1:3]) != (size, size):
            raise ValueError(f"MAE was built for {size}x{size} images, got {images.shape[1]}x"
                             f"{images.shape[2]}. Resize the images or build the model for their size.")
        images = self.augmented(images, training)
        return images, self.mask_noise.draw(tf.shape(images)[0], self.num_patches)

    def targets(self, images: tf.Tensor) -> tf.Tensor:
        """Patchified pixels ``[batch, L, p * p * C]`` in ``[-1, 1]`` (per-patch normalised if
        ``norm_pix_loss``)."""
        target = self.hf_model.patchify(images * 2.0 - 1.0)
        if self.norm_pix_loss:
            mean, std = _patch_statistics(target)
            target = (target - mean) / std
        return target

    def forward(self, images: tf.Tensor, noise: tf.Tensor, training: bool = False) -> tuple:
        """``(predicted patches [batch, L, p * p * C], mask [batch, L])``, both float32.

        Runs the Hugging Face encoder and decoder but not ``TFViTMAEForPreTraining.call``, whose
        built-in loss is this replica's mean, is computed whether needed or not, and fails under
        ``mixed_float16``.
        """
        out = self.hf_model.vit(pixel_values=_pixel_values(images), noise=noise, training=training)
        logits = self.hf_model.decoder(out.last_hidden_state, out.ids_restore).logits
        return tf.cast(logits, tf.float32), tf.cast(out.mask, tf.float32)

    def ssl_loss(self, images, noise, training):
        return self.masked_patch_loss(images, *self.forward(images, noise, training)), {}

    def masked_patch_loss(self, images: tf.Tensor, logits: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """Mean squared error of ``logits`` against :meth:`targets` over the masked patches of each
        image, averaged over the global batch (scalar)."""
        per_patch = tf.reduce_mean(tf.square(logits - self.targets(images)), axis=-1)  # [batch, L]
        per_image = tf.reduce_sum(per_patch * mask, axis=-1) / tf.reduce_sum(mask, axis=-1)
        return self.global_mean(per_image)

    def reconstruct(self, images) -> tuple:
        """``(mask [batch, H, W, 1], reconstruction [batch, H, W, C])`` in pixel space ``[0, 1]``.

        The reconstruction shows the model's prediction on masked patches and the image itself on
        visible ones (the paper's figures); with ``norm_pix_loss`` the predictions are un-normalised
        with each patch's own mean and variance.
        """
        images = self._check_images(images)
        prediction, mask = self.forward(images, self.mask_noise.draw(tf.shape(images)[0], self.num_patches))
        if self.norm_pix_loss:
            mean, std = _patch_statistics(self.hf_model.patchify(images * 2.0 - 1.0))
            prediction = prediction * std + mean
        size = self.image_shape[0]
        predicted = (self.hf_model.unpatchify(prediction, (size, size)) + 1.0) / 2.0
        patch = self.hf_model.config.patch_size
        mask_image = tf.reshape(tf.repeat(tf.repeat(tf.reshape(mask, (-1, size // patch, size // patch, 1)),
                                                    patch, axis=1), patch, axis=2), (-1, size, size, 1))
        reconstruction = mask_image * predicted + (1.0 - mask_image) * images
        return mask_image, tf.clip_by_value(reconstruction, 0.0, 1.0)

    def reconstruction_panels(self, images) -> list:
        """``[(title, float32 [n, H, W, C])]``: original, visible patches (masked: gray), reconstruction."""
        images = as_float_images(images)
        mask, reconstruction = self.reconstruct(images)
        visible = mask * 0.5 + (1.0 - mask) * images
        return [("original", images), ("visible", visible), ("reconstruction", reconstruction)]

    def save_pretrained(self, path: str) -> None:
        """Write the Hugging Face directory (config + weights) that ``TFViTMAEForPreTraining`` and
        ``TFViTMAEModel`` load (``from_pretrained(path)``), and so does
        ``TFViTForImageClassification.from_pretrained(path, num_labels=n)``: it reads the ``vit_mae``
        config as a ``ViTConfig`` (with a warning that the types differ), loads every encoder weight,
        leaves out the decoder and initialises only the classifier head (on the class token)."""
        self.hf_model.save_pretrained(path)


__all__ = ["MAE", "MAE_SIZES", "ViTFeatures"]
