"""The exception types the CLI turns into one line on stderr and an exit status.

Library code raises :class:`UserError` with a single line that names the file or argument and what is
wrong; the CLI prints that line (no traceback) and exits with status 2. A run that stops early for a
reason that is not a bug raises a :class:`RunStopped` subclass, which carries its own exit status.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input from the user: a wrong path, a malformed file, an unknown option value."""


class RunStopped(RuntimeError):
    """A run stopped before its end (diverged, interrupted): one line, then exit ``exit_code``."""

    exit_code: int = 1


def first_line(err: BaseException) -> str:
    """The first line of an exception's message, or its type's name when the message is empty: the
    detail a one-line :class:`UserError` can carry."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
