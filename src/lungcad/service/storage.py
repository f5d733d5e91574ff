"""Files of the service under its data folder ``D``: content-addressed, written atomically.

Layout::

    D/blobs/sha256/ab/abcdef...      one DICOM instance or model file, named by the SHA-256 of its bytes
    D/results/<analysis id>/         the result folder of a finished analysis (result.json, report, SEG, SR)
    D/tmp/                           staging: uploads and results being built (never read by anyone else)

A blob is written to ``D/tmp`` first and renamed into place, so a name under ``blobs/`` always holds the
complete bytes that hash to it; storing the same bytes twice is a no-op.  A result folder is built under
``D/tmp`` and renamed onto ``results/<id>`` in one step: a reader sees all of it or nothing, and a second
attempt that finds the folder already there knows another attempt finished first (at-most-once).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from lungcad.fileio import fsync_path

CHUNK = 1024 * 1024


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


class Storage:
    """The data folder of one service (shared by the API and every worker on the machine, or mounted)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs" / "sha256"
        self.results = self.root / "results"
        self.tmp = self.root / "tmp"

    def ensure(self) -> Storage:
        for folder in (self.blobs, self.results, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)
        return self

    # -- blobs ---------------------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"not a sha256 hex digest: {digest!r}")
        return self.blobs / digest[:2] / digest

    def put_file(self, path: Path, *, move: bool = False) -> tuple[str, int]:
        """Store the bytes of ``path``; returns (sha256, size).  ``move``: ``path`` is a staging file of
        ours that may be renamed into place instead of copied (same file system)."""
        digest = sha256_file(path)
        target = self.blob_path(digest)
        size = path.stat().st_size
        if target.exists():
            if move:
                path.unlink()
            return digest, size
        target.parent.mkdir(parents=True, exist_ok=True)
        if move:
            fsync_path(path)
            os.replace(path, target)
        else:
            tmp = self.tmp / f"blob-{uuid.uuid4().hex}"
            shutil.copyfile(path, tmp)
            fsync_path(tmp)
            os.replace(tmp, target)
        return digest, size

    def put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        tmp = self.tmp / f"blob-{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as fh:
                shutil.copyfileobj(stream, fh, CHUNK)
            return self.put_file(tmp, move=True)
        finally:
            tmp.unlink(missing_ok=True)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def delete_blobs(self, digests: Iterable[str]) -> int:
        """Remove blobs (the caller made sure no row references them any more)."""
        n = 0
        for digest in digests:
            try:
                self.blob_path(digest).unlink()
                n += 1
            except FileNotFoundError:
                pass
        return n

    def link_series(self, blobs: Iterable[tuple[str, str]], folder: Path) -> Path:
        """A folder of one series for the detector: ``folder/<sop uid>.dcm`` hard links to the blobs (a
        copy where links are not possible)."""
        folder.mkdir(parents=True, exist_ok=True)
        for sop_uid, digest in blobs:
            target = folder / f"{sop_uid}.dcm"
            try:
                os.link(self.blob_path(digest), target)
            except OSError:
                shutil.copyfile(self.blob_path(digest), target)
        return folder

    # -- staging and results ---------------------------------------------------------------------------
    def staging_dir(self, kind: str) -> Path:
        folder = self.tmp / f"{kind}-{uuid.uuid4().hex}"
        folder.mkdir(parents=True)
        return folder

    def result_dir(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"bad result folder name {name!r}")
        return self.results / name

    def publish_result(self, staged: Path, name: str) -> bool:
        """Rename a finished result folder into place.  False: a folder of that name exists already (another
        attempt published first); ``staged`` is then removed and the existing one is kept untouched."""
        target = self.result_dir(name)
        for f in staged.rglob("*"):
            if f.is_file():
                fsync_path(f)
        try:
            os.rename(staged, target)  # fails on an existing non-empty folder: never half-replaced
        except OSError:
            if target.is_dir():
                shutil.rmtree(staged, ignore_errors=True)
                return False
            raise
        fsync_path(self.results)
        return True

    def delete_result(self, name: str) -> None:
        shutil.rmtree(self.result_dir(name), ignore_errors=True)

    def clean_tmp(self, older_than_s: float = 24 * 3600) -> int:
        """Remove leftovers of crashed uploads and jobs (staging folders older than ``older_than_s``)."""
        import time

        now, n = time.time(), 0
        for entry in self.tmp.iterdir() if self.tmp.is_dir() else []:
            try:
                if now - entry.stat().st_mtime < older_than_s:
                    continue
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink()
                n += 1
            except FileNotFoundError:
                pass
        return n
