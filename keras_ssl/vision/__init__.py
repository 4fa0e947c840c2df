"""Vision self-supervised methods on the shared training base."""

from keras_ssl.vision import backbones, heads
from keras_ssl.vision.base import VisionSSLModel, as_float_images
from keras_ssl.vision.classifier import ImageClassifier
from keras_ssl.vision.data import image_dataset
from keras_ssl.vision.methods import BYOL, BarlowTwins, MoCo, SimCLR, SimSiam, VICReg

__all__ = ["BYOL", "BarlowTwins", "MoCo", "SimCLR", "SimSiam", "VICReg", "VisionSSLModel", "as_float_images",
           "backbones", "heads", "image_dataset"]
__all__ += ["ImageClassifier"]
