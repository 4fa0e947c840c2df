"""Real datasets that ship inside packages, loaded offline: one module per source.

Nothing is downloaded at run time; a loader whose package is missing names the install command.
"""

from keras_ssl.datasets.digits import digits, shift_images
from keras_ssl.datasets.sampling import few_labels

__all__ = ["digits", "few_labels", "shift_images"]
