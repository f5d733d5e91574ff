"""Atomic file writes with normal permissions, and the check of an output folder.

Every file lungcad writes as a result (JSON, CSV, XML, PNG, images, model files) goes through
:func:`atomic_write` or :func:`atomic_open`: the content is written to a temporary file in the target's own
folder, flushed and fsync'ed, then renamed onto the target with ``os.replace``.  A reader (or a crash) sees
the old file or the new one, never half of one, and a failed write leaves no temporary file behind.

Permissions: the temporary file is created with mode ``0o666`` and the process umask applied, exactly as
``open(path, "w")`` would create it.  ``tempfile.mkstemp`` instead creates ``0o600`` whatever the umask,
so outputs renamed from it came out unreadable to the rest of a team (umask 022: ``0o644`` expected, ``0o600``
written).

Example::

    atomic_write_json(out / "summary.json", summary)               # text / bytes / JSON
    atomic_write(out / "froc.png", lambda tmp: fig.savefig(tmp))   # a library that writes to a path
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from lungcad.errors import InputError

TEMP_MARK = ".tmp"  # every temporary name holds it: ``.summary.json.1f2e3d4c.tmp.json``


def temp_path_for(path: str | Path) -> Path:
    """A fresh, hidden name next to ``path`` that keeps its extension (libraries pick the format by it).

    ``out/froc.png`` -> ``out/.froc.png.<8 hex>.tmp.png``;
    ``scan.nii.gz`` -> ``.scan.nii.gz.<8 hex>.tmp.nii.gz``.
    """
    target = Path(path)
    suffixes = target.suffixes[-2:] if target.suffix == ".gz" else target.suffixes[-1:]
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}{TEMP_MARK}{''.join(suffixes)}")


def temp_dir_for(path: str | Path) -> Path:
    """Create a fresh, hidden folder next to ``path`` (``.<name>.<8 hex>.tmp``) and return it.

    For content that is a set of files (a cache entry, a MetaImage header and its ``.raw``): build it in
    there under the final names, then rename.  The folder gets ``0o777`` less the umask, as ``mkdir``
    gives; ``tempfile.mkdtemp`` gives ``0o700``.  The caller removes it (``shutil.rmtree``) when done.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    folder = target.with_name(f".{target.name}.{secrets.token_hex(4)}{TEMP_MARK}")
    os.mkdir(folder, 0o777)
    return folder


def fsync_path(path: Path) -> None:
    """Flush a file's (or a folder's) data to disk, so that a rename after it is durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # e.g. a directory on a file system that cannot sync one: the rename is still atomic
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Let ``write(tmp)`` create the content at a temporary path, then rename it onto ``path``.

    For libraries that write to a path themselves (``fig.savefig``, ``sitk.WriteImage``, ``torch.save``,
    ``np.save``).  The parent folder is created if missing.

    Args:
        path: the final file.
        write: called with the temporary path (same folder, same extension); it must create that file.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        Whatever ``write`` raises; the temporary file is then removed and ``path`` keeps its old content.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(target)
    try:
        write(tmp)
        fsync_path(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(target.parent)
    return target


@contextmanager
def atomic_open(
    path: str | Path, mode: str = "w", *, encoding: str = "utf-8", newline: str | None = ""
) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path`` for writing; on a clean exit it replaces ``path``.

    Args:
        path: the final file (its folder is created if missing).
        mode: ``"w"`` (text) or ``"wb"`` (bytes).
        encoding: text encoding (text mode only).
        newline: as for ``open``; ``""`` (default) writes ``"\\n"`` untranslated on every platform.

    An exception inside the ``with`` block removes the temporary file and leaves ``path`` as it was.
    """
    if mode not in {"w", "wb"}:
        raise ValueError(f"atomic_open writes a new file: mode must be 'w' or 'wb', got {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(target)
    # 0o666 with the umask applied by the kernel: the permissions ``open(path, "w")`` would give.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        text = {"encoding": encoding, "newline": newline} if mode == "w" else {}
        with os.fdopen(fd, mode, **text) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(target.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically, ``"\\n"`` kept as is."""
    with atomic_open(path, "w", encoding=encoding) as handle:
        handle.write(text)
    return Path(path)


def atomic_write_json(path: str | Path, obj: Any, *, indent: int | None = 2, **dumps: Any) -> Path:
    """Write ``json.dumps(obj, indent=indent, **dumps)`` plus a final newline to ``path`` atomically.

    The document is serialised before anything is opened, so an unserialisable object leaves no trace.
    """
    return atomic_write_text(path, json.dumps(obj, indent=indent, **dumps) + "\n")


def _probe_write(folder: Path) -> OSError | None:
    """Create and remove a hidden file in ``folder``; the error when that is refused.

    A real write, because ``os.access`` ignores read-only mounts and ACLs, and root passes it everywhere.
    """
    probe = temp_path_for(folder / "write-check")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        return exc
    os.close(fd)
    probe.unlink(missing_ok=True)
    return None


def check_output_dir(path: str | Path, *, option: str = "--out") -> Path:
    """Check, creating nothing, that ``path`` is a writable folder or can be created as one.

    Commands call it before any work, so that a bad ``--out`` fails at once and a bad input (checked
    next) leaves no empty folder behind; the writers create the folder when they write.

    Args:
        path: the folder a command will write into.
        option: the command-line option that named it, for the message.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        InputError: ``path`` is an existing file, lies under a file, or it (or, when it does not exist
            yet, the folder it would be created in) cannot be written to; the message names the path and
            what to pass instead.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise InputError(
            f"{option} must be a folder, but this is an existing file",
            path=out,
            fix=f"pass a folder to {option} (it is created if missing), or remove the file",
        )
    if out.is_dir():
        error = _probe_write(out)
        if error is not None:
            raise InputError(
                f"cannot write into the {option} folder ({error.strerror or error})",
                path=out,
                fix=f"pass a folder you can write to as {option}, or change its permissions",
            )
        return out
    # ``out`` is missing: it will be created inside its nearest existing ancestor.
    # E.g. ``notes.txt/out`` under a file ``notes.txt``: the ancestor is a file, no folder can be made.
    ancestor = out.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    error = None if ancestor.is_dir() else NotADirectoryError(f"{ancestor} is a file")
    error = error or _probe_write(ancestor)
    if error is not None:
        raise InputError(
            f"cannot create the {option} folder ({getattr(error, 'strerror', None) or error})",
            path=out,
            fix=f"pass a folder you can write to as {option}",
        )
    return out


def ensure_output_dir(path: str | Path, *, option: str = "--out") -> Path:
    """:func:`check_output_dir`, then create the folder (and its parents) if it is missing.

    Returns:
        ``path`` as a ``Path`` (an existing, writable folder).

    Raises:
        InputError: as :func:`check_output_dir`, or when creating the folder fails.
    """
    out = check_output_dir(path, option=option)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"cannot create the {option} folder ({exc.strerror or exc})",
            path=out,
            fix=f"pass a folder you can write to as {option}",
        ) from exc
    return out
