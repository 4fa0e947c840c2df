"""``TextClassifier``: fine-tune a Hugging Face TF encoder for text classification with ``model.fit``.

Poolings (``pooling=``):

* ``"mean"`` (default): the mean of the last hidden states over real tokens -> dropout -> dense.
  The default because it needs no pretrained pooler: sentence encoders such as all-MiniLM-L6-v2 are
  *trained* with mean pooling (their CLS/pooler weights never were). Measured on the reviews task of
  tests/test_text_classifier.py (MiniLM, 6 AdamW steps, held-out subjects), validation loss after
  2 epochs: mean 0.116, cls 0.264, hf (BERT pooler) 0.572; hf was at chance after the first epoch.
* ``"cls"``: the first token's last hidden state -> dropout -> dense.
* ``"hf"``: the architecture's own Hugging Face sequence-classification head, exactly
  (``TFAutoModelForSequenceClassification``; for BERT: pooler = CLS -> dense -> tanh, then dropout
  -> dense). Only this pooling round-trips through transformers with equal logits.

:meth:`TextClassifier.save_pretrained` always writes a directory that
:meth:`TextClassifier.from_pretrained` restores exactly. With ``pooling="hf"`` that directory *is* a
transformers sequence-classification checkpoint (``TFAutoModelForSequenceClassification`` loads it
with equal logits). Transformers has no mean/CLS-without-pooler head, so with ``"mean"``/``"cls"`` it
holds the encoder (``TFAutoModel`` loads it) plus our head in ``keras_ssl_classifier_head.npz``;
transformers' sequence-classification class would attach a fresh head there, and saving says so.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from keras_ssl.backend import keras, tf
from keras_ssl.optimizers import scale_learning_rates
from keras_ssl.text.labelled import tokenize
from keras_ssl.text.model import MaskedLanguageModel, mean_pool
from keras_ssl.training import RatioMetric, SSLModel, replica_sum
from keras_ssl.training.labels import asserted_class_ids
from keras_ssl.training.metrics import MacroF1

logger = logging.getLogger("keras_ssl")
CLASSIFIER_CONFIG = "keras_ssl_classifier.json"
HEAD_WEIGHTS = "keras_ssl_classifier_head.npz"
POOLINGS = ("mean", "cls", "hf")
_LAYER = re.compile(r"layer_\._(\d+)/")


class TextClassifier(SSLModel):
    """A Hugging Face TF encoder + a pooled classification head, trained on ``(features, labels)``.

    Batches: ``({"input_ids", "attention_mask"}: int [batch, length], labels: int [batch])`` (see
    :func:`keras_ssl.text.labelled_text_dataset`); Keras sample weights are honoured. The loss is the
    weighted mean cross-entropy over the *global* batch, ``sum_i w_i ce_i / sum_i w_i`` with
    ``w_i = class_weight[y_i]`` (x the sample weight, if any), so ``class_weight`` up-weights rare classes
    without changing the loss scale when all weights are equal (PyTorch's ``CrossEntropyLoss(weight=)``).
    Metrics: ``loss``, ``accuracy`` and ``macro_f1`` (unweighted, over the epoch and all replicas).
    ``model(features)`` returns logits ``float32 [batch, num_labels]``; :meth:`predict` probabilities.

    ``hf_model``: with ``pooling="hf"`` a ``TF*ForSequenceClassification``; otherwise any HF TF model
    whose body (``hf_model.<base_model_prefix>``) returns hidden states ``[batch, length, hidden]``.
    ``dropout``: before keras_ssl's dense head (``"mean"``/``"cls"``); with ``"hf"`` it sets the
    config's ``classifier_dropout`` when :meth:`from_pretrained` loads the model.
    ``layerwise_lr_decay=d``: encoder layer ``l`` of ``L`` (1-based) trains at ``lr * d**(L - l)``,
    the embeddings at ``lr * d**L``, the head (and pooler) at ``lr`` (applied at :meth:`compile`).
    """

    def __init__(
        self,
        hf_model,
        tokenizer,
        num_labels: int,
        pooling: str = "mean",
        dropout: float = 0.1,
        class_weight: Union[Mapping[int, float], Sequence[float], None] = None,
        layerwise_lr_decay: Optional[float] = None,
        labels: Optional[Sequence[str]] = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}.")
        config = getattr(hf_model, "config", None)
        if config is None or not isinstance(hf_model, keras.layers.Layer):
            raise TypeError(
                "TextClassifier wraps a Hugging Face TF model (with .config), got "
                f"{type(hf_model).__name__}. "
                "Fix: TextClassifier.from_pretrained(name_or_dir_or_masked_lm, num_labels=...)."
            )
        if int(num_labels) < 2:
            raise ValueError(f"num_labels must be at least 2, got {num_labels}.")
        self.num_labels = int(num_labels)
        self.pooling = pooling
        self.dropout_rate = float(dropout)
        self.hf_model = hf_model
        self.tokenizer = tokenizer
        self.labels = list(labels) if labels is not None else None
        if self.labels is not None and len(self.labels) != self.num_labels:
            raise ValueError(f"{len(self.labels)} label names for num_labels={self.num_labels}.")
        self.max_positions = getattr(config, "max_position_embeddings", None)
        self.layerwise_lr_decay = layerwise_lr_decay
        self.class_weight = _class_weights(class_weight, self.num_labels)
        self.body = getattr(hf_model, hf_model.base_model_prefix, hf_model)
        if pooling == "hf":
            head_labels = int(getattr(config, "num_labels", -1))
            if not type(hf_model).__name__.endswith("ForSequenceClassification"):
                raise ValueError(
                    f"pooling='hf' uses the architecture's sequence-classification head, but got a "
                    f"{type(hf_model).__name__}. Fix: TextClassifier.from_pretrained(..., pooling='hf'), or "
                    "pooling='mean'/'cls' for any encoder."
                )
            if head_labels != self.num_labels:
                raise ValueError(f"The model's classification head has {head_labels} labels, not "
                                 f"num_labels={self.num_labels}.")
        else:
            hidden = _check_encoder(self.body)
            init = keras.initializers.TruncatedNormal(stddev=getattr(config, "initializer_range", 0.02))
            self.head_dropout = keras.layers.Dropout(self.dropout_rate)
            self.head = keras.layers.Dense(self.num_labels, kernel_initializer=init, name="classifier")
            self.head(tf.zeros((1, hidden)))  # builds in its name scope: classifier/kernel, classifier/bias
        self._stat_metrics = {m.name: m for m in self.stat_metrics()}
        self.built = True

    # --- construction ----------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        source: Union[str, MaskedLanguageModel],
        num_labels: Optional[int] = None,
        pooling: Optional[str] = None,
        tokenizer=None,
        **kwargs,
    ) -> TextClassifier:
        """A classifier on a :class:`MaskedLanguageModel`'s encoder (copied), a directory or a hub name.

        A directory written by :meth:`save_pretrained` restores pooling, labels and head. A
        transformers sequence-classification checkpoint keeps its head (``pooling="hf"``). Otherwise
        ``num_labels`` is required and the head starts fresh (``pooling`` default ``"mean"``).
        ``kwargs`` go to the constructor (``dropout``, ``class_weight``, ``layerwise_lr_decay``, ``labels``).
        """
        from transformers import AutoConfig, AutoTokenizer

        if isinstance(source, MaskedLanguageModel):
            with tempfile.TemporaryDirectory(prefix="keras_ssl_encoder_") as tmp:
                source.hf_model.save_pretrained(tmp)
                return cls.from_pretrained(tmp, num_labels, pooling, tokenizer or source.tokenizer, **kwargs)
        if not isinstance(source, str):
            raise TypeError(f"from_pretrained takes a MaskedLanguageModel, a directory or a hub name, "
                            f"got {type(source).__name__}.")
        looks_local = os.path.sep in source or source.startswith(".")
        if looks_local and not os.path.isdir(source):
            raise FileNotFoundError(f"No model directory at {source!r}.")
        saved = _read_json(os.path.join(source, CLASSIFIER_CONFIG)) if os.path.isdir(source) else None
        config = AutoConfig.from_pretrained(source)
        has_head = any(a.endswith("ForSequenceClassification") for a in config.architectures or [])
        if saved is not None:
            head_labels, head_pooling = saved["num_labels"], saved["pooling"]
        elif has_head:
            head_labels, head_pooling = int(config.num_labels), "hf"
        else:
            head_labels, head_pooling = None, None
        if head_labels is not None and num_labels is not None and int(num_labels) != head_labels:
            raise ValueError(
                f"{source} has a classification head for {head_labels} labels, but num_labels={num_labels}. "
                f"Fix: num_labels={head_labels} (or omit it), or train a new head from the encoder: save the "
                "encoder alone, or use a MaskedLanguageModel / base checkpoint."
            )
        num_labels = num_labels if num_labels is not None else head_labels
        if num_labels is None:
            raise ValueError(f"{source} has no classification head: pass num_labels=<number of classes>.")
        if saved is not None and pooling is not None and pooling != head_pooling:
            raise ValueError(f"{source} was saved with pooling={head_pooling!r}; pass that or omit pooling.")
        pooling = pooling or head_pooling or "mean"
        if saved is not None:
            kwargs.setdefault("dropout", saved.get("dropout", 0.1))
            kwargs.setdefault("labels", saved.get("labels"))
        tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(source)
        with _quiet_transformers():
            hf_model = _load_hf(source, pooling, int(num_labels), kwargs.get("dropout"))
        model = cls(hf_model, tokenizer, int(num_labels), pooling=pooling, **kwargs)
        if saved is not None and pooling != "hf":
            with np.load(os.path.join(source, HEAD_WEIGHTS)) as head:
                model.head.set_weights([head["kernel"], head["bias"]])
        return model

    # --- the training pieces -----------------------------------------------------------------
    def stat_metrics(self) -> list:
        if not hasattr(self, "num_labels"):  # the base constructor asks before num_labels is set
            return []
        return [RatioMetric("accuracy"), MacroF1(self.num_labels, name="macro_f1")]

    def optimized_variables(self) -> list:
        """All trainable variables except a pooler that ``"mean"``/``"cls"`` pooling never uses."""
        if self.pooling == "hf":
            return self.trainable_variables
        return [v for v in self.trainable_variables if "/pooler/" not in v.name]

    def _features(self, inputs) -> Dict[str, tf.Tensor]:
        if not isinstance(inputs, dict):
            inputs = {"input_ids": inputs}
        if "input_ids" not in inputs:
            raise ValueError(f"TextClassifier expects batches with 'input_ids' (and 'attention_mask'); got "
                             f"keys {sorted(inputs)}. Build them with keras_ssl.text.labelled_text_dataset.")
        if inputs["input_ids"].dtype == tf.string:
            raise ValueError("TextClassifier got raw strings where token ids belong. Fix: "
                             "labelled_text_dataset(texts, labels, tokenizer=model.tokenizer), or "
                             "model.predict(list_of_strings).")
        length = inputs["input_ids"].shape[-1]
        if self.max_positions is not None and length is not None and length > self.max_positions:
            raise ValueError(f"Sequences of length {length} exceed the model's {self.max_positions} "
                             f"positions. Use max_length <= {self.max_positions}.")
        return inputs

    def pretext(self, inputs, training: bool):
        return inputs  # {"features", "labels", "sample_weight"} from _with_labels

    def _with_labels(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if y is None:
            raise ValueError("TextClassifier trains on (features, labels) batches; these have no labels. "
                             "Build them with keras_ssl.text.labelled_text_dataset(texts, labels, ...).")
        if not y.dtype.is_integer:
            raise TypeError(f"labels must be integer class ids, got {y.dtype.name}. Fix: cast them to int, "
                            "or map label names to ids (see labelled_text_dataset).")
        # One dict: the base step unpacks (x, y, w) tuples and would drop the labels.
        return {"features": self._features(x), "labels": y, "sample_weight": sample_weight}

    def train_step(self, data):
        return super().train_step(self._with_labels(data))

    def test_step(self, data):
        return super().test_step(self._with_labels(data))

    def compute_loss_and_stats(self, views, training: bool):
        features, labels, sample_weight = views["features"], views["labels"], views["sample_weight"]
        labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
        if not getattr(self, "_jit_compile", False):
            labels = asserted_class_ids(
                labels, self.num_labels, "A label is negative; class ids are 0..n-1.",
                f"A label is >= num_labels={self.num_labels}; renumber the classes or raise num_labels.")
        logits = self(features, training=training)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
        weight = self._example_weights(labels, sample_weight)
        loss_share = tf.math.divide_no_nan(tf.reduce_sum(weight * ce), replica_sum(tf.reduce_sum(weight)))
        predicted = tf.argmax(logits, -1, output_type=tf.int32)
        correct = tf.reduce_sum(tf.cast(tf.equal(predicted, labels), tf.float32))
        count = tf.cast(tf.size(labels), tf.float32)
        return loss_share, {"accuracy": (correct, count), "macro_f1": (labels, predicted)}

    def _example_weights(self, labels: tf.Tensor, sample_weight) -> tf.Tensor:
        """``float32 [batch]``: ``class_weight[label]`` times the sample weight (1 where none is given)."""
        weight = tf.ones(tf.shape(labels), tf.float32)
        if self.class_weight is not None:
            weight *= tf.gather(tf.constant(self.class_weight, tf.float32), labels)
        if sample_weight is not None:
            weight *= tf.cast(tf.reshape(sample_weight, [-1]), tf.float32)
        return weight

    def call(self, inputs, training: bool = False) -> tf.Tensor:
        """Logits ``float32 [batch, num_labels]`` for ``input_ids`` (and ``attention_mask``)."""
        inputs = self._features(inputs)
        ids, mask = inputs["input_ids"], inputs.get("attention_mask")
        if self.pooling == "hf":
            logits = self.hf_model(input_ids=ids, attention_mask=mask, training=training).logits
            return tf.cast(logits, tf.float32)
        pooled = self._pooled(ids, mask, training)
        return tf.cast(self.head(self.head_dropout(pooled, training=training)), tf.float32)

    def _pooled(self, ids, mask, training: bool) -> tf.Tensor:
        """The head's input ``float32 [batch, hidden]`` (``"mean"``/``"cls"`` pooling)."""
        hidden = self.body(input_ids=ids, attention_mask=mask, training=training)[0]
        if self.pooling == "cls":
            return tf.cast(hidden[:, 0], tf.float32)
        return mean_pool(hidden, mask if mask is not None else tf.ones_like(ids))

    def fit_head(self, data, steps: int = 300, learning_rate: float = 1e-2) -> Dict[str, List[float]]:
        """Fit only the dense head on the frozen encoder's pooled features: the probe of LP-FT.

        With few labels, fine-tuning everything from a random head distorts the pretrained features
        (Kumar et al., 2022, "Fine-Tuning can Distort Pretrained Features"); fitting the head first
        and then ``fit`` (probe, then fine-tune) avoids it. ``data``: labelled batches as ``fit``
        takes them (``labelled_text_dataset``), read once: the encoder runs in inference mode on each
        batch and the pooled features are kept. Then ``steps`` full-batch Adam steps (``learning_rate``)
        on the weighted cross-entropy (``class_weight`` and sample weights, as in ``fit``), no dropout.
        The encoder and the compiled optimizer are untouched. Returns ``{"loss", "accuracy"}`` per
        step. Pooling ``"mean"``/``"cls"`` only (``"hf"``'s head includes the pooler).
        """
        if self.pooling == "hf":
            raise ValueError("fit_head fits keras_ssl's dense head; pooling='hf' uses transformers' head "
                             "(pooler + classifier). Fix: pooling='mean' or 'cls', or fit() directly.")
        if int(steps) < 1 or not learning_rate > 0:
            raise ValueError(f"fit_head needs steps >= 1 and learning_rate > 0; got {steps}, "
                             f"{learning_rate}.")
        if not isinstance(data, tf.data.Dataset):
            raise TypeError(f"fit_head takes a tf.data.Dataset of (features, labels) batches, got "
                            f"{type(data).__name__}. Build one with labelled_text_dataset(texts, labels).")
        pool = tf.function(lambda ids, mask: self._pooled(ids, mask, False), reduce_retracing=True)
        pooled, labels, weights = [], [], []
        for batch in data:
            views = self._with_labels(batch)
            ids = views["features"]["input_ids"]
            pooled.append(pool(ids, views["features"].get("attention_mask", tf.ones_like(ids))))
            y = tf.cast(tf.reshape(views["labels"], [-1]), tf.int32)
            if bool(tf.reduce_any((y < 0) | (y >= self.num_labels))):  # before class_weight gathers by y
                raise ValueError(f"A label is outside 0..{self.num_labels - 1}; renumber the classes or "
                                 "raise num_labels.")
            labels.append(y)
            weights.append(self._example_weights(y, views["sample_weight"]))
        if not pooled:
            raise ValueError("fit_head got an empty dataset: there are no labelled texts to fit on.")
        x, y, w = tf.concat(pooled, 0), tf.concat(labels, 0), tf.concat(weights, 0)
        # Plain variables, assigned to the head at the end: works the same under any strategy.
        kernel, bias = tf.Variable(self.head.kernel.read_value()), tf.Variable(self.head.bias.read_value())
        optimizer = keras.optimizers.Adam(learning_rate)

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                logits = tf.matmul(x, kernel) + bias
                ce = tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)
                loss = tf.reduce_sum(w * ce) / tf.reduce_sum(w)
            optimizer.apply_gradients(zip(tape.gradient(loss, [kernel, bias]), [kernel, bias]))
            correct = tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y)
            return loss, tf.reduce_mean(tf.cast(correct, tf.float32))

        history: Dict[str, List[float]] = {"loss": [], "accuracy": []}
        for _ in range(int(steps)):
            loss, accuracy = step()
            history["loss"].append(float(loss))
            history["accuracy"].append(float(accuracy))
        self.head.kernel.assign(kernel)
        self.head.bias.assign(bias)
        return history

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return tf.nn.softmax(self(x, training=False), axis=-1)

    def compile(self, optimizer="rmsprop", **kwargs):
        """``keras.Model.compile``; only ``optimizer`` is needed. Applies ``layerwise_lr_decay``."""
        optimizer = keras.optimizers.get(optimizer)
        if self.layerwise_lr_decay is not None:
            optimizer = scale_learning_rates(optimizer, self.layerwise_multipliers(self.layerwise_lr_decay))
        super().compile(optimizer=optimizer, **kwargs)

    def layerwise_multipliers(self, decay: float) -> List[Tuple[tf.Variable, float]]:
        """``(variable, decay ** depth)`` for the encoder's variables (see the class docstring)."""
        if not 0.0 < float(decay) <= 1.0:
            raise ValueError(f"layerwise_lr_decay must be in (0, 1], got {decay}.")
        config = self.hf_model.config
        layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layers", None)
        body_keys = {v.ref() for v in self.body.trainable_variables}
        out = []
        for variable in self.optimized_variables():
            if variable.ref() not in body_keys or "/pooler/" in variable.name:
                continue  # the head: full learning rate
            found = _LAYER.search(variable.name)
            if found:
                out.append((variable, float(decay) ** (layers - 1 - int(found.group(1)))))
            elif "embeddings" in variable.name:
                out.append((variable, float(decay) ** layers))
            else:
                raise ValueError(
                    f"layerwise_lr_decay cannot place {variable.name} in a layer (expected 'embeddings' or "
                    "numbered 'layer_._N' variables, as BERT/RoBERTa/DistilBERT/ELECTRA have). Fix: "
                    "layerwise_lr_decay=None for this architecture."
                )
        return out

    # --- using the model -----------------------------------------------------------------------
    def predict(self, x, batch_size: int = 32, max_length: Optional[int] = None, **kwargs) -> np.ndarray:
        """Class probabilities ``float32 [n, num_labels]``.

        ``x``: raw strings (a list, or one string: tokenized here, truncated to ``max_length``, default
        the model's limit up to 512, and run in batches of ``batch_size`` texts of similar length, each
        padded to its own longest; rows come back in the given order; blank strings are classified as
        they tokenize) or anything ``keras.Model.predict`` takes (tokenized batches).
        """
        if isinstance(x, str):
            x = [x]
        if isinstance(x, np.ndarray) and x.dtype.kind in "UO":
            x = x.tolist()
        if not (isinstance(x, (list, tuple)) and (not x or isinstance(x[0], str))):
            return super().predict(x, batch_size=batch_size, **kwargs)
        if not x:
            return np.zeros((0, self.num_labels), np.float32)
        if any(not isinstance(t, str) for t in x):
            raise TypeError("predict got a list mixing strings and other values; pass strings only.")
        limit = int(max_length or min(self.max_positions or 512, 512))
        # Batches of texts of similar length (sorted by token count), each padded to its own longest:
        # far less padding than batches in the given order (2x fewer tokens on review snippets).
        tokens = self.tokenizer(list(x), truncation=True, max_length=limit)["input_ids"]
        order = np.argsort([len(ids) for ids in tokens], kind="stable")
        out = np.zeros((len(x), self.num_labels), np.float32)
        for start in range(0, len(x), batch_size):
            rows = order[start:start + batch_size]
            enc = tokenize(self.tokenizer, [x[i] for i in rows], limit)
            ids, mask = tf.constant(enc["input_ids"]), tf.constant(enc["attention_mask"])
            out[rows] = self._predict_ids(ids, mask).numpy()
        return out

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)] * 2)  # one trace, any length
    def _predict_ids(self, input_ids, attention_mask):
        return tf.nn.softmax(self({"input_ids": input_ids, "attention_mask": attention_mask}), axis=-1)

    def save_pretrained(self, directory: str) -> None:
        """Write a directory :meth:`from_pretrained` restores; with ``pooling="hf"`` also a transformers
        sequence-classification checkpoint (see the module docstring)."""
        os.makedirs(directory, exist_ok=True)
        config = self.hf_model.config
        names = self.labels or [f"LABEL_{i}" for i in range(self.num_labels)]
        config.id2label = {i: str(n) for i, n in enumerate(names)}
        config.label2id = {str(n): i for i, n in enumerate(names)}
        self.hf_model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        if self.pooling != "hf":
            kernel, bias = self.head.get_weights()
            np.savez(os.path.join(directory, HEAD_WEIGHTS), kernel=kernel, bias=bias)
            logger.warning(
                "keras_ssl: pooling=%r has no transformers equivalent: %s holds the encoder and keras_ssl's "
                "head; TextClassifier.from_pretrained restores it exactly, transformers' "
                "TFAutoModelForSequenceClassification would attach a fresh head. Use pooling='hf' for a "
                "transformers-native classifier.", self.pooling, directory)
        else:
            stale = os.path.join(directory, HEAD_WEIGHTS)
            if os.path.exists(stale):
                os.remove(stale)
        with open(os.path.join(directory, CLASSIFIER_CONFIG), "w") as f:
            json.dump(self.get_config(), f, indent=2)

    def get_config(self) -> Dict[str, Any]:
        return {"num_labels": self.num_labels, "pooling": self.pooling, "dropout": self.dropout_rate,
                "labels": self.labels}


