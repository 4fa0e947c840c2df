"""Masked-language modelling on your own text."""

from keras_ssl.text.masking import IGNORE_INDEX, TokenMasker
from keras_ssl.text.vocabulary import VocabularyInfo

__all__ = ["IGNORE_INDEX", "TokenMasker", "VocabularyInfo"]
