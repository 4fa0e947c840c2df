"""Masked-language modelling on your own text."""

from keras_ssl.text.callbacks import FillMaskCallback
from keras_ssl.text.masking import IGNORE_INDEX, TokenMasker
from keras_ssl.text.model import MaskedLanguageModel
from keras_ssl.text.vocabulary import VocabularyInfo

__all__ = [
    "FillMaskCallback",
    "IGNORE_INDEX",
    "MaskedLanguageModel",
    "TokenMasker", "VocabularyInfo"]
