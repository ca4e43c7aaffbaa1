"""User-facing errors.

Anything a user can cause (bad option, missing file, unreadable checkpoint, empty outputs
folder) raises :class:`AuxrunError`; the CLI prints its message and exits non-zero without a
traceback. Programming errors keep their tracebacks.
"""

from __future__ import annotations


class AuxrunError(Exception):
    """An error caused by the user's input, with a message naming the problem and the fix."""

    exit_code: int = 2


class StorageError(AuxrunError):
    """The run folder cannot be written (a full disk, a read-only mount): not the user's input,
    but still one message without a traceback; exit code 1."""

    exit_code: int = 1


class FolderInUse(AuxrunError):
    """Another process is running a job in the run folder now (a second launch of the same run
    or sweep): this one leaves the folder as it is, and records nothing there."""
