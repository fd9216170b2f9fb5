"""Errors a user can act on: the CLI prints them as one line and exits non-zero, no traceback."""
from __future__ import annotations


class JeopardaError(Exception):
    """An expected failure with a message that names the file and the problem."""

    exit_code = 1
