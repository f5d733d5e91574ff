"""Fuzz the LUNA16 CSV readers (annotations, excluded findings, candidates).

Property: each reader returns rows or raises a ``LungcadError``; nothing else.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given

from lungcad.annotations.luna16 import read_luna16_annotations, read_luna16_candidates, read_luna16_excluded
from lungcad.errors import LungcadError
from tests.fuzz.mutate import Op, apply, fuzz_settings, mutations
from tests.fuzz.seeds import LUNA16_ANNOTATIONS, LUNA16_CANDIDATES, LUNA16_EXCLUDED

READERS: dict[str, tuple[Callable[[Path], object], bytes]] = {
    "annotations": (read_luna16_annotations, LUNA16_ANNOTATIONS),
    "excluded": (read_luna16_excluded, LUNA16_EXCLUDED),
    "candidates": (read_luna16_candidates, LUNA16_CANDIDATES),
}


@pytest.mark.parametrize("kind", sorted(READERS))
@fuzz_settings(120)
@given(ops=mutations(max_ops=8))
def test_fuzz_luna16_csv(kind: str, ops: list[Op]) -> None:
    reader, seed = READERS[kind]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{kind}.csv"
        path.write_bytes(apply(seed, ops))
        try:
            reader(path)
        except LungcadError:
            pass
