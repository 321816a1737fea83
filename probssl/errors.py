"""User-facing errors.

A :class:`UserError` is raised for anything the *user* got wrong (argument, config, file,
missing dataset). The CLI prints its message as one line and exits with status 2. Anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""

    exit_code = 2


class DatasetNotFound(UserError):
    """A dataset is not on disk; the message says how to get it."""


class IntegrityError(UserError):
    """A file on disk or from the network is not what it should be (hash, size, header)."""


class TrainingDiverged(Exception):
    """The loss became NaN/inf. The last good checkpoint is kept; exit status 3."""

    exit_code = 3


class TrainingInterrupted(Exception):
    """Ctrl-C (SIGINT) or SIGTERM during training: a checkpoint of the exact position was
    written; exit status 130."""

    exit_code = 130


class CheckpointWriteFailed(Exception):
    """A checkpoint could not be written (full disk, ...); the previous ones are intact.
    Exit status 4."""

    exit_code = 4
