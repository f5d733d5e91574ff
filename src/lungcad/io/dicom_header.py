"""A strict reader of the common DICOM file: Part 10, Explicit VR Little Endian, well formed.

Why: pydicom spends ~1.5 ms a file building a ``Dataset`` (an object per element, lazy value conversion,
the file read in many small pieces), twice per file -- discovery reads the header, the loader the whole
file -- which was ~1.2 of the 1.45 s ``load_ct`` of a 600-slice series.  This module walks the element
headers of one file with ``struct`` (~0.1 ms) and converts the few values discovery and the loader use,
with pydicom's own string rules.

It is strict on purpose: a file is read here only when every check below passes; any other file --
another transfer syntax, no 'DICM' prefix, an unknown VR, an undefined length outside a sequence, an
element running past the end of the file, tags out of order, a value that is not plainly what the
reader expects -- gets ``None`` and goes to pydicom, which reads, converts or rejects it exactly as
before (with the same error message).  So the values returned here are the ones pydicom gives for the
same file, and nothing pydicom rejects is accepted here (``tests/io/test_dicom_header.py`` compares the
two on real, synthetic and mutated files).

Structure rules, after pydicom's reader (``pydicom.filereader.data_element_generator``):

* 128-byte preamble, 'DICM', then the File Meta group (0002,xxxx), always Explicit VR Little Endian;
  its TransferSyntaxUID (0002,0010) must be Explicit VR Little Endian (1.2.840.10008.1.2.1).
* Each element: tag (4 bytes), VR (2), then a 2-byte length, or 2 reserved bytes and a 4-byte length for
  OB OD OF OL OV OW SQ SV UC UN UR UT UV.  Undefined length (0xFFFFFFFF) only for SQ: pydicom parses
  those sequences while reading, so they are walked here too (items, nested elements, delimiters);
  defined-length sequences pydicom keeps as bytes until used, and the values read here are never in one.
* Top-level tags strictly increasing, lengths even, every value inside the file.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

#: VRs whose explicit length field is 4 bytes (after 2 reserved bytes); every other known VR has 2.
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
_SHORT_VRS = frozenset(b"AE AS AT CS DA DS DT FL FD IS LO LT PN SH SL SS ST TM UI UL US".split())
_HEADER = struct.Struct("<HH2sH")  # group, element, VR, 2-byte length
_LONG = struct.Struct("<I")
_TAG = struct.Struct("<HH")
_ITEM = struct.Struct("<HHI")  # item and delimiter tags: group, element, 4-byte length (no VR)
_UNDEFINED = 0xFFFFFFFF
_ITEM_TAG, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_PIXEL_TAGS = frozenset((0x7FE00008, 0x7FE00009, 0x7FE00010))  # Float, DoubleFloat, Pixel Data
_MAX_DEPTH = 8  # nested sequences deeper than this go to pydicom
EXPLICIT_VR_LITTLE_ENDIAN = b"1.2.840.10008.1.2.1"

#: One plain decimal number as ``float()`` reads it the same way pydicom's DSfloat does.
_DECIMAL = re.compile(r" *[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)? *")

#: SpecificCharacterSet (0008,0005) values pydicom knows and under which printable ASCII decodes as ASCII.
#: pydicom resolves this element while it reads the file (an unknown or damaged name can raise there), in
#: nested items too, so a file with any other value goes to pydicom.
ASCII_COMPATIBLE_CHARSETS = frozenset(
    (b"ISO_IR 6", b"ISO_IR 100", b"ISO_IR 101", b"ISO_IR 109", b"ISO_IR 110", b"ISO_IR 126", b"ISO_IR 127")
    + (b"ISO_IR 138", b"ISO_IR 144", b"ISO_IR 148", b"ISO_IR 166", b"ISO_IR 192", b"GB18030", b"GBK")
)
_CHARSET = 0x00080005
_UID = re.compile(r"[0-9.]*")


class _Reject(Exception):
    """This file is not one for the strict reader: pydicom reads it."""


@dataclass(frozen=True)
class Header:
    """The top-level elements of one file: tag -> (VR, value offset, value length) into ``data``.

    Sequences of undefined length are listed with length -1 (their items are checked, not kept).
    """

    data: bytes | bytearray | memoryview
    elements: dict[int, tuple[bytes, int, int]]
    at_pixels: bool = False  # parsing stopped at the pixel data (``stop_before_pixels``)

    def raw(self, tag: int) -> bytes | None:
        """The value bytes of a top-level element, None when absent (or an undefined-length sequence)."""
        found = self.elements.get(tag)
        if found is None or found[2] < 0:
            return None
        _, offset, length = found
        return bytes(self.data[offset : offset + length])

    def vr(self, tag: int) -> bytes | None:
        found = self.elements.get(tag)
        return None if found is None else found[0]


def _tag_at(data: bytes | bytearray | memoryview, pos: int) -> int:
    group, elem = _TAG.unpack_from(data, pos)
    return group << 16 | elem


def _element(data: bytes | bytearray | memoryview, pos: int, end: int) -> tuple[int, bytes, int, int]:
    """(tag, VR, value offset, length) of the element at ``pos``; length -1 for undefined."""
    if pos + 8 > end:
        raise _Reject
    group, elem, vr, length = _HEADER.unpack_from(data, pos)
    if vr in _LONG_VRS:
        if pos + 12 > end:
            raise _Reject
        (length,) = _LONG.unpack_from(data, pos + 8)
        pos += 12
    elif vr in _SHORT_VRS:
        pos += 8
    else:
        raise _Reject
    if length == _UNDEFINED:
        if vr != b"SQ":
            raise _Reject
        return group << 16 | elem, vr, pos, -1
    if length & 1 or pos + length > end:
        raise _Reject
    return group << 16 | elem, vr, pos, length


def _check_charset(data: bytes | bytearray | memoryview, tag: int, vr: bytes, pos: int, length: int) -> None:
    if tag == _CHARSET and (
        vr != b"CS" or bytes(data[pos : pos + length]).rstrip(b" \x00") not in ASCII_COMPATIBLE_CHARSETS
    ):
        raise _Reject


def _sequence(data: bytes | bytearray | memoryview, pos: int, end: int, depth: int) -> int:
    """Walk an undefined-length sequence's items from ``pos``; returns the offset after its delimiter."""
    if depth > _MAX_DEPTH:
        raise _Reject
    while True:
        if pos + 8 > end:
            raise _Reject
        group, elem, length = _ITEM.unpack_from(data, pos)
        tag, pos = group << 16 | elem, pos + 8
        if tag == _SEQUENCE_END:
            if length:
                raise _Reject
            return pos
        if tag != _ITEM_TAG:
            raise _Reject
        if length == _UNDEFINED:
            pos = _dataset(data, pos, end, depth)
        else:
            if length & 1 or pos + length > end:
                raise _Reject
            if _dataset(data, pos, pos + length, depth, delimited=False) != pos + length:
                raise _Reject
            pos += length


