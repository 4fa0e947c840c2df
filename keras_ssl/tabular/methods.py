"""SCARF and VIME: self-supervised pretraining of a tabular encoder, on the shared training base.

Both take a :class:`~keras_ssl.tabular.TabularEncoder` (``encoder.preprocessing``: raw columns ->
the preprocessed dict; ``encoder.body``: that dict -> ``[B, D]``), preprocess each batch inside the
graph, corrupt the preprocessed features with counter-based randomness
(:mod:`keras_ssl.tabular.corruption`) and score the views on the **global** batch. Batches are the raw
dict (name -> ``[B]``) or ``(raw, label)``; labels are ignored. ``model(raw)`` returns the encoder's
embeddings ``[B, D]``.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

from keras_ssl import losses
from keras_ssl.backend import keras, tf
from keras_ssl.tabular.corruption import (
    KEYS,
    check_features,
    global_row_ids,
    scarf_corruption,
    vime_corruption,
)
from keras_ssl.training import RatioMetric, SSLModel, num_replicas, replica_gather


def scarf_info_nce(anchors: tf.Tensor, positives: tf.Tensor, temperature: float = 1.0
                   ) -> Tuple[tf.Tensor, tf.Tensor]:
    """SCARF's InfoNCE (Bahri et al., 2022, eq. 1) over the ``N`` rows of the global batch.

    ``L_i = -log exp(s(z_i, z~_i) / t) / sum_k exp(s(z_i, z~_k) / t)``, ``s`` the cosine similarity
    (both normalised inside): each anchor's positive is its own corrupted view, the corrupted views of
    the other rows are its negatives.

    Args:
        anchors: ``[N, P]`` projections of the clean rows.
        positives: ``[N, P]`` projections of the corrupted rows; row ``i`` is ``anchors[i]``'s positive.
        temperature: softmax temperature ``t`` (paper: 1.0).

    Returns:
        ``(loss, accuracy)`` float32 scalars: the mean over anchors, and the fraction of anchors whose
        most similar corrupted view is their own.
    """
    a = tf.math.l2_normalize(tf.cast(anchors, tf.float32), axis=-1)
    p = tf.math.l2_normalize(tf.cast(positives, tf.float32), axis=-1)
    logits = tf.matmul(a, p, transpose_b=True) / temperature  # [N, N]
    labels = tf.range(tf.shape(a)[0])
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    hits = tf.equal(tf.argmax(logits, axis=-1, output_type=labels.dtype), labels)
    return loss, tf.reduce_mean(tf.cast(hits, tf.float32))


def vime_losses(
    mask_logits: tf.Tensor,
    changed: tf.Tensor,
    numeric_prediction: tf.Tensor,
    numeric: tf.Tensor,
    missing: tf.Tensor,
    categorical_logits: Sequence[tf.Tensor],
    categorical: tf.Tensor,
) -> Dict[str, tf.Tensor]:
    """VIME's self-supervised loss terms (Yoon et al., 2020, eq. 5) on the global batch.

    Args:
        mask_logits: ``[N, M]`` mask-estimator logits; ``changed``: ``[N, M]`` target (1 where changed).
        numeric_prediction, numeric, missing: ``[N, Mn]`` reconstructed and original standardised
            values, and the original missing flags (missing cells are left out of the MSE).
        categorical_logits: ``Mc`` tensors ``[N, V_k]``; ``categorical``: ``int [N, Mc]`` original ids.

    Returns:
        float32 scalars: ``mask_bce`` (mean over cells), ``numeric_mse`` (mean over present numeric
        cells, 0 if none), ``categorical_ce`` (mean over categorical cells), ``reconstruction``
        ``(Mn * numeric_mse + Mc * categorical_ce) / M`` (the mean over feature columns),
        ``mask_accuracy``, ``categorical_accuracy``.
    """
    changed = tf.cast(changed, tf.float32)
    mask_logits = tf.cast(mask_logits, tf.float32)
    bce = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=changed, logits=mask_logits))
    predicted = tf.cast(mask_logits > 0, tf.float32)
    mask_accuracy = tf.reduce_mean(tf.cast(tf.equal(predicted, changed), tf.float32))
    mn, mc = int(numeric.shape[-1]), len(categorical_logits)
    zero = tf.constant(0.0)
    mse = zero
    if mn:
        present = 1.0 - tf.cast(missing, tf.float32)
        squared = tf.square(tf.cast(numeric_prediction, tf.float32) - tf.cast(numeric, tf.float32)) * present
        mse = tf.math.divide_no_nan(tf.reduce_sum(squared), tf.reduce_sum(present))
    ce, accuracy = zero, zero
    if mc:
        categorical = tf.cast(categorical, tf.int32)
        per_column, hits = [], []
        for k, logits in enumerate(categorical_logits):
            logits = tf.cast(logits, tf.float32)
            per_column.append(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=categorical[:, k],
                                                                             logits=logits))
            hits.append(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), categorical[:, k]),
                                tf.float32))
        ce = tf.reduce_mean(tf.stack(per_column, axis=1))
        accuracy = tf.reduce_mean(tf.stack(hits, axis=1))
    return {
        "mask_bce": bce,
        "numeric_mse": mse,
        "categorical_ce": ce,
        "reconstruction": (mn * mse + mc * ce) / (mn + mc),
        "mask_accuracy": mask_accuracy,
        "categorical_accuracy": accuracy,
    }


class TabularSSLModel(SSLModel):
    """Base of the tabular methods: raw columns in, preprocessing and corruption in the graph.

    ``encoder``: a :class:`~keras_ssl.tabular.TabularEncoder` (anything with ``.preprocessing``,
    ``.body`` and ``.feature_dim``), e.g. ``tabular.mlp_encoder(prep)``. ``seed``: the corruption's
    random key. The corruption step counter is a model weight (``corruption_step``), so a run resumed
    from a checkpoint replays the same corruptions. A method implements :meth:`tabular_loss` on the
    global batch.
    """

    min_global_batch = 2

    def __init__(self, encoder: keras.Model, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        missing = [f".{name}" for name in ("preprocessing", "body") if not hasattr(encoder, name)]
        if missing or not isinstance(encoder, keras.Model):
            lacking = f" without {' and '.join(missing)}" if missing else ""
            raise TypeError(
                f"{type(self).__name__} needs a TabularEncoder (a Keras model with .preprocessing and "
                f".body); got a {type(encoder).__name__}{lacking}. Build one with "
                "keras_ssl.tabular.mlp_encoder(preprocessing)."
            )
        self.encoder = encoder
        self.preprocessing = encoder.preprocessing
        self.body = encoder.body
        self.numeric_columns = list(encoder.preprocessing.numeric)
        self.categorical_columns = list(encoder.preprocessing.categorical)
        self.vocabulary_sizes = [int(v) for v in encoder.preprocessing.vocabulary_sizes]
        self.num_features = len(self.numeric_columns) + len(self.categorical_columns)
        if self.num_features < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 feature columns; the preprocessing has "
                f"{self.num_features} ({self.numeric_columns + self.categorical_columns}). Corruption "
                "replaces some columns and keeps the others: pretrain on a table with more columns."
            )
        self.feature_dim = int(getattr(encoder, "feature_dim", 0) or encoder.body.outputs[0].shape[-1])
        self.seed = int(seed)
        self.corruption_step = self.add_weight(
            name="corruption_step", shape=(), dtype=tf.int64, initializer="zeros", trainable=False,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )

    def finish_init(self) -> None:
        """Call at the end of a subclass ``__init__``: creates the health metrics (their names depend on
        the table's columns) and marks the model built (every weight exists; BackupAndRestore needs it)."""
        self._columns_known = True
        self._stat_metrics = {m.name: m for m in self.stat_metrics()}
        self.built = True

    # --- pieces a method supplies -------------------------------------------------------
    def corrupt(self, features: Dict[str, tf.Tensor], step, row_ids, pool
                ) -> Tuple[Dict[str, tf.Tensor], Any]:
        """``(corrupted features, extra target)`` for this replica's rows."""
        raise NotImplementedError

    def tabular_loss(self, features, corrupted, target, training: bool
                     ) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
        """Global-batch loss and health values (global scalars)."""
        raise NotImplementedError

    def stat_metrics(self) -> list:
        if not getattr(self, "_columns_known", False):  # SSLModel.__init__ asks before the columns are known
            return []
        return [RatioMetric(name) for name in self.health_metric_names()]

    def health_metric_names(self) -> Sequence[str]:
        return ()

    # --- shared plumbing -----------------------------------------------------------------
    def _raw(self, inputs):
        if isinstance(inputs, (tuple, list)):
            inputs = inputs[0]
        if not isinstance(inputs, dict):
            raise TypeError(
                f"{type(self).__name__} takes batches of raw columns, a dict name -> [batch] tensor (or "
                f"(dict, label) pairs); got {type(inputs).__name__}. Build the dataset with "
                "keras_ssl.tabular.tabular_dataset or tf.data.Dataset.from_tensor_slices(dict_of_columns)."
            )
        return inputs

    def _check_batch_size(self, features) -> None:
        local = features["numeric"].shape[0]
        if local is not None and local * num_replicas() < self.min_global_batch:
            raise ValueError(
                f"{type(self).__name__} needs at least {self.min_global_batch} rows in a global batch (got "
                f"{local * num_replicas()}): corrupted values come from the other rows of the batch. Use "
                "a larger batch_size, or drop the last partial batch (dataset.batch(n, drop_remainder=True))."
            )

    def preprocess(self, inputs) -> Dict[str, tf.Tensor]:
        """Raw batch (or an already preprocessed one) -> the checked preprocessed dict (float32
        numerics, int32 categoricals)."""
        inputs = self._raw(inputs)
        if set(inputs) != set(KEYS):
            inputs = self.preprocessing(inputs)
        features = check_features(dict(inputs))
        self._check_batch_size(features)
        return features

    # --- jit_compile: XLA takes no strings, so the data pipeline preprocesses ------------------
    def _preprocessed_data(self, data):
        """With ``jit_compile``, map a ``tf.data.Dataset`` of raw batches through the preprocessing
        (string lookups have no XLA kernel); the compiled step then starts at the preprocessed dict."""
        if data is None or not getattr(self, "_jit_compile", False):
            return data
        if not isinstance(data, tf.data.Dataset):
            raise ValueError(
                f"{type(self).__name__} with jit_compile=True trains on a tf.data.Dataset of raw batches "
                f"(got {type(data).__name__}): its string columns are looked up in the data pipeline, "
                "outside XLA. Wrap the columns with tf.data.Dataset.from_tensor_slices(...).batch(n)."
            )

        def preprocess(*batch):
            first = batch[0]
            if isinstance(first, dict) and set(first) != set(KEYS):
                first = dict(self.preprocessing(first))
            return (first, *batch[1:]) if len(batch) > 1 else first

        return data.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def fit(self, x=None, *args, validation_data=None, **kwargs):
        return super().fit(self._preprocessed_data(x), *args,
                           validation_data=self._preprocessed_data(validation_data), **kwargs)

    def evaluate(self, x=None, *args, **kwargs):
        return super().evaluate(self._preprocessed_data(x), *args, **kwargs)

    def pretext(self, inputs, training: bool):
        features = self.preprocess(inputs)
        if training:  # a fresh step per training batch; evaluation uses a fixed key
            step = tf.identity(self.corruption_step)
            with tf.control_dependencies([step]):
                increment = self.corruption_step.assign_add(1)
            with tf.control_dependencies([increment]):
                step = tf.identity(step)
        else:
            step = tf.constant(-1, tf.int64)
        pool = {k: tf.stop_gradient(self.gather(v)) for k, v in features.items()}
        row_ids = global_row_ids(tf.shape(features["numeric"])[0])
        corrupted, target = self.corrupt(features, step, row_ids, pool)
        return features, corrupted, target

    def gather(self, x: tf.Tensor) -> tf.Tensor:
        """``x`` from all replicas, concatenated along the batch axis (gradients flow back); keeps the
        static trailing shape, which ``all_gather`` may lose."""
        return tf.ensure_shape(replica_gather(x, axis=0), [None, *x.shape[1:]])

    def compute_loss_and_stats(self, views, training: bool):
        features, corrupted, target = views
        loss, health = self.tabular_loss(features, corrupted, target, training)
        share = 1.0 / num_replicas()
        stats = {name: (tf.cast(value, tf.float32) * share, share) for name, value in health.items()}
        return tf.cast(loss, tf.float32) * share, stats

    def call(self, inputs, training: bool = False) -> tf.Tensor:
        """Encoder embeddings ``[B, D]`` of a raw batch."""
        return self.encoder(self._raw(inputs), training=training)

    def get_config(self) -> dict:
        return {}


def _mlp(units: Sequence[int], name: str, final_activation: Optional[str] = None) -> keras.Sequential:
    layers = [keras.layers.Dense(u, activation="relu") for u in units[:-1]]
    layers.append(keras.layers.Dense(units[-1], activation=final_activation))
    return keras.Sequential(layers, name=name)


class SCARF(TabularSSLModel):
    """SCARF (Bahri et al., ICLR 2022): contrastive learning with random feature corruption.

    Each row's anchor is the clean row, its positive the row with ``floor(corruption_rate * M)`` of its
    features replaced by the same features of other random rows of the global batch
    (:func:`~keras_ssl.tabular.scarf_corruption`); InfoNCE (:func:`scarf_info_nce`) with the other rows'
    corrupted views as negatives, on the projections of both views.

    Paper defaults: ``corruption_rate=0.6``, ``temperature=1.0``, encoder a 4-layer ReLU MLP of 256
    units (``tabular.mlp_encoder(prep, hidden_units=256, depth=4)``) and a pretraining head (the
    default ``projection``) a 2-layer ReLU MLP of 256 units (``projection_units``); Adam 1e-3, batch
    128. ``projection``: a Keras model ``[B, D] -> [B, P]`` to use instead. Metrics: ``loss``,
    ``contrastive_accuracy`` (fraction of anchors whose nearest corrupted view is their own),
    ``embedding_std``.
    """

    def __init__(self, encoder: keras.Model, corruption_rate: float = 0.6, temperature: float = 1.0,
                 projection: Optional[keras.Model] = None, seed: int = 0, projection_units: int = 256,
                 **kwargs):
        super().__init__(encoder, seed=seed, **kwargs)
        rate = float(corruption_rate)
        if not 0.0 < rate <= 1.0:
            raise ValueError(f"corruption_rate must be in (0, 1], got {corruption_rate}.")
        if int(rate * self.num_features) < 1:
            raise ValueError(
                f"corruption_rate={corruption_rate} corrupts floor({rate} * {self.num_features}) = 0 of the "
                f"{self.num_features} feature columns, so both views would be the same row. Use "
                f"corruption_rate >= {1.0 / self.num_features:.3g}."
            )
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}.")
        self.corruption_rate = rate
        self.temperature = float(temperature)
        self.projection = projection or _mlp([projection_units, projection_units], "scarf_projection")
        self.projection.build((None, self.feature_dim))
        self.finish_init()

    def health_metric_names(self):
        return ("contrastive_accuracy", "embedding_std")

    def corrupt(self, features, step, row_ids, pool):
        corrupted, _ = scarf_corruption(features, self.corruption_rate, self.seed, step, row_ids, pool)
        return corrupted, ()

    def tabular_loss(self, features, corrupted, target, training):
        embedding = self.body(features, training=training)
        anchors = self.gather(self.projection(embedding, training=training))
        positives = self.gather(self.projection(self.body(corrupted, training=training), training=training))
        loss, accuracy = scarf_info_nce(anchors, positives, self.temperature)
        return loss, {
            "contrastive_accuracy": accuracy,
            "embedding_std": losses.embedding_std(self.gather(tf.stop_gradient(embedding))),
        }


