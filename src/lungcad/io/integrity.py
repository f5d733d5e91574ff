"""Is the pixel data all there?  Size checks that run before a reader decodes a file.

Readers do not always notice a short file.  SimpleITK loads a NIfTI whose data stops half-way without a
word: the missing voxels come back as 0.  A half-truncated 503-slice ``.nii.gz`` loaded with 252 slices of
zeros, passed QA, and a scan with a 5.4 mm nodule was reported negative.  MetaIO does fail on a short
``.raw``, but prints its own lines on stderr and gives the wrong reason ("No such file or directory").
pydicom decodes a short native Pixel Data element only to fail with a message that looks like a codec
problem.  So every file is measured first -- the bytes its header describes against the bytes it holds --
and a short file is an ``InputError`` naming the file and both numbers.

Worked example: a 20 x 32 x 32 int16 NIfTI-1 needs ``352 + 20 * 32 * 32 * 2 = 41312`` bytes (header and
extension flag, then the voxels); the same file cut to 20656 bytes fails here with
"the header describes 41312 bytes ..., the file holds 20656".
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import UID

from lungcad.errors import InputError

_REFETCH_FIX = "the file is incomplete or damaged (an interrupted download or copy?): copy it again"

#: Bytes per element of the MetaImage ``ElementType`` values ITK writes (MetaIO's MET_ValueTypeSize).
#: ``MET_LONG`` / ``MET_ULONG`` are left out on purpose: their size depends on the writer's platform.
_MET_SIZES = {
    "MET_CHAR": 1,
    "MET_UCHAR": 1,
    "MET_SHORT": 2,
    "MET_USHORT": 2,
    "MET_INT": 4,
    "MET_UINT": 4,
    "MET_FLOAT": 4,
    "MET_LONG_LONG": 8,
    "MET_ULONG_LONG": 8,
    "MET_DOUBLE": 8,
}
_MAX_HEADER_LINE = 4096  # a MetaImage header line longer than this is not a header line
_MAX_HEADER_LINES = 256


def _short(path: Path, what: str, need: int, found: int, detail: str = "", note: str = "") -> InputError:
    return InputError(
        f"image data is truncated: the {what} header describes {need} bytes{detail}, "
        f"the file holds {found}{note}",
        path=path,
        fix=_REFETCH_FIX,
    )


# --- NIfTI ------------------------------------------------------------------------------------------


def _nifti_layout(header: bytes) -> tuple[int, int, int] | None:
    """(data offset, data bytes, voxel count) from a NIfTI-1 or NIfTI-2 header; None if it cannot say.

    NIfTI-1 (``sizeof_hdr`` 348): ``dim`` int16[8] at byte 40, ``bitpix`` int16 at 72, ``vox_offset``
    float32 at 108.  NIfTI-2 (``sizeof_hdr`` 540): ``bitpix`` int16 at 14, ``dim`` int64[8] at 16,
    ``vox_offset`` int64 at 168.  The byte order is the one in which ``sizeof_hdr`` reads correctly.  A
    single-file NIfTI stores its voxels at ``vox_offset``, at least 352 (NIfTI-1) or 544 (NIfTI-2) bytes in.
    """
    for order in "<>":
        if len(header) < 4:
            return None
        (size,) = struct.unpack_from(order + "i", header, 0)
        if size == 348 and len(header) >= 348:
            dims = struct.unpack_from(order + "8h", header, 40)
            (bitpix,) = struct.unpack_from(order + "h", header, 72)
            (vox_offset,) = struct.unpack_from(order + "f", header, 108)
            min_offset = 352
            break
        if size == 540 and len(header) >= 540:
            (bitpix,) = struct.unpack_from(order + "h", header, 14)
            dims = struct.unpack_from(order + "8q", header, 16)
            (vox_offset,) = struct.unpack_from(order + "q", header, 168)
            min_offset = 544
            break
    else:
        return None
    ndim = dims[0]
    if not 1 <= ndim <= 7 or bitpix <= 0 or any(d < 1 for d in dims[1 : ndim + 1]):
        return None  # a header SimpleITK will reject with its own message
    if not math.isfinite(vox_offset):
        return None
    voxels = math.prod(dims[1 : ndim + 1])
    return max(int(vox_offset), min_offset), (voxels * bitpix + 7) // 8, voxels


def _gzip_length(path: Path, need: int) -> int:
    """Decompressed length of a gzip file, or ``need`` as soon as that many bytes are known to be there.

    Fast path: the gzip trailer's ISIZE (last 4 bytes, length mod 2**32) equals ``need``.  A truncated
    file ends in compressed data instead, which matches by chance once in 2**32.  Otherwise the stream is
    inflated (bounded chunks, nothing kept) until ``need`` bytes or the point where it breaks off.
    """
    size = path.stat().st_size
    if size >= 18:  # 10-byte gzip header + 8-byte trailer
        with path.open("rb") as handle:
            handle.seek(size - 4)
            if int.from_bytes(handle.read(4), "little") == need % 2**32:
                return need
    # zlib rather than gzip.open: GzipFile raises EOFError at a break and loses what it had inflated.
    count = 0
    inflater = zlib.decompressobj(wbits=31)  # 16 + 15: gzip framing
    with path.open("rb") as handle:
        pending = b""
        while count < need:
            pending = pending or handle.read(1 << 20)
            if not pending:
                break  # the compressed stream ends here
            try:
                count += len(inflater.decompress(pending, 1 << 24))  # at most 16 MiB out at a time
            except zlib.error:
                break  # corrupt from here on
            pending = inflater.unconsumed_tail
            if inflater.eof:  # end of one gzip member; another may follow
                pending, inflater = inflater.unused_data, zlib.decompressobj(wbits=31)
    return count


def check_nifti_complete(path: Path) -> None:
    """Raise ``InputError`` if a ``.nii`` / ``.nii.gz`` holds fewer bytes than its header describes."""
    compressed = path.name.lower().endswith(".gz")
    try:
        with gzip.open(path, "rb") if compressed else path.open("rb") as handle:
            header = handle.read(540)
    except (EOFError, OSError, zlib.error) as exc:
        raise InputError(
            f"not a readable {'gzip-compressed ' if compressed else ''}NIfTI file ({exc})",
            path=path,
            fix=_REFETCH_FIX,
        ) from exc
    layout = _nifti_layout(header)
    if layout is None:
        return  # not a header we can size: SimpleITK reports what is wrong with it
    offset, n_bytes, voxels = layout
    need = offset + n_bytes
    found = _gzip_length(path, need) if compressed else path.stat().st_size
    if found < need:
        detail = f" ({offset} header + {voxels} voxels)"
        raise _short(path, "NIfTI", need, found, detail, " once decompressed" if compressed else "")


# --- MetaImage --------------------------------------------------------------------------------------


def _metaimage_header(path: Path) -> tuple[dict[str, str], int]:
    """``key -> value`` of a MetaImage header up to ``ElementDataFile``, and the byte offset after it."""
    fields: dict[str, str] = {}
    offset = 0
    with path.open("rb") as handle:
        for _ in range(_MAX_HEADER_LINES):
            raw = handle.readline(_MAX_HEADER_LINE)
            if not raw:
                break
            offset += len(raw)
            key, sep, value = raw.decode("latin-1").partition("=")
            if sep:
                fields[key.strip()] = value.strip()
            if key.strip() == "ElementDataFile":
                break
    return fields, offset


def _metaimage_need(fields: dict[str, str]) -> int | None:
    """Bytes of pixel data the header describes (compressed size if compressed); None if unknown."""
    if fields.get("CompressedData", "False").strip().lower() == "true":
        size = fields.get("CompressedDataSize")
        return int(size) if size and size.isdigit() else None
    item = _MET_SIZES.get(fields.get("ElementType", ""))
    try:
        dims = [int(v) for v in fields.get("DimSize", "").split()]
        channels = int(fields.get("ElementNumberOfChannels", "1"))
    except ValueError:
        return None
    if item is None or not dims or min(dims) < 1 or channels < 1:
        return None
    return math.prod(dims) * channels * item


def check_metaimage_complete(path: Path) -> None:
    """Check a ``.mhd`` / ``.mha``: its pixel file exists and holds the bytes the header describes.

    ``ElementDataFile`` names the pixel file (relative to the header), ``LOCAL`` (data follows the header
    in the same file), or ``LIST`` / a ``%d`` pattern (one file per slice: not checked here).
    ``HeaderSize`` bytes at the start of the pixel file are skipped; ``-1`` means the data sits at its end.

    Raises:
        InputError: no ``ElementDataFile`` line, a missing pixel file, or fewer bytes than described.
    """
    fields, header_end = _metaimage_header(path)
    value = fields.get("ElementDataFile")
    if value is None:
        raise InputError("MetaImage header has no ElementDataFile line", path=path, fix="repair the header")
    if value.upper() == "LIST" or "%" in value:
        return
    if value.upper() == "LOCAL":
        data_file, start = path, header_end
    else:
        data_file, start = path.parent / value, 0
        if not data_file.is_file():
            raise InputError(
                f"MetaImage header names pixel file '{value}', which does not exist",
                path=path,
                fix=f"copy {value} next to the .mhd header (LUNA16 ships them as pairs)",
            )
    need = _metaimage_need(fields)
    skip = fields.get("HeaderSize", "0")
    if need is None or skip == "-1":
        return
    start += int(skip) if skip.isdigit() else 0
    found = max(0, data_file.stat().st_size - start)
    if found < need:
        where = "" if data_file == path else f" (pixel file {data_file.name})"
        raise _short(path, "MetaImage", need, found, where)


# --- DICOM ------------------------------------------------------------------------------------------


def transfer_syntax(ds: Dataset) -> UID | None:
    """The dataset's TransferSyntaxUID (0002,0010), None when its file meta has none."""
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    return None if ts is None else UID(str(ts))


