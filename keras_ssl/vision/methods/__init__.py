"""The vision methods, a module per family of pretext task.

* :mod:`~keras_ssl.vision.methods.contrastive`: SimCLR, MoCo v2;
* :mod:`~keras_ssl.vision.methods.self_distillation`: BYOL, SimSiam;
* :mod:`~keras_ssl.vision.methods.redundancy_reduction`: Barlow Twins, VICReg;

Each method is a small :class:`~keras_ssl.vision.base.VisionSSLModel` subclass: its heads, its loss
wiring and (for momentum methods) a post-step update; the training step itself is the shared one.
Defaults are the papers'; small dims suit small data.
"""

from keras_ssl.vision.methods.contrastive import MoCo, SimCLR
from keras_ssl.vision.methods.redundancy_reduction import BarlowTwins, VICReg
from keras_ssl.vision.methods.self_distillation import BYOL, SimSiam

__all__ = ["BYOL", "BarlowTwins", "MoCo", "SimCLR", "SimSiam", "VICReg"]
