"""``keras-ssl export``: a trained output folder -> a SavedModel that serves with TensorFlow alone.

``MODEL_DIR`` is the output of ``keras-ssl mlm train`` (any ``save_pretrained`` folder of a masked
LM: fill-mask on raw strings) or of ``keras-ssl vision pretrain`` (its ``encoder.keras``: image
embeddings). See :func:`keras_ssl.export_saved_model` for the signatures.
"""

from __future__ import annotations

import argparse
import json
import os

from keras_ssl.cli.errors import UserError
from keras_ssl.cli.options import positive_int
from keras_ssl.cli.vision import ENCODER_FILE


def add_parser(commands, parent: argparse.ArgumentParser) -> None:
    export = commands.add_parser(
        "export", parents=[parent], formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="export a trained model as a SavedModel that serves with TensorFlow alone",
        description="Export the output folder of `keras-ssl mlm train` (fill-mask on raw text) or of "
        "`keras-ssl vision pretrain` (image embeddings) as a SavedModel. Check it with "
        "`keras-ssl serve-check EXPORT_DIR INPUT...`.")
    export.add_argument("model_dir", metavar="MODEL_DIR",
                        help="an `mlm train` or `vision pretrain` output folder")
    export.add_argument("export_dir", metavar="EXPORT_DIR", help="where to write the SavedModel")
    export.add_argument("--overwrite", action="store_true", help="replace a non-empty EXPORT_DIR")
    export.add_argument("--top-k", type=positive_int, default=5, help="text: predictions per mask token")
    export.add_argument("--max-length", type=positive_int, default=None,
                        help="text: longest tokenized input (default: the model's limit, at most 512)")
    export.add_argument("--image-size", type=positive_int, default=None,
                        help="vision: the size served images are resized to (default: the encoder's input "
                        "size, or for an any-size encoder (SwAV, DINO) the --image-size it was trained at)")
    export.set_defaults(check=check_export, run=run_export)


def model_kind(model_dir: str) -> str:
    """``"vision"`` (has encoder.keras) or ``"text"`` (has config.json); a clear error otherwise."""
    if not os.path.isdir(model_dir):
        raise UserError(f"MODEL_DIR {model_dir!r}: no such folder.")
    if os.path.isfile(os.path.join(model_dir, ENCODER_FILE)):
        return "vision"
    if os.path.isfile(os.path.join(model_dir, "config.json")):
        return "text"
    raise UserError(f"MODEL_DIR {model_dir!r} has neither {ENCODER_FILE} (from `keras-ssl vision pretrain`) "
                    "nor config.json (from `keras-ssl mlm train` or save_pretrained): nothing to export.")


def _trained_image_size(model_dir: str):
    """The ``--image-size`` a ``vision pretrain`` run recorded in its run.json, if any."""
    from keras_ssl.cli.runs import RUN_JSON

    try:
        with open(os.path.join(model_dir, RUN_JSON)) as f:
            run = json.load(f)
    except (OSError, ValueError):
        return None
    return run.get("encoder", {}).get("serving_image_size") or run.get("args", {}).get("image_size")


def check_export(args) -> None:
    model_kind(args.model_dir)
    path = args.export_dir
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)) and not args.overwrite:
        raise UserError(f"EXPORT_DIR {path!r} exists and is not empty. Pass --overwrite to replace it, or "
                        "export to a new version folder (TensorFlow Serving loads numbered versions, e.g. "
                        "export/2).")


def run_export(args) -> int:
    from keras_ssl.export import export_saved_model

    if model_kind(args.model_dir) == "vision":
        from keras_ssl.backend import keras

        model = keras.models.load_model(os.path.join(args.model_dir, ENCODER_FILE), compile=False)
        image_size = args.image_size or _trained_image_size(args.model_dir)
        what = "images uint8 [batch, H, W, C] -> embedding"
    else:
        from keras_ssl.text import MaskedLanguageModel

        model, image_size = MaskedLanguageModel.from_pretrained(args.model_dir), None
        what = "text [batch] -> top-k tokens per mask, embedding"
    export_saved_model(model, args.export_dir, overwrite=args.overwrite, top_k=args.top_k,
                       max_length=args.max_length, image_size=image_size)
    print(f"Exported {args.model_dir} to {args.export_dir} ({what}). Try: keras-ssl serve-check "
          f"{args.export_dir} INPUT...")
    return 0
