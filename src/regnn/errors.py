"""The package's own exception types: messages name the file, the row and what was expected."""

from __future__ import annotations

from pathlib import Path


class RegnnError(Exception):
    """Base class of every error regnn raises on purpose."""


class DataError(RegnnError):
    """A dataset file is missing or malformed.

    ``path`` is the offending file (or folder), ``row`` the 1-based data row when it applies,
    and ``kind`` a short machine-readable category (``missing-file``, ``bad-columns``, ...)
    used by ``regnn data check`` to group problems.
    """

    def __init__(
        self, message: str, path: str | Path | None = None, row: int | None = None,
        kind: str = "invalid",
    ) -> None:
        self.path = None if path is None else Path(path)
        self.row = row
        self.kind = kind
        self.detail = message
        where = ""
        if self.path is not None:
            where = str(self.path)
            if row is not None:
                where += f", row {row}"
            where += ": "
        super().__init__(f"{where}{message}")


class ConfigError(RegnnError, ValueError):
    """A configuration value or command-line option is invalid (also a ``ValueError``, what
    Python code calling the models directly expects for a bad argument)."""


class CheckpointError(DataError):
    """A checkpoint file cannot be used: unreadable, not regnn's, or for another model."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        super().__init__(message, path=path, kind="bad-checkpoint")
