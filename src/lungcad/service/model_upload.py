"""``POST /api/v1/models``: receive one model file as it streams, validate and register it, or store nothing.

The request is ``multipart/form-data`` with one file part ``file`` (the ``.pt`` written by
``lungcad export-model``) and optionally a field ``activate`` (``true`` / ``false``).  The body is parsed as
it arrives (python-multipart's ``MultipartParser``, the parser Starlette itself uses) and the file part is
written to a staging folder of its own under ``D/tmp``, counting bytes against the cap
(``settings.max_upload_bytes``): Starlette's own form parsing would spool the whole body to the system temp
folder before anything could refuse it.  The staged file is then checked by
``models_registry.register_model`` (``lungcad.model.bundle.load_bundle``: a foreign, damaged or incompatible
file is refused with the loader's reason) and renamed into the blob store.  Whatever happens -- a refusal,
a client that disconnects, an error -- the staging folder is removed; a process killed mid-upload leaves it
to ``Storage.clean_tmp``.

Refusals are ``ModelUploadError`` (an ``InputError``) with an HTTP ``status_code``: 400 malformed form,
413 too large, 415 not a form, 422 a file that is not a usable lungcad model.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterable
from dataclasses import dataclass
from pathlib import Path

from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool

from lungcad.errors import InputError
from lungcad.service.context import ServiceContext
from lungcad.service.db.models import ModelFile
from lungcad.service.models_registry import register_model
from lungcad.service.multipart import PartStream
from lungcad.service.storage import sha256_file

FILE_FIELD = "file"
ACTIVATE_FIELD = "activate"
MAX_FIELD_BYTES = 64  # a form value ("true"); anything longer is not one of ours
DEFAULT_FILENAME = "model.pt"
_FORM_FIX = (
    "send multipart/form-data with one file part named 'file' (the .pt from `lungcad export-model`) and "
    "optionally a field 'activate' = true, e.g. curl -F file=@model.pt -F activate=true"
)
MODEL_FIX = (
    "upload the .pt file that `lungcad export-model` writes from a `lungcad train` checkpoint, with this "
    "lungcad version"
)
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class ModelUploadError(InputError):
    """A refused model upload; ``status_code`` and ``code`` go into the API's JSON error body."""

    def __init__(self, message: str, *, status_code: int, code: str, fix: str) -> None:
        super().__init__(message, fix=fix)
        self.status_code = status_code
        self.code = code


def _malformed(message: str) -> ModelUploadError:
    return ModelUploadError(message, status_code=400, code="malformed_upload", fix=_FORM_FIX)


def safe_filename(name: str | None) -> str:
    """The uploaded name reduced to a plain file name (no folders, no odd characters), for display."""
    base = re.split(r"[\\/]", name or "")[-1]
    clean = _UNSAFE.sub("_", base).strip("._")[:200]
    return clean or DEFAULT_FILENAME


@dataclass(frozen=True)
class StagedModel:
    """A received model file: where it lies, the name it was sent as, and the ``activate`` field."""

    path: Path
    filename: str
    activate: bool


