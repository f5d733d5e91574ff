"""Atomic file writing shared by the annotation writers (a failed write never leaves half a file)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


@contextmanager
def atomic_text_writer(path: str | Path) -> Iterator[TextIO]:
    """Open a temporary file next to ``path`` for writing text; rename it onto ``path`` on success.

    The temporary file lives in the target folder so that ``os.replace`` is an atomic rename on the same
    file system; on any error it is deleted and the previous content of ``path`` (if any) is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            yield handle
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
