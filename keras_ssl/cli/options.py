"""Argument types and the options shared by the training commands (``mlm train``, ``vision pretrain``)."""

from __future__ import annotations

import argparse
import os

from keras_ssl.cli.errors import UserError


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0.0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def add_run_options(parser: argparse.ArgumentParser, batch_size: int, learning_rate: float,
                    weight_decay: float, save_steps: int) -> None:
    """Output folder, resume/overwrite, length of training, optimizer, seed, backups and logs."""
    parser.add_argument("--output", required=True, metavar="DIR",
                        help="output folder: the result, run.json, logs/ (TensorBoard), "
                        "backup/ while training")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--resume", action="store_true",
                      help="continue an interrupted run from OUTPUT/backup (same settings)")
    what.add_argument("--overwrite", action="store_true", help="replace the results in a non-empty OUTPUT")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--steps", type=positive_int, metavar="N", help="train for N optimizer steps")
    length.add_argument("--epochs", type=positive_int, metavar="N",
                        help="train for N passes over the data (default: 3 unless --steps)")
    parser.add_argument("--batch-size", type=positive_int, default=batch_size, help="examples per step")
    parser.add_argument("--learning-rate", type=float, default=learning_rate,
                        help="peak learning rate (AdamW)")
    parser.add_argument("--warmup-steps", type=non_negative_int, default=0, help="linear warmup steps")
    parser.add_argument("--weight-decay", type=float, default=weight_decay,
                        help="AdamW weight decay (not on biases and norms)")
    parser.add_argument("--seed", type=int, default=42,
                        help="seed of weights, masks/augmentations, shuffling")
    parser.add_argument("--save-steps", type=non_negative_int, default=save_steps,
                        help="back up the training state every N steps (0: every epoch) for --resume")
    parser.add_argument("--logging-steps", type=positive_int, default=50,
                        help="write TensorBoard scalars every N steps")


def check_local_path(flag: str, path: str, what: str) -> None:
    """A path given to ``flag`` must exist (``what`` names what it should be)."""
    if not os.path.exists(path):
        raise UserError(f"{flag} {path!r}: no such {what}. Check the path.")
