"""``mlp_encoder``: raw table columns -> embeddings ``[batch, D]``, as preprocessing + body.

``TabularEncoder`` is a functional Keras model with one ``keras.Input(shape=())`` per raw column
(float32 or tf.string ``[batch]``), so ``encoder.predict(dataset)`` and ``encoder(dict)`` both work.
It is two stages, kept apart so a pretext task can corrupt the *preprocessed* features in between::

    encoder(raw) == encoder.body(encoder.preprocessing(raw))

``encoder.preprocessing`` is the :class:`~keras_ssl.tabular.TabularPreprocessing` layer and
``encoder.body`` a Keras model from ``{"numeric", "missing", "categorical"}`` to ``[batch, D]``:
one embedding per categorical column (``min(16, ceil(1.6 * vocab ** 0.56))`` wide by default),
concatenated with the numeric values and the missing-value indicators, then ``depth`` Dense+ReLU
layers of ``hidden_units``. SCARF's encoder (Bahri et al. 2022) is 4 layers of 256 ReLU units.
"""

from __future__ import annotations

from typing import Optional, Sequence

from keras_ssl.backend import keras, tf
from keras_ssl.tabular.preprocessing import (
    TabularPreprocessing,
    check_columns,
    default_embedding_dim,
    input_name,
)


@keras.utils.register_keras_serializable(package="keras_ssl")
class CategoricalEmbeddings(keras.layers.Layer):
    """Ids ``int32 [batch, n_categorical]`` -> concatenated per-column embeddings ``[batch, sum(dims)]``."""

    def __init__(self, vocabulary_sizes: Sequence[int], dims: Sequence[int], **kwargs):
        super().__init__(**kwargs)
        if len(vocabulary_sizes) != len(dims):
            raise ValueError("One embedding width per categorical column.")
        self.vocabulary_sizes, self.dims = [int(v) for v in vocabulary_sizes], [int(d) for d in dims]
        self.embeddings = [keras.layers.Embedding(v, d, name=f"embedding_{i}")
                           for i, (v, d) in enumerate(zip(self.vocabulary_sizes, self.dims))]

    def call(self, ids: tf.Tensor) -> tf.Tensor:
        if not self.embeddings:
            return tf.zeros([tf.shape(ids)[0], 0], self.compute_dtype)
        return tf.concat([embed(ids[:, i]) for i, embed in enumerate(self.embeddings)], axis=-1)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([input_shape[0], sum(self.dims)])

    def get_config(self) -> dict:
        return {**super().get_config(), "vocabulary_sizes": self.vocabulary_sizes, "dims": self.dims}


@keras.utils.register_keras_serializable(package="keras_ssl")
class TabularEncoder(keras.Model):
    """Raw columns ``{name: [batch]}`` -> ``[batch, feature_dim]``; see the module docstring.

    Build it with :func:`mlp_encoder` (or from any ``body`` with :meth:`from_body`). Attributes:
    ``preprocessing`` (the layer), ``body`` (preprocessed dict -> features), ``feature_dim``.
    Calling it with missing or unknown columns raises ``ValueError`` naming them.
    """

    def __init__(self, inputs, outputs, name=None, trainable=True, **kwargs):
        super().__init__(inputs=inputs, outputs=outputs, name=name, trainable=trainable, **kwargs)
        found = [layer for layer in self.layers if isinstance(layer, TabularPreprocessing)]
        bodies = [layer for layer in self.layers if isinstance(layer, keras.Model)]
        if len(found) != 1 or len(bodies) != 1:
            raise ValueError("A TabularEncoder is one TabularPreprocessing layer followed by one body model.")
        self.preprocessing, self.body = found[0], bodies[0]

    @classmethod
    def from_body(cls, preprocessing: TabularPreprocessing, body: keras.Model,
                  name: str = "tabular_encoder") -> TabularEncoder:
        """The encoder ``raw -> body(preprocessing(raw))`` with one ``keras.Input(shape=())`` per column."""
        inputs = {c: keras.Input(shape=(), dtype=spec.dtype, name=input_name(c))
                  for c, spec in preprocessing.raw_signature().items()}
        return cls(inputs=inputs, outputs=body(preprocessing(inputs)), name=name)

    @property
    def feature_dim(self) -> int:
        return int(self.outputs[0].shape[-1])

    def __call__(self, inputs, *args, **kwargs):
        if isinstance(inputs, (tuple, list)) and len(inputs) and isinstance(inputs[0], dict):
            inputs = inputs[0]  # (features, label) batches
        check_columns(inputs, self.preprocessing.columns, where=self.name)
        return super().__call__(inputs, *args, **kwargs)


def mlp_encoder(preprocessing: TabularPreprocessing, hidden_units: int = 256, depth: int = 4,
                embedding_dim: Optional[int] = None, dropout: float = 0.0,
                name: str = "tabular_encoder") -> TabularEncoder:
    """MLP encoder ``raw columns -> [batch, hidden_units]`` (``depth`` Dense+ReLU layers).

    ``embedding_dim``: width of every categorical embedding (default per column:
    ``min(16, ceil(1.6 * vocabulary_size ** 0.56))``). ``dropout``: after each hidden layer.
    ``depth=0`` gives the concatenated inputs themselves. Defaults: SCARF's 4 x 256 ReLU.
    """
    if not isinstance(preprocessing, TabularPreprocessing):
        raise TypeError(f"mlp_encoder needs the fitted TabularPreprocessing (from tabular_dataset); got "
                        f"{type(preprocessing).__name__}.")
    if int(hidden_units) < 1 or int(depth) < 0:
        raise ValueError(f"hidden_units must be >= 1 and depth >= 0; got {hidden_units} and {depth}.")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1); got {dropout}.")
    if embedding_dim is not None and int(embedding_dim) < 1:
        raise ValueError(f"embedding_dim must be >= 1; got {embedding_dim}.")
    n, k = len(preprocessing.numeric), len(preprocessing.categorical)
    inputs = {"numeric": keras.Input(shape=(n,), dtype="float32", name="numeric"),
              "missing": keras.Input(shape=(n,), dtype="float32", name="missing"),
              "categorical": keras.Input(shape=(k,), dtype="int32", name="categorical")}
    dims = [int(embedding_dim) if embedding_dim else default_embedding_dim(v)
            for v in preprocessing.vocabulary_sizes]
    parts = [inputs["numeric"], inputs["missing"]] if n else []
    if k:
        parts.append(CategoricalEmbeddings(preprocessing.vocabulary_sizes, dims, name="embeddings")(
            inputs["categorical"]))
    x = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="concatenate")(parts)
    for i in range(int(depth)):
        x = keras.layers.Dense(int(hidden_units), activation="relu", name=f"dense_{i}")(x)
        if dropout:
            x = keras.layers.Dropout(float(dropout), name=f"dropout_{i}")(x)
    body = keras.Model(inputs, x, name="body")
    return TabularEncoder.from_body(preprocessing, body, name=name)
