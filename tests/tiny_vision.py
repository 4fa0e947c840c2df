"""Tiny heads for every vision method, shared by the tests and their subprocess scripts."""

from keras_ssl import augment
from keras_ssl.vision import heads as H

TINY_HEADS = {
    "SimCLR": lambda: dict(projection=H.simclr_projection(output_dim=8, hidden_dim=16), temperature=0.5),
    "MoCo": lambda: dict(projection=H.moco_projection(16, 8), queue_size=40, momentum=0.9),
    "BYOL": lambda: dict(projection=H.byol_projection(16, 8), prediction=H.byol_prediction(16, 8),
                         total_steps=10),
    "SimSiam": lambda: dict(projection=H.simsiam_projection(output_dim=16),
                            prediction=H.simsiam_prediction(8, 16)),
    "BarlowTwins": lambda: dict(projection=H.barlow_projection(dim=16)),
    "VICReg": lambda: dict(projection=H.vicreg_projection(dim=16)),
    "NNCLR": lambda: dict(projection=H.nnclr_projection(16, 8), prediction=H.nnclr_prediction(16, 8),
                          queue_size=40, temperature=0.5),
    "DINO": lambda: dict(head=H.dino_head(16, 16, 8, kernel_initializer="he_normal"), total_steps=10),
    "SwAV": lambda: dict(projection=H.simclr_projection(8, 16), num_prototypes=16, freeze_prototypes_steps=0),
    "Autoencoder": lambda: dict(decoder_width=4, corruption=augment.GaussianNoise(0.1, seed=0), loss="bce"),
    "RotationPrediction": lambda: dict(head=H.rotation_head(8)),
    "Colorization": lambda: dict(decoder_width=4),
    "Jigsaw": lambda: dict(grid=2, num_permutations=24, head=H.jigsaw_head(24, 8), seed=0),
}

# Channels of the images a method trains on, where they differ from its encoder's input
# (colorization's encoder sees the lightness of colour images).
IMAGE_CHANNELS = {"Colorization": 3}
# Image sides per encoder side, where they differ: a 2x2 jigsaw's tiles are the encoder's input.
IMAGE_SCALE = {"Jigsaw": 2}


def tiny_images(name, rng, batch, size):
    """Float images ``[batch, S, S, C]`` in ``[0, 1]`` for ``name``'s encoder of side ``size`` (S: ``size``;
    twice it for the jigsaw; C: 1; 3 for colorization)."""
    side = size * IMAGE_SCALE.get(name, 1)
    return rng.random((batch, side, side, IMAGE_CHANNELS.get(name, 1))).astype("float32")


# A two-layer ViT-MAE of width 16 (4x4 patches): the MAE counterpart of the tiny heads above.
TINY_MAE = dict(patch_size=4, size="tiny", hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=32, decoder_hidden_size=16, decoder_num_hidden_layers=1,
                decoder_num_attention_heads=2, decoder_intermediate_size=32, seed=0)


def tiny_mae(image_size, channels=1, **overrides):
    """``vision.MAE`` with :data:`TINY_MAE` settings for ``image_size`` x ``image_size`` images."""
    from keras_ssl import vision

    return vision.MAE.from_config(image_size, num_channels=channels, **{**TINY_MAE, **overrides})