def is_compressed(ds: Dataset) -> bool:
    """Whether the pixel data is encapsulated (compressed); an unknown transfer syntax counts as such."""
    ts = transfer_syntax(ds)
    if ts is None:
        return False  # no file meta: pydicom reads it as implicit VR little endian, native pixels
    try:
        return bool(ts.is_compressed)
    except ValueError:  # not a transfer syntax pydicom knows: it can only be decoded by a codec
        return True


def check_native_pixel_length(path: Path, ds: Dataset) -> None:
    """Native (uncompressed) Pixel Data (7FE0,0010) must hold every pixel the Image Pixel module describes.

    Needed bytes: Rows (0028,0010) x Columns (0028,0011) x SamplesPerPixel (0028,0002) x NumberOfFrames
    (0028,0008) x BitsAllocated (0028,0100) / 8, e.g. 512 x 512 x 1 x 1 x 16 / 8 = 524288 for one CT slice.

    Raises:
        InputError: the element is shorter (a truncated or corrupt file), or the module is unreadable.
    """
    if is_compressed(ds):
        return
    try:
        rows, cols, bits = int(ds.Rows), int(ds.Columns), int(ds.BitsAllocated)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError) as exc:
        raise InputError(
            f"missing or unreadable Image Pixel module value (Rows, Columns, BitsAllocated...): {exc}",
            path=path,
            fix="the file is damaged or not an image: re-export the series",
        ) from exc
    need = (rows * cols * samples * frames * bits + 7) // 8
    found = len(ds.PixelData or b"")
    if found < need:
        raise InputError(
            f"pixel data is truncated or corrupt: {rows} x {cols} pixels x {frames} frame(s) at {bits} bits "
            f"need {need} bytes, the file holds {found}",
            path=path,
            fix=_REFETCH_FIX + " (or re-export the series)",
        )
