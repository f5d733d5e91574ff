"""Fuzz the LIDC XML parser (the real 4-reader XML of the slab and a compact one).

Property: ``read_lidc_xml`` returns a read or raises a ``LungcadError``; nothing else.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given

from lungcad.annotations.lidc_xml import read_lidc_xml
from lungcad.errors import LungcadError
from tests.fuzz.mutate import Op, apply, fuzz_settings, mutations
from tests.fuzz.seeds import COMPACT_LIDC_XML, slab_xml


def parse(data: bytes, strict: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "read.xml"
        path.write_bytes(data)
        try:
            read_lidc_xml(path, strict=strict)
        except LungcadError:
            pass


@fuzz_settings(30)
@given(ops=mutations())
def test_fuzz_real_lidc_xml(ops: list[Op]) -> None:
    parse(apply(slab_xml().read_bytes(), ops), strict=True)


@fuzz_settings(250)
@given(ops=mutations(max_ops=8))
def test_fuzz_compact_lidc_xml_strict(ops: list[Op]) -> None:
    parse(apply(COMPACT_LIDC_XML, ops), strict=True)


@fuzz_settings(150)
@given(ops=mutations(max_ops=8))
def test_fuzz_compact_lidc_xml_tolerant(ops: list[Op]) -> None:
    parse(apply(COMPACT_LIDC_XML, ops), strict=False)
