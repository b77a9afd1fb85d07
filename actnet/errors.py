"""User-facing errors.

An :class:`ActnetError` is bad input the user can fix (a wrong root, a missing split file, a bad flag): the CLI
prints its message as one line, without a traceback, and exits with status 2. A :class:`RunFailed` is work that
started and could not finish as asked (too many videos rejected): one line too, and exit status 1.
"""


class ActnetError(Exception):
    """A problem with the user's input; the message names the file or the flag."""

    exit_code = 2


class RunFailed(ActnetError):
    """Work that started but failed; what it wrote is kept and the message says where."""

    exit_code = 1
