"""User-facing errors.

Every expected failure derives from :class:`ProbsslError`, whose ``exit_code`` is the
``probssl`` command's exit status and whose ``label`` starts its one-line message. A
:class:`UserError` is raised for anything the *user* got wrong (argument, config, file,
missing dataset): one line, exit status 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


def exception_line(exc: BaseException, limit: int = 200, *, with_type: bool = False,
                   all_lines: bool = False) -> str:
    """An exception's message as one line for a one-line error: its first non-empty line (or
    every line joined, ``all_lines``: a YAML parser's message spans several), at most
    ``limit`` characters; the exception's type name when it has no message, and prefixed with
    it (``ValueError: ...``) when ``with_type``."""
    text = str(exc).strip()
    if all_lines:
        text = " ".join(text.split())
    else:
        text = text.splitlines()[0].strip() if text else ""
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    name = type(exc).__name__
    if not text:
        return name
    return f"{name}: {text}" if with_type else text


class ProbsslError(Exception):
    """An expected failure: the CLI prints ``probssl: <label>: <message>`` as one line and
    exits with ``exit_code``."""

    exit_code = 1
    label = "error"


class UserError(ProbsslError):
    """Bad input from the user: printed as one line, exit status 2."""

    exit_code = 2


class DatasetNotFound(UserError):
    """A dataset is not on disk; the message says how to get it."""


class IntegrityError(UserError):
    """A file on disk or from the network is not what it should be (hash, size, header)."""


class TrainingDiverged(ProbsslError):
    """The loss became NaN/inf. The last good checkpoint is kept; exit status 3. ``epoch`` and
    ``step`` (1-based) say where, when known."""

    exit_code = 3
    label = "training diverged"

    def __init__(self, message: str, epoch: int | None = None, step: int | None = None
                 ) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.step = step


class TrainingInterrupted(ProbsslError):
    """Ctrl-C (SIGINT) or SIGTERM during training: a checkpoint of the exact position was
    written; exit status 130."""

    exit_code = 130
    label = "interrupted"


class CheckpointWriteFailed(ProbsslError):
    """A checkpoint could not be written (full disk, ...); the previous ones are intact.
    Exit status 4."""

    exit_code = 4
