"""The one exception type for bad user input.

Library code raises :class:`UserError` with a single line that names the file or argument and what is
wrong; the CLI prints that line (no traceback) and exits with status 2. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input from the user: a wrong path, a malformed file, an unknown option value."""


def first_line(err: BaseException) -> str:
    """The first line of an exception's message, or its type's name when the message is empty: the
    detail a one-line :class:`UserError` can carry."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
