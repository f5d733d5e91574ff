"""Error types that reach users.

Every error a user can cause is a ``LungcadError`` subclass whose message says what is wrong, where (the
file, the key, the line) and how to fix it.  The CLI turns them into one line on stderr and exit code 2;
the service turns them into a 4xx JSON body.  Anything else is a bug.
"""

from __future__ import annotations

from pathlib import Path


class LungcadError(Exception):
    """Base class of every user-facing error."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | Path | None = None, fix: str | None = None) -> None:
        self.path = str(path) if path is not None else None
        self.fix = fix
        parts = [message]
        if self.path:
            parts.append(f"[{self.path}]")
        if fix:
            parts.append(f"Fix: {fix}")
        super().__init__(" ".join(parts))


class InputError(LungcadError):
    """Input data that cannot be used as given (bad image, bad geometry, bad file)."""


class ConfigError(LungcadError):
    """A configuration value that is missing or out of range."""


class AnnotationError(LungcadError):
    """An annotation file (LUNA16 CSV, LIDC XML) that cannot be parsed."""


class QAFailure(LungcadError):
    """The scan failed a quality-assurance check that makes results unsafe."""
