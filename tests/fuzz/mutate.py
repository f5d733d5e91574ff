"""Replayable byte mutations for the parser fuzz tests, drawn by hypothesis.

A mutation is a short list of ``Op``s applied to a valid seed file (a real DICOM slice, a real LIDC XML,
a LUNA16 CSV).  Keeping the ops, not only the bytes, lets a crash found on a large seed (a 526 kB CT slice)
be kept as a few-line JSON regression file (``regressions/*.json``) instead of a copy of the file.

Positions are taken modulo the current length, so any op applies to any seed.  ``hot_end`` biases half
of the positions into the first ``hot_end`` bytes: in a CT slice the header (2 kB) is where parsing
happens; the 512 kB of pixel data that follow only need their length to be right.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

KINDS = ("flip", "byte", "word", "dword", "delete", "insert", "token", "truncate", "copy")
#: Values that break length and count fields (0, sign bits, all ones) and DICOM item/delimiter tags.
INTERESTING = (
    0, 1, 2, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xE000FFFE,
)  # fmt: skip
#: Text that breaks CSV and XML parsers and number parsing.
TOKENS = (
    b",", b"\n", b"\r", b'"', b"\x00", b"\xff\xfe", b"\xc3", b"-1", b"0", b"nan", b"inf", b"-inf",
    b"1e309", b" ", b"<", b">", b"</", b"/>", b"&", b"&amp;", b"&#0;", b"]]>", b"<!--", b"<![CDATA[",
    b'<?xml version="1.0"?>', b'<!DOCTYPE a [<!ENTITY e "x">]>', b"&e;", b"<roi>", b"</roi>",
    b"<edgeMap>", b"<xCoord>", b"TRUE", b"FALSE", b"seriesuid", b"coordX", b"diameter_mm", b"class",
    b"label", b"\\", b"-0", b"1" * 40,
)  # fmt: skip


@dataclass(frozen=True)
class Op:
    """One edit: ``kind`` at byte ``pos`` with argument ``arg`` (a value, a length or a token index)."""

    kind: str
    pos: int
    arg: int


def apply(seed: bytes, ops: list[Op]) -> bytes:
    """The seed with every op applied in order (positions wrap around the current length)."""
    data = bytearray(seed)
    for op in ops:
        n = len(data)
        pos = op.pos % n if n else 0
        if op.kind == "flip" and n:
            data[pos] ^= 1 << (op.arg % 8)
        elif op.kind == "byte" and n:
            data[pos] = op.arg % 256
        elif op.kind in ("word", "dword") and n:
            width = 2 if op.kind == "word" else 4
            value = INTERESTING[op.arg % len(INTERESTING)] % (1 << (8 * width))
            data[pos : pos + width] = value.to_bytes(width, "little")
        elif op.kind == "delete":
            del data[pos : pos + 1 + op.arg % 64]
        elif op.kind == "insert":
            data[pos:pos] = bytes([op.arg % 256]) * (1 + op.arg % 7)
        elif op.kind == "token":
            data[pos:pos] = TOKENS[op.arg % len(TOKENS)]
        elif op.kind == "truncate":
            del data[pos:]
        elif op.kind == "copy" and n:
            src = op.arg % n
            data[pos:pos] = data[src : src + 1 + op.arg % 32]
    return bytes(data)


def mutations(*, hot_end: int | None = None, max_ops: int = 6) -> st.SearchStrategy[list[Op]]:
    """Lists of 1..``max_ops`` ops; positions anywhere (modulo the length), half of them below ``hot_end``."""
    anywhere = st.integers(0, 2**22)
    pos = anywhere if hot_end is None else st.one_of(st.integers(0, hot_end - 1), anywhere)
    op = st.builds(Op, kind=st.sampled_from(KINDS), pos=pos, arg=st.integers(0, 2**16))
    return st.lists(op, min_size=1, max_size=max_ops)


def fuzz_settings(default_examples: int) -> settings:
    """Bounded and deterministic: ``default_examples`` (or ``$LUNGCAD_FUZZ_EXAMPLES``), derandomized.

    No example database (a run never depends on earlier runs) and no deadline (a slow example is not a
    bug here; the budget is the example count).
    """
    n = int(os.environ.get("LUNGCAD_FUZZ_EXAMPLES", default_examples))
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


REGRESSIONS = Path(__file__).parent / "regressions"


def save_ops(name: str, seed: str, ops: list[Op]) -> Path:
    """Write a regression as JSON: the seed file (relative to the repository) and the ops (by hand)."""
    path = REGRESSIONS / f"{name}.json"
    path.write_text(json.dumps({"seed": seed, "ops": [asdict(o) for o in ops]}, indent=1) + "\n")
    return path


def load_ops(path: Path) -> tuple[str, list[Op]]:
    doc = json.loads(path.read_text())
    return doc["seed"], [Op(**o) for o in doc["ops"]]