def _dataset(
    data: bytes | bytearray | memoryview, pos: int, end: int, depth: int, *, delimited: bool = True
) -> int:
    """Walk the elements of a sequence item: to its Item Delimitation (``delimited``) or to ``end``."""
    while pos < end or delimited:
        if pos + 8 <= end and _tag_at(data, pos) == _ITEM_END:
            if not delimited or _LONG.unpack_from(data, pos + 4)[0]:
                raise _Reject
            return pos + 8
        tag, vr, pos, length = _element(data, pos, end)
        if tag >> 16 == 0xFFFE:
            raise _Reject
        _check_charset(data, tag, vr, pos, length)
        pos = _sequence(data, pos, end, depth + 1) if length < 0 else pos + length
    return pos


def parse(data: bytes | bytearray | memoryview, *, stop_before_pixels: bool = False) -> Header | None:
    """The top-level elements of a strict Explicit VR Little Endian Part 10 file, else None.

    Args:
        data: the file's bytes, or with ``stop_before_pixels`` a prefix of them: a prefix that ends inside
            an element gives None, one that ends between elements a ``Header`` without ``at_pixels``.
        stop_before_pixels: stop at (7FE0,0008/0009/0010), like ``dcmread(stop_before_pixels=True)``.
    """
    end = len(data)
    if end < 132 or bytes(data[128:132]) != b"DICM":
        return None
    elements: dict[int, tuple[bytes, int, int]] = {}
    pos, previous, in_meta = 132, -1, True
    try:
        while pos < end:
            # the pixel data element runs past a prefix: stop at its tag before its length is checked
            if stop_before_pixels and pos + 4 <= end and (pixel_tag := _tag_at(data, pos)) in _PIXEL_TAGS:
                if pixel_tag <= previous or in_meta:
                    return None
                return Header(data, elements, at_pixels=True)
            tag, vr, start, length = _element(data, pos, end)
            if in_meta and tag >> 16 != 2:
                in_meta = False
                if not _meta_ok(data, elements):
                    return None
            if tag <= previous or tag >> 16 == 0xFFFE or (not in_meta and tag >> 16 <= 2):
                return None
            _check_charset(data, tag, vr, start, length)
            elements[tag] = (vr, start, length)
            previous = tag
            pos = _sequence(data, start, end, 1) if length < 0 else start + length
    except _Reject:
        return None
    if in_meta:
        return None
    return Header(data, elements)


