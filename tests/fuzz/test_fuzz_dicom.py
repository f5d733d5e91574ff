"""Fuzz the DICOM loader: a mutated slice (real LIDC, or small pydicom-written CT) beside an intact one.

Property: ``load_ct`` returns a volume or raises a ``LungcadError``; nothing else (issue 9, parser fuzzing).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given

from lungcad.errors import LungcadError
from lungcad.io import load_ct
from tests.fuzz.mutate import Op, apply, fuzz_settings, mutations
from tests.fuzz.seeds import SLAB_HEADER_END, slab_slices, small_ct_slices

# pydicom warns about every odd value it meets; the property is about exceptions, not warnings.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def load_beside_intact(mutated: bytes, intact: bytes) -> None:
    """Load a two-file series folder: the mutated slice and an intact neighbour."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "a.dcm").write_bytes(mutated)
        (folder / "b.dcm").write_bytes(intact)
        try:
            load_ct(folder)
        except LungcadError:
            pass


@fuzz_settings(50)
@given(ops=mutations(hot_end=SLAB_HEADER_END))
def test_fuzz_real_lidc_slice(ops: list[Op]) -> None:
    first, second = slab_slices()[:2]
    load_beside_intact(apply(first.read_bytes(), ops), second.read_bytes())


@fuzz_settings(150)
@given(ops=mutations())
def test_fuzz_small_pydicom_ct(ops: list[Op]) -> None:
    first, second = small_ct_slices()
    load_beside_intact(apply(first, ops), second)
