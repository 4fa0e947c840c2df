"""The ``keras-ssl`` command line (also ``python -m keras_ssl``).

Commands, in the conventions of Hugging Face's ``run_mlm.py``::

    keras-ssl mlm train --model DIR --data FILES... --output DIR [--steps N | --epochs N] [--resume]
    keras-ssl mlm fill --model DIR "text with [MASK]" ...
    keras-ssl vision pretrain --method simclr|swav|dino|... --images FOLDER --output DIR [--resume]
    keras-ssl export MODEL_DIR EXPORT_DIR
    keras-ssl serve-check EXPORT_DIR INPUT...

Arguments are parsed and checked before TensorFlow is imported, so ``--help`` and most mistakes
answer at once. Logs are quiet unless ``--verbose`` (:func:`keras_ssl.quiet.quiet`). Exit codes:
0 done, 1 bad input (one line ``keras-ssl: error: ...``), 2 bad usage (argparse's message).
"""

from __future__ import annotations

import argparse
import sys
import traceback
import warnings
from typing import Optional, Sequence

from keras_ssl.cli import export, mlm, serve, vision
from keras_ssl.cli.errors import UserError, user_errors

PROG = "keras-ssl"


def verbose_parent() -> argparse.ArgumentParser:
    """``-v/--verbose``, accepted after every subcommand too (without overriding an earlier one)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show TensorFlow's and transformers' logs, and tracebacks of errors")
    return parent


def build_parser() -> argparse.ArgumentParser:
    """The ``keras-ssl`` parser; each leaf command sets ``check`` (no TensorFlow) and ``run``."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Self-supervised learning for TensorFlow/Keras: masked-language modelling "
        "on your text, self-supervised vision pretraining, SavedModel export.")
    parser.add_argument("-v", "--verbose", action="store_true", default=False,
                        help="show TensorFlow's and transformers' logs, and tracebacks of errors")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    parent = verbose_parent()
    mlm.add_parser(commands, parent)
    vision.add_parser(commands, parent)
    export.add_parser(commands, parent)
    serve.add_parser(commands, parent)
    return parser


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("keras_ssl")
    except Exception:  # pragma: no cover - not installed
        return "unknown"


def error_line(err: BaseException) -> str:
    """``err`` as the one line printed after ``keras-ssl: error:``."""
    message = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, OSError) and not isinstance(err, FileNotFoundError) and err.filename \
            and str(err.filename) not in message:
        message = f"{message} ({err.filename})"
    return message


def one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` for the command line: ``keras-ssl: warning: MESSAGE``, without the
    source file and line of Python's format (``--verbose`` keeps Python's)."""
    text = " ".join(str(message).split())
    print(f"{PROG}: warning: {text}", file=file if file is not None else sys.stderr)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``keras-ssl`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    args = build_parser().parse_args(argv)  # usage errors exit with code 2 here
    try:
        with warnings.catch_warnings():
            if not args.verbose:
                warnings.showwarning = one_line_warning
            args.check(args)  # paths and flags, before TensorFlow is imported
            if getattr(args, "tensorflow", True):
                from keras_ssl.quiet import quiet

                quiet(args.verbose)
            return int(args.run(args) or 0)
    except user_errors() as err:
        if args.verbose:
            traceback.print_exc()
        print(f"{PROG}: error: {error_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


__all__ = ["UserError", "build_parser", "main"]
