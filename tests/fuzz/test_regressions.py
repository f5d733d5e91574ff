"""Every crash the fuzz tests found, kept as a file: each must now be a ``LungcadError`` naming the file.

``regressions/lidc-*.xml``: a mutated LIDC XML (the long fuzz run found an unknown encoding in the XML
declaration: expat raised LookupError).

``regressions/dicom-*.dcm``: a mutated slice of the small pydicom-written CT (``seeds.small_ct_slices``),
loaded beside that CT's intact second slice.  ``regressions/slab-*.dcm``: a mutated slice of the bundled
LIDC slab, beside the slab's second slice.  ``regressions/slab-*.json``: mutation ops (``mutate.Op``)
applied to a bundled slab file, for crashes whose input would be a 526 kB copy.

Before the fix each raised something else (pydicom's BytesLengthException, NotImplementedError for an
unknown VR, struct.error, or ValueError / TypeError from a damaged number), at discovery or at load.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

from lungcad.annotations.lidc_xml import read_lidc_xml, xml_root_tag
from lungcad.errors import AnnotationError, InputError
from lungcad.io import load_ct
from tests.conftest import REPO
from tests.fuzz.mutate import REGRESSIONS, apply, load_ops
from tests.fuzz.seeds import slab_slices, small_ct_slices

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _case(path: Path) -> tuple[bytes, bytes]:
    """(mutated slice, intact neighbour) of one regression file."""
    if path.suffix == ".json":
        seed, ops = load_ops(path)
        return apply((REPO / seed).read_bytes(), ops), slab_slices()[1].read_bytes()
    neighbour = slab_slices()[1].read_bytes() if path.name.startswith("slab-") else small_ct_slices()[1]
    return path.read_bytes(), neighbour


CASES = sorted(p for p in REGRESSIONS.iterdir() if p.suffix in (".dcm", ".json"))


def test_there_are_regressions() -> None:
    assert len(CASES) >= 10


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_fuzz_regression_is_an_input_error_naming_the_file(path: Path, tmp_path: Path) -> None:
    mutated, neighbour = _case(path)
    (tmp_path / "damaged.dcm").write_bytes(mutated)
    (tmp_path / "intact.dcm").write_bytes(neighbour)
    with pytest.raises(InputError, match=r"damaged\.dcm.*Fix:"):
        load_ct(tmp_path)


def test_a_damaged_end_slice_is_not_dropped_silently(tmp_path: Path) -> None:
    """A damaged slice that discovery cannot group must not leave a shorter, valid-looking series behind."""
    for k, src in enumerate(slab_slices()[:3]):
        shutil.copy(src, tmp_path / f"{k}.dcm")
    (tmp_path / "0.dcm").write_bytes((REGRESSIONS / "slab-ends-inside-element.dcm").read_bytes())
    with pytest.raises(InputError, match=r"damaged DICOM file in the series folder.*0\.dcm"):
        load_ct(tmp_path)


def test_cli_prints_only_our_one_line_error(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """No pydicom warnings before the error (they would reach stderr), and the bad value is cut short."""
    from lungcad.cli import main

    mutated, neighbour = _case(REGRESSIONS / "dicom-iop-swallows-next-elements.dcm")
    (tmp_path / "damaged.dcm").write_bytes(mutated)
    (tmp_path / "intact.dcm").write_bytes(neighbour)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")  # as a user's python would show them (once each)
        assert main(["ingest", str(tmp_path)]) == 2
    assert [str(w.message) for w in seen if "pydicom" in w.filename] == []
    err = capfd.readouterr().err.strip()
    assert err.startswith("error: ImageOrientationPatient (0020,0037) is not a list of numbers")
    assert "\n" not in err and len(err) < 400


XML_CASES = sorted(REGRESSIONS.glob("lidc-*.xml"))


@pytest.mark.parametrize("path", XML_CASES, ids=[p.stem for p in XML_CASES])
def test_fuzz_regression_xml_is_an_annotation_error(path: Path, tmp_path: Path) -> None:
    target = tmp_path / "read.xml"
    shutil.copy(path, target)
    with pytest.raises(AnnotationError, match=r"LIDC XML line 1: .*read\.xml"):
        read_lidc_xml(target)
    assert xml_root_tag(target) == ""  # not an XML we can read: no root tag, no exception
