"""``keras-ssl mlm train`` and ``keras-ssl mlm fill``: masked-language modelling from the command line.

``train`` fine-tunes (or continues pretraining) a Hugging Face TF masked LM on text files, like
transformers' ``run_mlm.py``: :meth:`MaskedLanguageModel.from_pretrained`, :func:`text_dataset`,
:func:`keras_ssl.optimizers.adamw`, dynamic masking in the graph; the model is saved with
``save_pretrained`` and loads back in transformers.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from keras_ssl.cli import runs
from keras_ssl.cli.errors import UserError
from keras_ssl.cli.options import add_run_options, check_local_path, fraction, non_negative_int, positive_int

_FORMAT = argparse.ArgumentDefaultsHelpFormatter


def add_parser(commands, parent: argparse.ArgumentParser) -> None:
    group = commands.add_parser("mlm", parents=[parent], help="masked-language modelling: train, fill",
                                description="Masked-language modelling on your own text.")
    sub = group.add_subparsers(dest="group", metavar="COMMAND", required=True)

    train = sub.add_parser(
        "train", parents=[parent], formatter_class=_FORMAT, help="fine-tune a masked LM on text files",
        description="Fine-tune (or continue pretraining) a Hugging Face TF masked LM on text files and "
        "folders, with dynamic masking; saves it with save_pretrained to --output. "
        "Example: keras-ssl mlm train --model bert-base-uncased --data notes/ --output out/ --epochs 3")
    train.add_argument("--model", required=True, metavar="DIR_OR_NAME",
                       help="model folder or Hugging Face hub name (anything TFAutoModelForMaskedLM loads)")
    train.add_argument("--data", required=True, nargs="+", metavar="PATH",
                       help="text files and/or folders (read recursively), UTF-8, one document per line")
    add_run_options(train, batch_size=32, learning_rate=5e-5, weight_decay=0.01, save_steps=500)
    train.add_argument("--max-length", type=positive_int, default=128, help="tokens per example")
    train.add_argument("--mode", choices=("pack", "line"), default="pack",
                       help="pack: concatenate documents into full blocks (run_mlm's group_texts); "
                       "line: one padded example per line")
    train.add_argument("--masking", choices=("token", "whole_word", "span"), default="token",
                       help="what is masked: tokens (BERT), whole words, or spans (SpanBERT)")
    train.add_argument("--mask-rate", type=float, default=0.15,
                       help="fraction of tokens selected for masking")
    train.add_argument("--validation-split", type=fraction, default=0.05,
                       help="fraction of the examples held out for validation (0: none)")
    train.add_argument("--head-steps", type=non_negative_int, default=200,
                       help="a model without MLM-head weights first fits its fresh head on frozen encoder "
                       "features for this many steps (0: skip)")
    train.set_defaults(check=check_train, run=run_train)

    fill = sub.add_parser(
        "fill", parents=[parent], formatter_class=_FORMAT, help="predict the masked tokens of sentences",
        description='Print the top predictions for each mask token, e.g. keras-ssl mlm fill --model out/ '
        '"The capital of France is [MASK]."')
    fill.add_argument("--model", required=True, metavar="DIR_OR_NAME", help="model folder or hub name")
    fill.add_argument("texts", nargs="+", metavar="TEXT", help="sentences with the mask token, e.g. [MASK]")
    fill.add_argument("--top-k", type=positive_int, default=5, help="predictions per mask")
    fill.set_defaults(check=check_fill, run=run_fill)


def _check_model(model: str) -> None:
    """A local model folder must exist and hold config.json; hub names are left to transformers."""
    if model.startswith((".", os.sep, "~")) or os.path.exists(model):
        check_local_path("--model", model, "model folder")
        if not os.path.isfile(os.path.join(model, "config.json")):
            raise UserError(f"--model {model!r} has no config.json: not a Hugging Face model folder (save "
                            "one with save_pretrained, or use the output folder of `keras-ssl mlm train`).")


def check_train(args) -> None:
    _check_model(args.model)
    for path in args.data:
        check_local_path("--data", path, "file or folder")
    if not 0.0 < args.mask_rate < 1.0:
        raise UserError(f"--mask-rate must be in (0, 1), got {args.mask_rate}; BERT uses 0.15.")
    runs.check_output(args, "model")


def check_fill(args) -> None:
    _check_model(args.model)


def count_batches(dataset) -> int:
    """Batches in one pass over a finite ``tf.data.Dataset`` (reads it once)."""
    import numpy as np

    return int(dataset.reduce(np.int64(0), lambda n, _: n + 1).numpy())


def run_train(args) -> int:
    started = time.time()
    import keras_ssl
    from keras_ssl.backend import keras
    from keras_ssl.text import MaskedLanguageModel, TokenMasker, text_dataset

    runs.start_run(args)
    keras.utils.set_random_seed(args.seed)
    mlm = MaskedLanguageModel.from_pretrained(args.model, seed=args.seed)
    mlm.masker = TokenMasker(mlm.tokenizer, mask_rate=args.mask_rate, strategy=args.masking, seed=args.seed)
    data = text_dataset(args.data, tokenizer=mlm.tokenizer, max_length=args.max_length,
                        batch_size=args.batch_size, validation_split=args.validation_split,
                        mode=args.mode, seed=args.seed, max_positions=mlm.max_positions)
    train, val = data if args.validation_split > 0 else (data, None)
    if val is not None and count_batches(val) == 0:
        print("Note: the validation split is empty (too little text); training without validation.")
        val = None
    if args.steps:
        steps_per_epoch, epochs = args.steps, 1
    else:
        steps_per_epoch, epochs = count_batches(train), args.epochs or 3
    total = steps_per_epoch * epochs
    mlm.compile(optimizer=keras_ssl.optimizers.adamw(
        learning_rate=args.learning_rate, warmup_steps=args.warmup_steps, total_steps=total,
        weight_decay=args.weight_decay))

    head = None
    if (not args.resume and args.head_steps and getattr(mlm, "head_is_fresh", False)
            and hasattr(mlm, "fit_head")):
        print(f"Fitting the fresh MLM head on frozen encoder features: {args.head_steps} steps "
              "(--head-steps).")
        history = mlm.fit_head(train.repeat(), steps=args.head_steps)
        head = {"steps": args.head_steps, **{k: float(v[-1]) for k, v in history.items() if v}}

    callbacks = runs.training_callbacks(args, args.output)
    history = mlm.fit(train.repeat(), steps_per_epoch=steps_per_epoch, epochs=epochs, validation_data=val,
                      callbacks=callbacks, verbose=1 if sys.stdout.isatty() else 2)
    mlm.save_pretrained(args.output)
    metrics = runs.history_metrics(history)
    runs.finish_run(args, {
        "global_step": int(mlm.optimizer.iterations.numpy()), "total_steps": total,
        "resumed_from_step": runs.start_step(callbacks) if args.resume else None,
        "head_warmup": head, **metrics}, started)
    shown = metrics["validation"] or metrics["train"]
    summary = ", ".join(f"{k} {v:.4g}" for k, v in shown.items())
    print(f"Done: {total} steps; {'validation' if metrics['validation'] else 'train'}: {summary}.")
    print(f"Saved to {args.output} (MaskedLanguageModel.from_pretrained or transformers' "
          f"TFAutoModelForMaskedLM load it); run.json; TensorBoard: tensorboard --logdir "
          f"{os.path.join(args.output, runs.LOGS)}")
    return 0


def run_fill(args) -> int:
    from keras_ssl.text import MaskedLanguageModel

    mlm = MaskedLanguageModel.from_pretrained(args.model)
    mask = mlm.tokenizer.mask_token
    for text in args.texts:
        if mask not in text:
            raise UserError(f"{text!r} has no {mask} token: write {mask} where a word should be predicted.")
    for text, result in zip(args.texts, mlm.fill_mask(list(args.texts), top_k=args.top_k)):
        print(text)
        per_mask = [result] if result and isinstance(result[0], dict) else result
        for i, options in enumerate(per_mask, 1):
            best = ", ".join(f"{o['token_str']} ({o['score']:.3f})" for o in options)
            print(f"  {mask} {i}: {best}")
    return 0
