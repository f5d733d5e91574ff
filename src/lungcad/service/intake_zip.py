"""Extract the DICOM files of an uploaded zip archive into the staging folder, refusing hostile archives.

Member names are checked but never used as paths (files are staged as ``NNNNNN.dcm``), so a zip-slip name
could do no harm here; it is refused all the same, because an archive built to escape its folder is not an
honest PACS export.  Symlink members are refused for the same reason.  Folders are walked (a PACS export
nests ``PATIENT/STUDY/SERIES/``); junk is skipped after reading its first 132 bytes, so a junk member is
never decompressed in full; a nested zip is skipped, not opened.

Zip bombs: the sizes in the zip headers are the attacker's to choose, so every byte decompressed is counted
as it comes out: past ``ratio_floor_bytes`` a member may expand at most ``max_ratio`` times its compressed
size (bounded by the archive's real size), and all members together at most ``max_total_bytes``.  A 10 MB
member of zeros deflates to ~10 KB (ratio ~1000): it is stopped after ``max_ratio`` x 10 KB come out, not
after 10 MB are on disk.
"""

from __future__ import annotations

import os
import re
import stat
import zipfile
import zlib
from typing import BinaryIO

from lungcad.service.intake_stage import (
    CHUNK_BYTES,
    MALFORMED,
    TOO_LARGE,
    UNPROCESSABLE,
    IntakeError,
    ItemSink,
    Stager,
)

_DRIVE = re.compile(r"[A-Za-z]:")
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError)


def unsafe_member_name(name: str) -> str | None:
    """Why a member name would escape the extraction folder, or None when it would not."""
    norm = name.replace("\\", "/")
    if "\x00" in norm:
        return "a NUL character"
    if norm.startswith("/") or _DRIVE.match(norm):
        return "an absolute path"
    if ".." in norm.split("/"):
        return "a '..' component"
    return None


def is_symlink(info: zipfile.ZipInfo) -> bool:
    """A member whose Unix mode (upper 16 bits of the external attributes) says symbolic link."""
    return stat.S_ISLNK(info.external_attr >> 16)


def _archive_size(file: BinaryIO) -> int:
    pos = file.tell()
    end = file.seek(0, os.SEEK_END)
    file.seek(pos)
    return end


def spool(head: bytes, file: BinaryIO, stager: Stager, index: int) -> BinaryIO:
    """Copy a non-seekable zip stream to a file in the staging folder (zipfile needs to seek); capped."""
    path = stager.dir / f".spool-{index:04d}.zip"  # a dot name: discovery ignores it
    limit = stager.limits.max_body_bytes
    with open(path, "xb") as out:
        out.write(head)
        n = len(head)
        while chunk := file.read(CHUNK_BYTES):
            n += len(chunk)
            if n > limit:
                raise IntakeError(
                    f"zip archive too large: more than {limit} bytes",
                    status_code=TOO_LARGE,
                    code="too_large",
                    fix="upload one study per request; split a very large study by series",
                )
            out.write(chunk)
    return open(path, "rb")  # noqa: SIM115 -- closed by stage_zip's caller


def stage_zip(file: BinaryIO, source: str, stager: Stager) -> None:
    """Stage every DICOM member of the seekable zip ``file``; skip and record the junk.

    Raises:
        IntakeError: unreadable archive (400), zip-slip or symlink member (400), too many members, too much
            data or a member past the compression-ratio cap (413), an archive without files (422).
    """
    stager.saw_zip = True
    try:
        archive = zipfile.ZipFile(file)
    except _ZIP_ERRORS as exc:
        raise IntakeError(
            f"{source} is not a readable zip archive ({type(exc).__name__}: {exc})",
            status_code=MALFORMED,
            code="bad_zip",
            fix="create the archive again (zip -r study.zip FOLDER) and upload it whole",
        ) from exc
    with archive:
        infos = archive.infolist()
        stager.count_members(len(infos))
        for info in infos:
            _check_member(info, source)
        members = [i for i in infos if not i.is_dir()]
        if not members:
            raise IntakeError(
                f"{source} is an empty zip archive (no files in it)",
                status_code=UNPROCESSABLE,
                code="empty_zip",
                fix="zip the folder that holds the DICOM files, not an empty one",
            )
        size = _archive_size(file)
        for info in members:
            _stage_member(archive, info, f"{source}:{info.filename}", size, stager)


def _check_member(info: zipfile.ZipInfo, source: str) -> None:
    why = unsafe_member_name(info.filename)
    if why is not None:
        raise IntakeError(
            f"{source} has a member whose name holds {why} ({info.filename!r}): refused (zip-slip)",
            status_code=MALFORMED,
            code="zip_slip",
            fix="create the archive from inside the study folder, with relative paths only",
        )
    if is_symlink(info):
        raise IntakeError(
            f"{source} has a symbolic-link member ({info.filename!r}): refused",
            status_code=MALFORMED,
            code="zip_symlink",
            fix="create the archive without symlinks (zip without --symlinks, or copy the files in)",
        )


def _stage_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str, size: int, stager: Stager
) -> None:
    if info.flag_bits & 0x1:
        stager.skip(label, "encrypted zip member (cannot be read without its password)")
        return
    limits = stager.limits
    # the compressed size is a header value too: never more than the archive really holds
    budget = limits.max_ratio * max(1, min(info.compress_size, size))
    sink = ItemSink(stager, label, zip_reason="nested zip archive (not extracted)")
    out = 0
    try:
        with archive.open(info) as member:
            while sink.wants_more and (chunk := member.read(CHUNK_BYTES if sink.kind else 132)):
                out += len(chunk)
                if out > limits.ratio_floor_bytes and out > budget:
                    raise IntakeError(
                        f"{label} expands more than {limits.max_ratio:g} times its compressed size "
                        f"({info.compress_size} bytes): refused as a zip bomb",
                        status_code=TOO_LARGE,
                        code="zip_bomb",
                        fix="upload the DICOM files themselves, or a zip made by a standard tool",
                    )
                sink.write(chunk)
    except NotImplementedError:  # deflate64, an old "implode": zipfile cannot decompress them
        sink.discard()
        stager.skip(label, f"zip compression method {info.compress_type} not supported")
        return
    except _ZIP_ERRORS as exc:
        sink.discard()
        raise IntakeError(
            f"damaged zip member {label} ({type(exc).__name__}: {exc})",
            status_code=MALFORMED,
            code="bad_zip",
            fix="create the archive again and upload it whole (it may have been cut off in transfer)",
        ) from exc
    except BaseException:
        sink.discard()
        raise
    sink.close()


def remove_spool(file: BinaryIO, stager: Stager) -> None:
    """Close and delete a spooled copy made by ``spool``."""
    name = getattr(file, "name", None)
    file.close()
    if isinstance(name, str) and os.path.dirname(name) == str(stager.dir):
        os.unlink(name)
