"""``keras-ssl serve-check``: answer inputs with an export, in a process that imports TensorFlow only.

The export is loaded by ``_serve.py`` run as a script in a fresh Python (no keras_ssl, Keras or
transformers), as a server would: text exports get sentences (top-k tokens per mask), image exports
get image files (embedding shape and norm).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from keras_ssl.cli.options import check_local_path

SERVE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_serve.py")


def add_parser(commands, parent: argparse.ArgumentParser) -> None:
    serve = commands.add_parser(
        "serve-check", parents=[parent], help="run an export on inputs with TensorFlow alone",
        description="Load EXPORT_DIR in a fresh process that imports TensorFlow only (as a server would) and "
        "print its answers: for a text export, INPUTs are sentences with the mask token (top-k tokens per "
        "mask); for an image export, INPUTs are image files (embedding shape and norm).")
    serve.add_argument("export_dir", metavar="EXPORT_DIR", help="a SavedModel from `keras-ssl export`")
    serve.add_argument("inputs", nargs="+", metavar="INPUT", help="sentences (text) or image files (vision)")
    serve.set_defaults(check=check_serve, run=run_serve, tensorflow=False)


def check_serve(args) -> None:
    check_local_path("EXPORT_DIR", args.export_dir, "folder")
    if not os.path.isfile(os.path.join(args.export_dir, "saved_model.pb")):
        raise _error(f"EXPORT_DIR {args.export_dir!r} has no saved_model.pb: not a SavedModel (write one "
                     "with `keras-ssl export MODEL_DIR EXPORT_DIR`).")


def _error(message: str):
    from keras_ssl.cli.errors import UserError

    return UserError(message)


def run_serve(args) -> int:
    command = [sys.executable, SERVE_SCRIPT, args.export_dir, *args.inputs]
    if args.verbose:
        command.append("--verbose")
    done = subprocess.run(command)
    if done.returncode == 1:
        return 1  # _serve.py printed its one-line error
    if done.returncode != 0:
        raise _error(f"serving {args.export_dir!r} failed (exit code {done.returncode}).")
    return 0