class ModelReceiver(PartStream):
    """Feed it the body's chunks, then ``finish()``; writes only inside ``staging_dir``."""

    def __init__(self, content_type: str | None, staging_dir: Path, max_bytes: int) -> None:
        media, options = parse_options_header(content_type or "")
        if media.lower() != b"multipart/form-data":
            raise ModelUploadError(
                f"a model upload must be multipart/form-data, got {media.decode('latin-1') or 'no type'!r}",
                status_code=415,
                code="unsupported_media_type",
                fix=_FORM_FIX,
            )
        boundary = options.get(b"boundary")
        if not boundary:
            raise _malformed("the multipart/form-data Content-Type has no boundary")
        self.staging_dir = staging_dir
        self.max_bytes = max_bytes
        self.n_bytes = 0
        self._path: Path | None = None
        self._filename = DEFAULT_FILENAME
        self._activate = False
        self._part: str | None = None  # "file", "activate" or None between parts
        self._out = None
        self._text = b""
        self._init_parser(boundary, max_header_count=8, malformed=_malformed)

    def feed(self, chunk: bytes) -> None:
        """Parse the next bytes of the body (a 413 as soon as the body passes the cap)."""
        self.n_bytes += len(chunk)
        if self.n_bytes > self.max_bytes:
            raise too_large(self.max_bytes)
        self._write(chunk)

    def finish(self) -> StagedModel:
        """The body is complete: it must have held exactly one file part and a closing delimiter."""
        self._finalize()
        if not self.ended:
            raise _malformed("the multipart body ends without its closing delimiter (cut off in transfer?)")
        if self._path is None:
            raise _malformed(f"the form holds no file part named {FILE_FIELD!r}")
        return StagedModel(self._path, self._filename, self._activate)

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    # -- parser hooks (lungcad.service.multipart.PartStream) ---------------------------------------------
    def _headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get("content-disposition", ""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if disposition.lower() != b"form-data" or not name:
            raise _malformed("a form part has no Content-Disposition: form-data; name=...")
        if name == FILE_FIELD:
            if self._path is not None:
                raise _malformed("the form holds more than one model file; send one per request")
            self._filename = safe_filename(options.get(b"filename", b"").decode("utf-8", "replace"))
            self._path = self.staging_dir / self._filename
            self._out = open(self._path, "wb")  # noqa: SIM115 - closed in _part_end / close()
        elif name == ACTIVATE_FIELD:
            self._text = b""
        else:
            raise _malformed(
                f"unknown form field {name!r}; the fields are {FILE_FIELD!r} and {ACTIVATE_FIELD!r}"
            )
        self._part = name

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part == FILE_FIELD and self._out is not None:
            self._out.write(data[start:end])
            return
        self._text += bytes(data[start:end])
        if len(self._text) > MAX_FIELD_BYTES:
            raise _malformed(f"the form field {ACTIVATE_FIELD!r} is longer than {MAX_FIELD_BYTES} bytes")

    def _part_end(self) -> None:
        if self._part == FILE_FIELD:
            self.close()
        elif self._part == ACTIVATE_FIELD:
            value = self._text.decode("utf-8", "replace").strip().lower()
            if value not in _TRUE | _FALSE:
                raise ModelUploadError(
                    f"the form field {ACTIVATE_FIELD!r} must be true or false, got {value!r}",
                    status_code=422,
                    code="invalid_request",
                    fix=f"send {ACTIVATE_FIELD}=true to make the model active, or leave the field out",
                )
            self._activate = value in _TRUE
        self._part = None


def too_large(max_bytes: int) -> ModelUploadError:
    return ModelUploadError(
        f"the model upload is larger than the service's limit of {max_bytes} bytes",
        status_code=413,
        code="too_large",
        fix="export a smaller model, or raise LUNGCAD_MAX_UPLOAD_BYTES on the server",
    )


@dataclass(frozen=True)
class UploadedModel:
    row: ModelFile
    created: bool  # False: the same bytes were registered before (the request changed at most ``active``)


def _register(ctx: ServiceContext, staged: StagedModel) -> UploadedModel:
    """Validate and store a staged file (blocking: loads the model, ~1 s)."""
    with ctx.sessions() as s:
        created = s.get(ModelFile, sha256_file(staged.path)) is None
    try:
        row = register_model(ctx, staged.path, filename=staged.filename, activate=staged.activate, move=True)
    except InputError as exc:
        reason = _reason(exc)
        raise ModelUploadError(
            reason if reason.startswith(staged.filename) else f"{staged.filename}: {reason}",
            status_code=422,
            code="invalid_model",
            # the loader's own fix speaks of the CLI's --model option
            fix=MODEL_FIX,
        ) from exc
    return UploadedModel(row, created)


def _reason(exc: InputError) -> str:
    """The loader's message without the server-side path and the fix (the API reports those itself)."""
    text = str(exc)
    if exc.fix:
        text = text.removesuffix(f" Fix: {exc.fix}")
    if exc.path:
        text = text.replace(f" [{exc.path}]", "")
    return text


async def receive_model(
    ctx: ServiceContext, content_type: str | None, content_length: str | None, body: AsyncIterable[bytes]
) -> UploadedModel:
    """Stage the upload ``body`` (the request's byte stream), then validate and register the model.

    Raises:
        ModelUploadError: 400 / 413 / 415 / 422, see the module docstring; nothing is then stored.
    """
    cap = ctx.settings.max_upload_bytes
    if content_length and content_length.isdigit() and int(content_length) > cap:
        raise too_large(cap)  # before reading a byte
    staging = ctx.storage.staging_dir("model-upload")
    receiver: ModelReceiver | None = None
    try:
        receiver = ModelReceiver(content_type, staging, cap)
        async for chunk in body:
            receiver.feed(chunk)
        staged = receiver.finish()
        return await run_in_threadpool(_register, ctx, staged)
    finally:
        if receiver is not None:
            receiver.close()
        shutil.rmtree(staging, ignore_errors=True)
