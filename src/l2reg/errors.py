"""Error types. Every error meant for the user carries a one-line message.

They subclass ``ValueError`` or ``TypeError`` so that Python callers can catch
them the usual way; the CLI turns any :class:`L2RegError` into ``error: ...``
and exit code 2.
"""

from __future__ import annotations


class L2RegError(Exception):
    """Base class of every error with a message meant for the user."""


class ConfigError(L2RegError, ValueError):
    """An option or argument has a bad value."""


class ConfigTypeError(L2RegError, TypeError):
    """An option or argument has the wrong type."""


class DataError(L2RegError, ValueError):
    """A data file or array is missing, malformed or inconsistent."""


class ChecksumError(DataError):
    """A file's SHA-256 does not match the published one."""


class DownloadError(DataError):
    """A download failed on every mirror."""


class Interrupted(L2RegError):
    """Training stopped on Ctrl-C after a complete epoch, whose checkpoint is saved."""

    def __init__(self, message: str, *, epoch: int, checkpoint=None):
        super().__init__(message)
        self.epoch = epoch
        self.checkpoint = checkpoint
