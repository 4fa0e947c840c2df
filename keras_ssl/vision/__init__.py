"""Vision self-supervised methods on the shared training base."""

from keras_ssl.vision import backbones, color, decoders, heads
from keras_ssl.vision.base import VisionSSLModel, as_float_images
from keras_ssl.vision.classifier import ImageClassifier
from keras_ssl.vision.data import find_unreadable_images, image_dataset
from keras_ssl.vision.methods import (
    BYOL,
    DINO,
    MAE,
    NNCLR,
    Autoencoder,
    BarlowTwins,
    Colorization,
    Jigsaw,
    MoCo,
    RotationPrediction,
    SimCLR,
    SimSiam,
    SwAV,
    VICReg,
    ab_prior,
    jigsaw_permutations,
)
from keras_ssl.vision.render import ReconstructionImages, render_reconstructions

__all__ = ["BYOL", "BarlowTwins", "MoCo", "SimCLR", "SimSiam", "VICReg", "VisionSSLModel", "as_float_images",
           "backbones", "find_unreadable_images", "heads", "image_dataset"]
__all__ += ["MAE", "Autoencoder", "Colorization", "ImageClassifier", "ReconstructionImages",
            "RotationPrediction", "ab_prior", "color", "decoders", "render_reconstructions"]
__all__ += ["DINO", "NNCLR", "SwAV"]
__all__ += ["Jigsaw", "jigsaw_permutations"]
