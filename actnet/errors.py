"""User-facing errors.

An :class:`ActnetError` is bad input the user can fix (a wrong root, a missing split file, a bad flag).
The CLI prints its message as one line, without a traceback, and exits with status 2.
"""


class ActnetError(Exception):
    """A problem with the user's input; the message names the file or the flag."""