def _check_encoder(body) -> int:
    """The hidden size of ``body``'s ``[batch, length, hidden]`` output, or a clear error."""
    probe = tf.constant([[1, 2, 3]], tf.int32)
    try:
        out = body(input_ids=probe, attention_mask=tf.ones_like(probe), training=False)
        hidden = out[0]
    except Exception as error:  # noqa: BLE001 - any failure means: not a text encoder we can pool
        raise ValueError(
            f"{type(body).__name__} does not run as a text encoder (input_ids, attention_mask) -> hidden "
            f"states ({type(error).__name__}: {error}). Fix: pass a Hugging Face TF text model, or use "
            "pooling='hf' with its ForSequenceClassification class."
        ) from error
    if len(hidden.shape) != 3:
        raise ValueError(
            f"{type(body).__name__} returns {tuple(hidden.shape)}, not hidden states [batch, length, hidden] "
            "to pool. Fix: pass the transformer body, or pooling='hf' for its own classification head."
        )
    return int(hidden.shape[-1])


def _class_weights(class_weight, num_labels: int) -> Optional[list]:
    if class_weight is None:
        return None
    if isinstance(class_weight, Mapping):
        unknown = [k for k in class_weight if not 0 <= int(k) < num_labels]
        if unknown:
            raise ValueError(f"class_weight has classes {unknown} outside 0..{num_labels - 1}.")
        weights = [float(class_weight.get(i, 1.0)) for i in range(num_labels)]
    else:
        weights = [float(w) for w in class_weight]
        if len(weights) != num_labels:
            raise ValueError(f"class_weight has {len(weights)} weights for num_labels={num_labels}.")
    if min(weights) < 0 or max(weights) <= 0:
        raise ValueError(f"class_weight must be non-negative with a positive entry, got {weights}.")
    return weights