def _meta_ok(data: bytes | bytearray | memoryview, elements: dict[int, tuple[bytes, int, int]]) -> bool:
    """File Meta as pydicom needs it: the group length (if any) a UL, Explicit VR Little Endian."""
    header = Header(data, elements)
    if 0x00020000 in elements and (header.vr(0x00020000), elements[0x00020000][2]) != (b"UL", 4):
        return False
    ts = header.raw(0x00020010)
    return (
        header.vr(0x00020010) == b"UI" and ts is not None and ts.rstrip(b"\x00 ") == EXPLICIT_VR_LITTLE_ENDIAN
    )


# --- values, converted as pydicom converts them; None where pydicom's result would be anything else ---


def text(header: Header, tag: int, vr: bytes, default: str | None = None) -> str | None:
    """A single-valued string (CS): pydicom's ``multi_string`` (trailing spaces and NULs dropped).

    ``default`` when the element is absent; None for a multi-valued or empty value, or another VR.
    """
    raw = header.raw(tag)
    if raw is None:
        return default if tag not in header.elements else None
    if header.vr(tag) != vr:
        return None
    value = raw.decode("latin-1").rstrip(" \x00")
    return None if not value or "\\" in value else value


def uid(header: Header, tag: int, default: str | None = None) -> str | None:
    """A UI of digits and dots (pydicom's ``UID`` of it is the same string); ``default`` when absent."""
    value = text(header, tag, b"UI", default)
    return value if value is not None and _UID.fullmatch(value) else None


def ascii_text(header: Header, tag: int, default: str) -> str | None:
    """A single-valued LO/SH of printable ASCII: it decodes alike under every character set ``parse``
    accepts (``ASCII_COMPATIBLE_CHARSETS``)."""
    raw = header.raw(tag)
    if raw is None:
        return default if tag not in header.elements else None
    if header.vr(tag) not in (b"LO", b"SH") or any(b < 0x20 or b > 0x7E for b in raw.rstrip(b"\x00")):
        return None
    value = raw.decode("ascii").rstrip("\x00 ")
    return None if "\\" in value else value


def decimals(header: Header, tag: int) -> list[float] | None:
    """A DS value as floats (pydicom's strip, split at backslashes, ``float`` of each); None if absent,
    empty, or any part is not a plain decimal number."""
    raw = header.raw(tag)
    if raw is None or header.vr(tag) != b"DS":
        return None
    parts = raw.decode("latin-1").strip().rstrip(" \x00").split("\\")
    if not all(_DECIMAL.fullmatch(p) for p in parts):
        return None
    return [float(p) for p in parts]


def unsigned_short(header: Header, tag: int) -> int | None:
    """A single US value; None if absent or not exactly one US."""
    raw = header.raw(tag)
    if raw is None or header.vr(tag) != b"US" or len(raw) != 2:
        return None
    return int.from_bytes(raw, "little")


def integer_string(header: Header, tag: int) -> int | None:
    """An IS of digits only (after pydicom's trailing strip); None otherwise."""
    raw = header.raw(tag)
    if raw is None or header.vr(tag) != b"IS":
        return None
    value = raw.decode("latin-1").rstrip(" \x00")
    return int(value) if value.isascii() and value.isdigit() else None
