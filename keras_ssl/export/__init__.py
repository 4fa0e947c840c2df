"""Exports that serve on their own: SavedModels that need stock TensorFlow only."""

from keras_ssl.export.saved_model import export_saved_model
from keras_ssl.export.wordpiece import CoreWordPiece, ExportError, wordpiece_spec

__all__ = ["CoreWordPiece", "ExportError", "export_saved_model", "wordpiece_spec"]