def _load_hf(source: str, pooling: str, num_labels: int, dropout: Optional[float]):
    from transformers import AutoConfig, TFAutoModel, TFAutoModelForSequenceClassification

    if pooling != "hf":
        return TFAutoModel.from_pretrained(source)
    config = AutoConfig.from_pretrained(source, num_labels=num_labels)
    if dropout is not None and hasattr(config, "classifier_dropout"):
        config.classifier_dropout = dropout
    try:
        return TFAutoModelForSequenceClassification.from_pretrained(source, config=config)
    except ValueError as error:
        raise ValueError(
            f"transformers has no TF sequence-classification head for {config.model_type!r} ({error}). "
            "Fix: pooling='mean' or 'cls' (keras_ssl's head on the encoder)."
        ) from error
    except AttributeError as error:
        if _MISSPELT_DROPOUT not in str(error):
            raise
    # transformers' TF ELECTRA head reads ``config.classifhidden_dropout_probier_dropout`` whenever
    # ``classifier_dropout`` is set: build it without, then give its dropout layers the asked rate. The
    # saved config keeps ``classifier_dropout=None`` so that transformers can load what we save.
    rate = config.classifier_dropout
    config.classifier_dropout = None
    model = TFAutoModelForSequenceClassification.from_pretrained(source, config=config)
    for layer in model.classifier._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = float(rate)
    return model


_MISSPELT_DROPOUT = "classifhidden_dropout_probier_dropout"


def _read_json(path: str) -> Optional[dict]:
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


@contextlib.contextmanager
def _quiet_transformers():
    """Hide transformers' unused/newly-initialised weight notices: the head is fresh by design."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


__all__ = ["CLASSIFIER_CONFIG", "POOLINGS", "TextClassifier"]
