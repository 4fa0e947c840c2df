"""The vision methods, a module per family of pretext task.

* :mod:`~keras_ssl.vision.methods.contrastive`: SimCLR, MoCo v2, NNCLR;
* :mod:`~keras_ssl.vision.methods.self_distillation`: BYOL, SimSiam, DINO;
* :mod:`~keras_ssl.vision.methods.clustering`: SwAV;
* :mod:`~keras_ssl.vision.methods.redundancy_reduction`: Barlow Twins, VICReg;
* :mod:`~keras_ssl.vision.methods.masked_image_modeling`: MAE (on Hugging Face's TF ViT-MAE);
* :mod:`~keras_ssl.vision.methods.reconstruction`: Autoencoder (denoising variants), Colorization;
* :mod:`~keras_ssl.vision.methods.transformation_prediction`: RotationPrediction (RotNet),
  Jigsaw.

Each method is a small :class:`~keras_ssl.vision.base.VisionSSLModel` subclass: its heads, its loss
wiring and (for momentum methods) a post-step update; the training step itself is the shared one.
Defaults are the papers'; small dims suit small data.
"""

from keras_ssl.vision.methods.clustering import SwAV
from keras_ssl.vision.methods.contrastive import NNCLR, MoCo, SimCLR
from keras_ssl.vision.methods.masked_image_modeling import MAE
from keras_ssl.vision.methods.reconstruction import Autoencoder, Colorization, ab_prior
from keras_ssl.vision.methods.redundancy_reduction import BarlowTwins, VICReg
from keras_ssl.vision.methods.self_distillation import BYOL, DINO, SimSiam
from keras_ssl.vision.methods.transformation_prediction import Jigsaw, RotationPrediction, jigsaw_permutations

__all__ = ["DINO", "MAE", "NNCLR", "Autoencoder", "BYOL", "BarlowTwins", "Colorization", "Jigsaw", "MoCo",
           "RotationPrediction", "SimCLR", "SimSiam", "SwAV", "VICReg", "ab_prior", "jigsaw_permutations"]
