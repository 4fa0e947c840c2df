"""Real datasets that ship inside packages, loaded offline: one module per source.

Nothing is downloaded at run time; a loader whose package is missing names the install command.
"""

from keras_ssl.datasets.adult import adult
from keras_ssl.datasets.clothing_reviews import clothing_reviews
from keras_ssl.datasets.digits import digits, shift_images
from keras_ssl.datasets.mnist import mnist
from keras_ssl.datasets.package_data import MissingDataPackageError
from keras_ssl.datasets.protein import protein_homology
from keras_ssl.datasets.pydoc import pydoc_topics
from keras_ssl.datasets.rotten_tomatoes import rotten_tomatoes
from keras_ssl.datasets.sampling import few_labels

__all__ = ["digits", "few_labels", "shift_images"]
__all__ += ["MissingDataPackageError", "clothing_reviews", "mnist", "rotten_tomatoes"]
__all__ += ["pydoc_topics"]
__all__ += ["adult", "protein_homology"]
