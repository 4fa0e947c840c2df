"""``export_saved_model``: SavedModels that load and serve with stock TensorFlow alone.

Vision models (any keras_ssl vision method, or a plain Keras image encoder) export:

* ``serving_default``: ``images`` uint8 ``[batch, height, width, channels]`` of any height and
  width -> ``embedding`` float32 ``[batch, D]`` and, where the method has one, ``projection``
  float32 ``[batch, P]``. Pixels are scaled to ``[0, 1]`` and resized (bilinear) to the
  encoder's input size inside the graph, as in training.
* ``serve_float``: the same for float32 images already in ``[0, 1]``.

An :class:`~keras_ssl.vision.ImageClassifier` exports the same two image signatures, with outputs
``probabilities`` float32 ``[batch, num_classes]``, ``label`` int64 ``[batch]`` (the argmax) and,
when it has ``class_names``, ``class_name`` string ``[batch]``.

A :class:`~keras_ssl.text.TextClassifier` exports:

* ``serving_default``: ``text`` string ``[batch]`` -> ``probabilities`` float32
  ``[batch, num_labels]`` and ``label`` int64 ``[batch]`` (the most probable class), tokenized
  inside the graph exactly like the Hugging Face fast tokenizer.
* ``from_token_ids``: ``input_ids``, ``attention_mask`` int32 ``[batch, length]`` -> the same.

With ``include_strings=False`` only ``from_token_ids`` is exported (also as ``serving_default``).

A :class:`~keras_ssl.text.MaskedLanguageModel` exports:

* ``serving_default``: ``text`` string ``[batch]`` -> fill-mask results for every mask token
  (``top_k_tokens`` string, ``top_k_ids`` int32, ``top_k_scores`` float32, each
  ``[batch, max_masks, top_k]``; ``mask_positions`` int32 ``[batch, max_masks]``, ``-1`` where a
  row has fewer masks; ``num_masks`` int32 ``[batch]``) and ``embedding`` float32
  ``[batch, hidden]`` (mean of the last hidden states over real tokens). A text without a mask
  token gets ``num_masks == 0`` and only padding in its rows: an empty result, not an error.
* ``tokenize``: ``text`` -> ``input_ids``, ``attention_mask``, ``token_type_ids`` int32
  ``[batch, length]``: the Hugging Face fast tokenizer's ids, computed with core TF ops.
* ``from_token_ids``: ``input_ids``, ``attention_mask`` int32 ``[batch, length]`` -> ``logits``
  float32 ``[batch, length, vocab]`` and ``embedding`` float32 ``[batch, hidden]``.

With ``include_strings=False`` (required for tokenizers core TF cannot reproduce, such as
SentencePiece or byte-level BPE), only ``from_token_ids`` is exported and it is also
``serving_default``.

Tabular models (a :class:`~keras_ssl.tabular.SCARF` or :class:`~keras_ssl.tabular.VIME` model, or a
bare :class:`~keras_ssl.tabular.TabularEncoder`) export:

* ``serving_default``: one input per raw column, named after the column (``input_name``: characters
  other than ASCII letters and digits become ``_``; ``col_`` goes in front of a name that does not
  start with a letter: ``capital-gain`` -> ``capital_gain``, ``4`` -> ``col_4``), ``[batch]`` each:
  float32 for numeric columns (NaN or inf = missing), string for categorical ones (a value never seen in
  training goes to the out-of-vocabulary bucket) -> ``embedding`` float32 ``[batch, D]``. The fitted
  preprocessing (standardisation, missing flags, vocabulary lookups) runs inside the graph.

A :class:`~keras_ssl.tabular.TabularClassifier` exports the same inputs -> ``probabilities``
float32 ``[batch, num_classes]``, ``label`` int64 ``[batch]`` (the argmax) and, when it has
``class_names``, ``class_name`` string ``[batch]``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Dict, Optional, Tuple

from keras_ssl.backend import keras, tf
from keras_ssl.export.wordpiece import CoreWordPiece, ExportError
from keras_ssl.text.model import mean_pool


def export_saved_model(
    model,
    path: str,
    *,
    overwrite: bool = False,
    include_strings: bool = True,
    top_k: int = 5,
    max_length: Optional[int] = None,
    image_size: Optional[int] = None,
) -> str:
    """Write a SavedModel of ``model`` to ``path`` that serves with TensorFlow alone; returns ``path``.

    ``model``: a :class:`~keras_ssl.text.MaskedLanguageModel`, a keras_ssl vision method, or a
    Keras model mapping images ``[batch, H, W, C]`` to features ``[batch, D]``.
    ``overwrite``: replace a non-empty ``path`` (the new export is written aside first, so a failed
    export never destroys the old one). Text only: ``include_strings`` adds the raw-string
    signatures, ``top_k`` is the number of fill-mask candidates per mask, ``max_length`` caps the
    tokenized length (default: the model's position limit, at most 512). Vision only:
    ``image_size`` (``int`` or ``(height, width)``) is the size served images are resized to when the
    encoder takes any size (``input_shape=(None, None, C)``, as multi-crop methods need); default: the
    global crop size of a :class:`~keras_ssl.augment.MultiCrop` augmentation, else required.
    See the module docstring for the signatures.
    """
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)) and not overwrite:
        raise FileExistsError(
            f"{path!r} already exists and is not empty. Pass overwrite=True to replace it, or export to "
            "a new version directory (TensorFlow Serving loads numbered versions, e.g. export/2)."
        )
    module, signatures = _serving_module(model, include_strings, top_k, max_length, image_size)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        try:
            tf.saved_model.save(module, staging, signatures=signatures)
        except AssertionError as err:
            if "untracked" not in str(err) or not isinstance(getattr(module, "keras", None), _Untracked):
                raise
            # A resource only the Keras objects track (e.g. a lookup table inside a layer): track the
            # models themselves and save again (slower: Keras serialises its layers' call functions too).
            module.keras_objects = module.keras.trackable()
            shutil.rmtree(staging, ignore_errors=True)
            os.makedirs(staging)
            tf.saved_model.save(module, staging, signatures=signatures)
        if os.path.exists(path):
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        os.replace(staging, path)
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging, ignore_errors=True)
    return path


def _serving_module(model, include_strings: bool, top_k: int, max_length: Optional[int], image_size=None):
    from keras_ssl.text.model import MaskedLanguageModel
    from keras_ssl.vision.base import VisionSSLModel

    if _is_text_classifier(model):
        return _text_classifier_serving(model, include_strings, max_length)
    tabular = _tabular_module(model)
    if tabular is not None:
        return tabular, tabular.signatures()

    if isinstance(model, MaskedLanguageModel):
        if not model.hf_model.built:
            raise ExportError(
                "The model's weights do not exist yet. Call it on a batch first (model(batch)) or load "
                "it with MaskedLanguageModel.from_pretrained."
            )
        module = _TextServing(model, include_strings, top_k, max_length)
        return module, module.signatures()
    classifier = _classifier_module(model, image_size)
    if classifier is not None:
        return classifier, classifier.signatures()
    if isinstance(model, VisionSSLModel):
        if image_size is None:
            image_size = getattr(model.augment, "global_size", None)  # a MultiCrop's global crops
        module = _VisionServing(model.encoder, getattr(model, "projection", None), image_size)
        return module, module.signatures()
    if isinstance(model, keras.Model):
        if not model.built or not model.inputs:
            raise ExportError(
                f"{model.name} is not built: its input shape is unknown, so the export cannot fix the "
                "image size. Build it first (give the first layer input_shape=..., or call it on a batch)."
            )
        if len(model.inputs[0].shape) != 4 or len(model.outputs[0].shape) != 2:
            raise ExportError(
                f"{model.name} maps {model.inputs[0].shape} to {model.outputs[0].shape}; a plain Keras "
                "model is exported as an image encoder, images [batch, H, W, C] -> features [batch, D]."
            )
        module = _VisionServing(model, None, image_size)
        return module, module.signatures()
    raise ExportError(
        f"Cannot export a {type(model).__name__}: pass a MaskedLanguageModel, a keras_ssl vision method "
        "(SimCLR, MoCo, ...), a built Keras image encoder, or a tabular model (SCARF, VIME, a "
        "TabularEncoder or a TabularClassifier)."
    )


def _as_float32(x) -> tf.Tensor:
    return tf.cast(x, tf.float32)


class _Untracked:
    """Holds Keras objects outside ``tf.Module``'s dependency tracking.

    A tracked Keras model makes ``tf.saved_model.save`` trace and serialise every layer's own call
    functions, which no signature uses. Held here, the model is only called inside the signatures, and
    :func:`_track_variables` tracks just the variables they read (a MiniLM export on 2 CPU cores: 6-9 s
    instead of 22-33 s). A model holding other resources (a lookup table in a layer) is tracked after all.
    """

    def __init__(self, **objects):
        self.__dict__.update(objects)

    def trackable(self) -> list:
        """The held objects ``tf.Module`` can track (Keras layers and models; not plain functions)."""
        return [v for v in self.__dict__.values() if isinstance(v, tf.Module)]


def _track_variables(module: tf.Module, *models) -> None:
    """Track the variables of ``models`` (Keras layers/models, ``None`` skipped) on ``module``, once each."""
    seen, variables = set(), []
    for model in models:
        for v in [] if model is None else model.variables:
            if id(v) not in seen:
                seen.add(id(v))
                variables.append(v)
    module.model_variables = variables


class _VisionServing(tf.Module):
    def __init__(self, encoder: keras.Model, projection=None, image_size=None):
        super().__init__(name="keras_ssl_vision")
        self.keras = _Untracked(encoder=encoder, projection=projection)
        _track_variables(self, encoder, projection)
        height, width, channels = encoder.inputs[0].shape[1:]
        if (height is None or width is None) and image_size is not None:
            height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
        if channels is None:
            raise ExportError(
                f"The encoder's input shape {encoder.inputs[0].shape} must fix the number of channels."
            )
        if height is None or width is None:
            raise ExportError(
                f"The encoder takes images of any size ({encoder.inputs[0].shape}): pass "
                "export_saved_model(..., image_size=N), the size served images are resized to (e.g. "
                "the global crop size it was trained on)."
            )
        self.size = (int(height), int(width))
        self.channels = int(channels)

    def _outputs(self, images: tf.Tensor) -> Dict[str, tf.Tensor]:
        if images.shape[1:3] != self.size:
            images = tf.image.resize(images, self.size, method="bilinear")
        features = self.keras.encoder(images, training=False)
        out = {"embedding": _as_float32(features)}
        if self.keras.projection is not None:
            out["projection"] = _as_float32(self.keras.projection(features, training=False))
        return out

    def signatures(self) -> dict:
        channels = self.channels

        def image_spec(dtype):
            return [tf.TensorSpec([None, None, None, channels], dtype, name="images")]

        @tf.function(autograph=False, input_signature=image_spec(tf.uint8))
        def serve(images):
            return self._outputs(tf.cast(images, tf.float32) / 255.0)

        @tf.function(autograph=False, input_signature=image_spec(tf.float32))
        def serve_float(images):
            return self._outputs(images)

        self.serve, self.serve_float = serve, serve_float
        return {"serving_default": serve, "serve_float": serve_float}


def _classifier_module(model, image_size=None) -> Optional[_VisionServing]:
    from keras_ssl.vision.classifier import ImageClassifier

    return _ClassifierServing(model, image_size) if isinstance(model, ImageClassifier) else None


class _ClassifierServing(_VisionServing):
    """Images -> ``probabilities``, ``label`` (and ``class_name``) of an ``ImageClassifier``."""

    def __init__(self, classifier, image_size=None):
        super().__init__(classifier.encoder, image_size=image_size)
        self.keras.classifier = classifier
        _track_variables(self, classifier)
        self.class_names = None if classifier.class_names is None else tf.constant(classifier.class_names)

    def _outputs(self, images: tf.Tensor) -> Dict[str, tf.Tensor]:
        if images.shape[1:3] != self.size:
            images = tf.image.resize(images, self.size, method="bilinear")
        probabilities = tf.nn.softmax(self.keras.classifier(images, training=False), axis=-1)
        label = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
        out = {"probabilities": probabilities, "label": label}
        if self.class_names is not None:
            out["class_name"] = tf.gather(self.class_names, out["label"])
        return out


def _at(values: tf.Tensor, positions: Optional[tf.Tensor]) -> tf.Tensor:
    """``values [b, l, ...]`` at ``positions [b, m]`` (``-1`` padding reads position 0), or all of it."""
    return values if positions is None else tf.gather(values, tf.maximum(positions, 0), batch_dims=1)


class _TokenIdServing(tf.Module):
    """A text module's signatures: ``from_token_ids`` always, and ``string_signatures()`` (raw
    strings in, through the core-TF tokenizer) when ``include_strings``; subclasses define
    ``_from_ids(input_ids, attention_mask) -> dict`` and ``string_signatures() -> dict``."""

    include_strings: bool

    def signatures(self) -> dict:
        ids_spec = [tf.TensorSpec([None, None], tf.int32, name="input_ids"),
                    tf.TensorSpec([None, None], tf.int32, name="attention_mask")]

        @tf.function(autograph=False, input_signature=ids_spec)
        def from_token_ids(input_ids, attention_mask):
            return self._from_ids(input_ids, attention_mask)

        self.from_token_ids = from_token_ids
        if not self.include_strings:
            return {"serving_default": from_token_ids, "from_token_ids": from_token_ids}
        return {**self.string_signatures(), "from_token_ids": from_token_ids}


class _TextServing(_TokenIdServing):
    def __init__(self, mlm, include_strings: bool, top_k: int, max_length: Optional[int]):
        super().__init__(name="keras_ssl_text")
        self.keras = _Untracked(hf_model=mlm.hf_model, encode=mlm._encoder, split=mlm._split)
        _track_variables(self, mlm.hf_model)
        tokenizer = mlm.tokenizer
        self.vocab_size = int(mlm.hf_model.config.vocab_size)
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1; got {top_k}.")
        self.top_k = min(int(top_k), self.vocab_size)
        limit = min(mlm.max_positions or 512, 512)
        self.max_length = min(int(max_length), limit) if max_length else limit
        self.mask_id = int(tokenizer.mask_token_id)
        self.include_strings = include_strings
        if include_strings:
            self.tokenizer = CoreWordPiece(tokenizer, self.max_length)
            tokens = tokenizer.convert_ids_to_tokens(list(range(self.vocab_size)))
            self.vocabulary = tf.constant(["" if t is None else t for t in tokens])

    # --- model pieces ----------------------------------------------------------------------
    def _hidden_and_logits(self, input_ids, attention_mask, positions=None) -> Tuple[tf.Tensor, tf.Tensor]:
        """Last hidden states ``[b, l, h]`` and float32 logits ``[b, l, vocab]``, or only at
        ``positions [b, m]`` (``-1`` padded) ``[b, m, vocab]``: one forward pass either way."""
        if self.keras.split is None:  # no separable head: the full model, with its hidden states
            out = self.keras.hf_model(input_ids=input_ids, attention_mask=attention_mask, training=False,
                                      output_hidden_states=True)
            hidden, logits = out.hidden_states[-1], _at(out.logits, positions)
        else:  # the head runs only where it is needed
            hidden = self.keras.encode(input_ids, attention_mask, training=False)
            logits = self.keras.split[1](_at(hidden, positions), False)
        return hidden, _as_float32(logits)

    def _from_ids(self, input_ids, attention_mask) -> Dict[str, tf.Tensor]:
        hidden, logits = self._hidden_and_logits(input_ids, attention_mask)
        return {"logits": logits, "embedding": mean_pool(hidden, attention_mask)}

    def _fill_mask(self, text) -> Dict[str, tf.Tensor]:
        enc = self.tokenizer(text)
        ids, mask = enc["input_ids"], enc["attention_mask"]
        is_mask = tf.equal(ids, self.mask_id) & tf.equal(mask, 1)
        length = tf.shape(ids)[1]
        where = tf.ragged.boolean_mask(tf.broadcast_to(tf.range(length)[None, :], tf.shape(ids)), is_mask)
        positions = where.to_tensor(default_value=-1)  # [b, m]
        valid = positions >= 0
        hidden, logits = self._hidden_and_logits(ids, mask, positions)  # logits [b, m, vocab]
        scores, top_ids = tf.math.top_k(tf.nn.softmax(logits, axis=-1), k=self.top_k)
        top_ids = tf.where(valid[..., None], top_ids, -1)
        scores = tf.where(valid[..., None], scores, 0.0)
        tokens = tf.where(valid[..., None], tf.gather(self.vocabulary, tf.maximum(top_ids, 0)), "")
        return {
            "top_k_tokens": tokens,
            "top_k_ids": top_ids,
            "top_k_scores": scores,
            "mask_positions": positions,
            "num_masks": tf.cast(where.row_lengths(), tf.int32),
            "embedding": mean_pool(hidden, mask),
        }

    def string_signatures(self) -> dict:
        @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def fill_mask(text):
            return self._fill_mask(text)

        @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def tokenize(text):
            return self.tokenizer(text)

        self.fill_mask, self.tokenize = fill_mask, tokenize
        return {"serving_default": fill_mask, "tokenize": tokenize}


# --- TextClassifier ---------------------------------------------------------------------------


def _is_text_classifier(model) -> bool:
    from keras_ssl.text.classifier import TextClassifier

    return isinstance(model, TextClassifier)


def _text_classifier_serving(model, include_strings: bool, max_length: Optional[int]):
    module = _TextClassifierServing(model, include_strings, max_length)
    return module, module.signatures()


class _TextClassifierServing(_TokenIdServing):
    """Raw strings (or token ids) -> class probabilities and the predicted label."""

    def __init__(self, classifier, include_strings: bool, max_length: Optional[int]):
        super().__init__(name="keras_ssl_text_classifier")
        self.keras = _Untracked(classifier=classifier)
        _track_variables(self, classifier)
        limit = min(classifier.max_positions or 512, 512)
        self.max_length = min(int(max_length), limit) if max_length else limit
        self.include_strings = include_strings
        if include_strings:
            self.tokenizer = CoreWordPiece(classifier.tokenizer, self.max_length)

    def _outputs(self, input_ids, attention_mask) -> Dict[str, tf.Tensor]:
        logits = self.keras.classifier.call({"input_ids": input_ids, "attention_mask": attention_mask},
                                            training=False)
        probabilities = tf.nn.softmax(_as_float32(logits), axis=-1)
        return {"probabilities": probabilities, "label": tf.argmax(probabilities, -1, output_type=tf.int64)}

    def _from_ids(self, input_ids, attention_mask) -> Dict[str, tf.Tensor]:
        return self._outputs(input_ids, attention_mask)

    def string_signatures(self) -> dict:
        @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def classify(text):
            enc = self.tokenizer(text)
            return self._outputs(enc["input_ids"], enc["attention_mask"])

        self.classify = classify
        return {"serving_default": classify}


# --- tabular ----------------------------------------------------------------------------------


def _tabular_module(model) -> Optional[tf.Module]:
    """The serving module of a tabular model (SCARF/VIME, TabularEncoder, TabularClassifier), else None."""
    from keras_ssl.tabular.classifier import TabularClassifier
    from keras_ssl.tabular.encoders import TabularEncoder
    from keras_ssl.tabular.methods import TabularSSLModel

    if isinstance(model, TabularClassifier):
        return _TabularServing(model.encoder, model)
    if isinstance(model, TabularSSLModel):
        return _TabularServing(model.encoder)
    if isinstance(model, TabularEncoder):
        return _TabularServing(model)
    return None


class _TabularServing(tf.Module):
    """Raw columns, one named input each -> ``embedding`` (or a classifier's outputs)."""

    def __init__(self, encoder, classifier=None):
        super().__init__(name="keras_ssl_tabular")
        self.encoder = encoder  # tracks the body's weights and the preprocessing's lookup tables
        self.classifier = classifier
        class_names = getattr(classifier, "class_names", None)
        self.class_names = None if class_names is None else tf.constant(class_names)
        self.specs = dict(encoder.preprocessing.raw_signature())  # column -> TensorSpec([None], name=...)
        names = [spec.name for spec in self.specs.values()]
        clashes = sorted({n for n in names if names.count(n) > 1})
        if clashes:
            raise ExportError(
                f"Columns {[c for c, s in self.specs.items() if s.name in clashes]} all become the input "
                f"name(s) {clashes} in the signature. Rename the columns (letters, digits, '_', '.', '-') "
                "and fit the preprocessing again."
            )

    def _outputs(self, raw: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        if self.classifier is None:
            return {"embedding": _as_float32(self.encoder(raw, training=False))}
        probabilities = tf.nn.softmax(_as_float32(self.classifier(raw, training=False)), axis=-1)
        out = {"probabilities": probabilities, "label": tf.argmax(probabilities, -1, output_type=tf.int64)}
        if self.class_names is not None:
            out["class_name"] = tf.gather(self.class_names, out["label"])
        return out

    def signatures(self) -> dict:
        columns = list(self.specs)
        specs = [tf.TensorSpec([None], self.specs[c].dtype, name=self.specs[c].name) for c in columns]

        @tf.function(autograph=False, input_signature=specs)
        def serve(*values):
            return self._outputs(dict(zip(columns, values)))

        self.serve = serve
        return {"serving_default": serve}