class VIME(TabularSSLModel):
    """VIME's self-supervised stage (Yoon et al., NeurIPS 2020): mask and value estimation.

    Each cell is masked with probability ``p_m`` and takes the value of an independently shuffled
    copy of its column (:func:`~keras_ssl.tabular.vime_corruption`). From the encoder's output of the
    corrupted row, a mask estimator predicts which values changed (BCE against ``1[x != x~]``) and a
    feature estimator reconstructs the original row (MSE on standardised numerics, cross-entropy over
    each categorical column's vocabulary): ``loss = mask_bce + alpha * reconstruction``
    (:func:`vime_losses`). Both heads are linear layers on the encoder output, as in the paper.

    Paper defaults: ``p_m=0.3``, ``alpha=2.0`` (the paper's grid is 0.1-5), a one-layer encoder in the
    paper's code; here any :func:`~keras_ssl.tabular.mlp_encoder`. Metrics: ``loss``, ``mask_accuracy``
    (threshold 0.5 on the changed-target), ``numeric_mse`` and ``categorical_accuracy`` (where the table
    has such columns).
    """

    def __init__(self, encoder: keras.Model, p_m: float = 0.3, alpha: float = 2.0, seed: int = 0, **kwargs):
        super().__init__(encoder, seed=seed, **kwargs)
        if not 0.0 < float(p_m) < 1.0:
            raise ValueError(f"p_m must be in (0, 1), got {p_m}.")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}.")
        self.p_m, self.alpha = float(p_m), float(alpha)
        dim = (None, self.feature_dim)
        self.mask_head = keras.layers.Dense(self.num_features, name="mask_estimator")
        self.mask_head.build(dim)
        self.numeric_head = None
        if self.numeric_columns:
            self.numeric_head = keras.layers.Dense(len(self.numeric_columns), name="numeric_estimator")
            self.numeric_head.build(dim)
        self.categorical_heads = []
        for k, size in enumerate(self.vocabulary_sizes):
            head = keras.layers.Dense(size, name=f"categorical_estimator_{k}")
            head.build(dim)
            self.categorical_heads.append(head)
        self.finish_init()

    def health_metric_names(self):
        names = ["mask_accuracy"]
        if self.numeric_columns:
            names.append("numeric_mse")
        if self.categorical_columns:
            names.append("categorical_accuracy")
        return tuple(names)

    def corrupt(self, features, step, row_ids, pool):
        corrupted, _, changed = vime_corruption(features, self.p_m, self.seed, step, row_ids, pool)
        return corrupted, changed

    def tabular_loss(self, features, corrupted, changed, training):
        hidden = self.body(corrupted, training=training)
        mn = len(self.numeric_columns)
        numeric_prediction = (self.numeric_head(hidden) if self.numeric_head is not None
                              else tf.zeros_like(features["numeric"]))
        terms = vime_losses(
            self.gather(self.mask_head(hidden)),
            self.gather(changed),
            self.gather(numeric_prediction),
            self.gather(features["numeric"][:, :mn]),
            self.gather(features["missing"]),
            [self.gather(head(hidden)) for head in self.categorical_heads],
            self.gather(features["categorical"]),
        )
        loss = terms["mask_bce"] + self.alpha * terms["reconstruction"]
        return loss, {name: terms[name] for name in self.health_metric_names()}


__all__ = ["SCARF", "TabularSSLModel", "VIME", "scarf_info_nce", "vime_losses"]
