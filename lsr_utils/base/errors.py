"""The kit's one user-facing error type.

Anything the user can fix (a bad argument, a missing file, a checkpoint that
does not fit) is raised as :class:`LsrError` with a message saying what was
wrong and what to do. The CLI prints that message alone and exits non-zero;
a Python caller gets an ordinary exception.
"""


class LsrError(Exception):
    """A problem the user can fix; ``str(err)`` says what and how."""


class DataMissingError(LsrError):
    """A dataset is not on disk and cannot be downloaded here."""


class Interrupted(LsrError):
    """Ctrl-C during training: progress is saved and the same command resumes. Stops everything around it (a
    reproduction or a sweep does not go on to its next unit)."""
