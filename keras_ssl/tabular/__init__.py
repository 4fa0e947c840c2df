"""Tabular self-supervision: tables in, preprocessing inside the model, SCARF and VIME on the shared base.

* :func:`tabular_dataset`: a DataFrame, CSV/Parquet files or NumPy arrays -> batches of raw columns,
  and the :class:`TabularPreprocessing` fitted on the training table (a Keras layer, saved and served
  with the model);
* :func:`mlp_encoder` -> :class:`TabularEncoder` (raw columns -> ``[batch, D]``);
* :class:`SCARF`, :class:`VIME` (pretraining; corruption in the graph by :func:`scarf_corruption`,
  :func:`vime_corruption`), :class:`TabularClassifier` (probing and fine-tuning).
"""

from keras_ssl.tabular.classifier import TabularClassifier
from keras_ssl.tabular.corruption import scarf_corruption, vime_corruption
from keras_ssl.tabular.data import tabular_dataset
from keras_ssl.tabular.encoders import TabularEncoder, mlp_encoder
from keras_ssl.tabular.methods import SCARF, VIME, TabularSSLModel
from keras_ssl.tabular.preprocessing import TabularPreprocessing

__all__ = ["SCARF", "VIME", "TabularClassifier", "TabularEncoder", "TabularPreprocessing", "TabularSSLModel",
           "mlp_encoder", "scarf_corruption", "tabular_dataset", "vime_corruption"]
