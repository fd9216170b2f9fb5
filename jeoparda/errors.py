"""Errors a user can act on: the CLI prints them as one line and exits non-zero, no traceback."""
from __future__ import annotations


class JeopardaError(Exception):
    """An expected failure with a message that names the file and the problem."""

    exit_code = 1


def one_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's text (libraries' messages run over several
    lines; a first line ending in a colon with the next), else its type's name: what a one-line
    error quotes of its cause."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if lines[0].endswith(":") and len(lines) > 1:  # "Error(s) in loading state_dict for X:" says nothing alone
        return f"{lines[0]} {lines[1]}"
    return lines[0]


def os_error_line(exc: OSError, doing: str) -> str:
    """One line for an ``OSError``: the file it names, else ``doing`` (the command, the step);
    HDF5's many-line messages (which name the file inside) are joined."""
    where = f"{exc.filename}: " if exc.filename else f"{doing}: "
    text = " ".join(str(exc.strerror or exc).split()) or type(exc).__name__
    return f"{where}{text}"
