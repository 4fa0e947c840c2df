"""Errors the command line reports as one line (``keras-ssl: error: ...``, exit code 1)."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the command's input (paths, output folder, data) with what to do instead."""


def user_errors() -> tuple:
    """Exception types that mean bad input: reported as one line, without a traceback.

    ``ValueError`` covers keras_ssl's checks (empty corpus, ``max_length`` too long, ``ExportError``,
    ``CorpusDecodeError``); ``OSError`` covers missing, existing or unreadable files and models.
    """
    return (UserError, ValueError, OSError)
