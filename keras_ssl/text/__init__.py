"""Masked-language modelling on your own text."""

from keras_ssl.text.callbacks import FillMaskCallback
from keras_ssl.text.classifier import TextClassifier
from keras_ssl.text.data import CorpusDecodeError, iter_documents, text_dataset
from keras_ssl.text.head_warmup import fit_head, head_variables
from keras_ssl.text.labelled import labelled_text_dataset
from keras_ssl.text.masking import IGNORE_INDEX, TokenMasker
from keras_ssl.text.model import MaskedLanguageModel
from keras_ssl.text.pretrained import minilm_path
from keras_ssl.text.tokenizer_training import train_tokenizer
from keras_ssl.text.vocabulary import VocabularyInfo

__all__ = [
    "CorpusDecodeError",
    "FillMaskCallback",
    "IGNORE_INDEX",
    "MaskedLanguageModel",
    "TextClassifier",
    "TokenMasker",
    "VocabularyInfo",
    "fit_head",
    "head_variables",
    "iter_documents",
    "labelled_text_dataset",
    "minilm_path",
    "text_dataset",
    "train_tokenizer",
]
