"""LUNA16 CSV files: readers and writers.

The LUNA16 challenge (Setio et al., Medical Image Analysis 42, 2017) distributes its reference standard and
expects results as comma-separated files with a header row.  Coordinates are world millimetres
``(x, y, z)`` in the scanner's patient (LPS) frame, as ``CTVolume.voxel_to_world`` returns them.

======================== ================================================ =========================
file                     columns (header row, in this order)              value column means
======================== ================================================ =========================
annotations.csv          ``seriesuid,coordX,coordY,coordZ,diameter_mm``   diameter in mm, > 0
annotations_excluded.csv ``seriesuid,coordX,coordY,coordZ,diameter_mm``   diameter in mm, -1 = unknown
candidates.csv (V1)      ``seriesuid,coordX,coordY,coordZ,class``         label 0 / 1
candidates_V2.csv (V2)   ``seriesuid,coordX,coordY,coordZ,class``         label 0 / 1
submission               ``seriesuid,coordX,coordY,coordZ,probability``   any finite score
seriesuids.csv           one series UID per line, no header               --
======================== ================================================ =========================

V1 and V2 candidate files share the official column set; V2 only has more rows (it added candidates so that
every nodule is covered).  Third-party copies of the candidate lists sometimes call the label column
``label``; ``read_luna16_candidates`` accepts that spelling too and says which one it met in
``read_luna16_candidates_with_version``.

Every reader validates each row once, here at the boundary: an unknown or missing column, a missing field,
an extra field, an empty series UID or a number that is not a finite float is an ``AnnotationError`` naming
the file and the 1-based line.  Writers format floats with ``repr`` so that ``read(write(rows)) == rows``
exactly, and write to a temporary file that is renamed into place (a failed write never leaves half a file).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lungcad.annotations.model import LunaAnnotation, LunaCandidate
from lungcad.errors import AnnotationError
from lungcad.fileio import atomic_open

COORD_COLUMNS = ("coordX", "coordY", "coordZ")
ANNOTATION_COLUMNS = ("seriesuid", *COORD_COLUMNS, "diameter_mm")
CANDIDATE_COLUMNS = ("seriesuid", *COORD_COLUMNS, "class")
CANDIDATE_COLUMNS_ALT = ("seriesuid", *COORD_COLUMNS, "label")
SUBMISSION_COLUMNS = ("seriesuid", *COORD_COLUMNS, "probability")
UNKNOWN_DIAMETER = -1.0


@dataclass(frozen=True)
class _Row:
    line: int
    fields: tuple[str, ...]


def _read_rows(
    path: str | Path, expected: Sequence[Sequence[str]], what: str
) -> tuple[tuple[str, ...], list[_Row]]:
    """Read a CSV with a header that must equal one of ``expected``; return (header, data rows with lines)."""
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise AnnotationError(f"{what} file not found", path=path, fix="pass an existing CSV file") from exc
    except OSError as exc:
        raise AnnotationError(f"cannot open {what} file: {exc.strerror}", path=path) from exc
    with handle:
        reader = csv.reader(handle)
        try:
            header: tuple[str, ...] | None = None
            rows: list[_Row] = []
            for fields in reader:
                if not fields or all(not f.strip() for f in fields):
                    continue  # blank lines (e.g. a trailing newline pair) carry nothing
                stripped = tuple(f.strip() for f in fields)
                if header is None:
                    header = stripped
                    _check_header(header, expected, path, reader.line_num, what)
                    continue
                rows.append(_Row(reader.line_num, stripped))
        except csv.Error as exc:
            raise AnnotationError(
                f"{what} is not valid CSV at line {reader.line_num}: {exc}", path=path
            ) from exc
        except UnicodeDecodeError as exc:
            raise AnnotationError(f"{what} is not UTF-8 text ({exc.reason})", path=path) from exc
    if header is None:
        raise AnnotationError(
            f"{what} is empty (no header row)",
            path=path,
            fix=f"the first line must be {','.join(expected[0])}",
        )
    return header, rows


def _check_header(
    header: tuple[str, ...], expected: Sequence[Sequence[str]], path: Path, line: int, what: str
) -> None:
    if any(tuple(header) == tuple(e) for e in expected):
        return
    known = {c for e in expected for c in e}
    unknown = [c for c in header if c not in known]
    missing = [c for c in expected[0] if c not in header]
    detail = []
    if unknown:
        detail.append(f"unknown column(s) {unknown}")
    if missing:
        detail.append(f"missing column(s) {missing}")
    if not detail:
        detail.append(f"columns in the wrong order or repeated: {list(header)}")
    raise AnnotationError(
        f"{what} header at line {line}: {'; '.join(detail)}",
        path=path,
        fix="the header must be " + " or ".join(",".join(e) for e in expected),
    )


def _number(text: str, column: str, row: _Row, path: Path, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
        bad = True
    else:
        bad = not math.isfinite(value)
    if bad:
        raise AnnotationError(
            f"{what} line {row.line}: {column} must be a finite number, got {text!r}",
            path=path,
            fix=f"correct or delete line {row.line}",
        )
    return value


def _split(row: _Row, n_columns: int, path: Path, what: str) -> tuple[str, ...]:
    if len(row.fields) != n_columns:
        kind = "missing field(s)" if len(row.fields) < n_columns else "extra field(s)"
        raise AnnotationError(
            f"{what} line {row.line}: {kind}: expected {n_columns} values, got {len(row.fields)}",
            path=path,
            fix=f"correct or delete line {row.line}",
        )
    if not row.fields[0]:
        raise AnnotationError(
            f"{what} line {row.line}: empty seriesuid", path=path, fix=f"correct or delete line {row.line}"
        )
    return row.fields


def _parse_points(
    path: str | Path,
    expected: Sequence[Sequence[str]],
    what: str,
    check_value: Callable[[float, _Row, Path], None],
) -> tuple[tuple[str, ...], list[tuple[str, float, float, float, float]]]:
    header, rows = _read_rows(path, expected, what)
    p = Path(path)
    out = []
    for row in rows:
        uid, *rest = _split(row, len(header), p, what)
        x, y, z, value = (_number(t, c, row, p, what) for t, c in zip(rest, header[1:], strict=True))
        check_value(value, row, p)
        out.append((uid, x, y, z, value))
    return header, out


def _write_rows(path: str | Path, header: Sequence[str] | None, rows: Iterable[Sequence[object]]) -> None:
    """Write atomically: a temporary file in the target folder, renamed into place."""
    with atomic_open(path) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        if header is not None:
            writer.writerow(header)
        writer.writerows(rows)


def _fmt(value: float) -> str:
    """Shortest text that parses back to exactly the same float."""
    return repr(float(value))


# --- annotations.csv / annotations_excluded.csv ---


def read_luna16_annotations(
    path: str | Path, *, allow_unknown_diameter: bool = False
) -> list[LunaAnnotation]:
    """Read a LUNA16 ``annotations.csv``.

    Args:
        path: CSV with header ``seriesuid,coordX,coordY,coordZ,diameter_mm``.
        allow_unknown_diameter: accept ``-1`` as "diameter unknown" (``annotations_excluded.csv``).

    Returns:
        One ``LunaAnnotation`` per row, in file order (world mm, diameter mm).

    Raises:
        AnnotationError: missing file, bad header, or a bad row (file and line named).
    """
    what = "LUNA16 excluded-annotations CSV" if allow_unknown_diameter else "LUNA16 annotations CSV"

    def check(value: float, row: _Row, p: Path) -> None:
        if value > 0 or (allow_unknown_diameter and value == UNKNOWN_DIAMETER):
            return
        allowed = "> 0 or -1 (unknown)" if allow_unknown_diameter else "> 0"
        fix = f"correct or delete line {row.line}"
        if value == UNKNOWN_DIAMETER:
            fix += " (diameter -1 belongs in annotations_excluded.csv: read that with read_luna16_excluded)"
        raise AnnotationError(
            f"{what} line {row.line}: diameter_mm must be {allowed}, got {value!r}", path=p, fix=fix
        )

    _, rows = _parse_points(path, [ANNOTATION_COLUMNS], what, check)
    return [LunaAnnotation(uid, x, y, z, d) for uid, x, y, z, d in rows]


def read_luna16_excluded(path: str | Path) -> list[LunaAnnotation]:
    """Read ``annotations_excluded.csv`` (irrelevant findings; diameter -1 = unknown)."""
    return read_luna16_annotations(path, allow_unknown_diameter=True)


def write_luna16_annotations(rows: Sequence[LunaAnnotation], path: str | Path) -> None:
    """Write ``annotations.csv`` (or ``annotations_excluded.csv``: the same columns)."""
    _write_rows(
        path,
        ANNOTATION_COLUMNS,
        ([r.seriesuid, _fmt(r.coord_x), _fmt(r.coord_y), _fmt(r.coord_z), _fmt(r.diameter_mm)] for r in rows),
    )


write_luna16_excluded = write_luna16_annotations


# --- candidates.csv (V1 / V2) ---


def read_luna16_candidates_with_version(path: str | Path) -> tuple[list[LunaCandidate], str]:
    """Read a candidates file; also return the label column's name (``class`` official, ``label`` alias)."""
    what = "LUNA16 candidates CSV"

    def check(value: float, row: _Row, p: Path) -> None:
        if value not in (0.0, 1.0):
            raise AnnotationError(
                f"{what} line {row.line}: class must be 0 or 1, got {value!r}",
                path=p,
                fix=f"correct or delete line {row.line}",
            )

    header, rows = _parse_points(path, [CANDIDATE_COLUMNS, CANDIDATE_COLUMNS_ALT], what, check)
    return [LunaCandidate(uid, x, y, z, v) for uid, x, y, z, v in rows], header[-1]


def read_luna16_candidates(path: str | Path) -> list[LunaCandidate]:
    """Read LUNA16 ``candidates.csv`` / ``candidates_V2.csv`` (``value`` = class label 0 or 1)."""
    return read_luna16_candidates_with_version(path)[0]


def write_luna16_candidates(
    rows: Sequence[LunaCandidate], path: str | Path, *, label_column: str = "class"
) -> None:
    """Write a candidates file with the official ``class`` column (or ``label``)."""
    if label_column not in ("class", "label"):
        raise AnnotationError(f"label_column must be 'class' or 'label', got {label_column!r}")
    _write_rows(
        path,
        ("seriesuid", *COORD_COLUMNS, label_column),
        ([r.seriesuid, _fmt(r.coord_x), _fmt(r.coord_y), _fmt(r.coord_z), str(int(r.value))] for r in rows),
    )


# --- submission files ---


def read_luna16_submission(path: str | Path) -> list[LunaCandidate]:
    """Read a detection result / submission (``value`` = probability; any finite float is accepted)."""
    _, rows = _parse_points(path, [SUBMISSION_COLUMNS], "LUNA16 submission CSV", lambda v, r, p: None)
    return [LunaCandidate(uid, x, y, z, v) for uid, x, y, z, v in rows]


def write_luna16_submission(rows: Sequence[LunaCandidate], path: str | Path) -> None:
    """Write a submission file (``seriesuid,coordX,coordY,coordZ,probability``)."""
    _write_rows(
        path,
        SUBMISSION_COLUMNS,
        ([r.seriesuid, _fmt(r.coord_x), _fmt(r.coord_y), _fmt(r.coord_z), _fmt(r.value)] for r in rows),
    )


# --- seriesuids.csv ---


def read_luna16_seriesuids(path: str | Path) -> list[str]:
    """Read ``seriesuids.csv``: one UID per line (an optional ``seriesuid`` header line is skipped).

    Raises:
        AnnotationError: a line with more than one field or a repeated UID (file and line named).
    """
    path = Path(path)
    what = "LUNA16 series list"
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise AnnotationError(f"{what} not found", path=path, fix="pass an existing seriesuids.csv") from exc
    uids: list[str] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or (not uids and line == "seriesuid"):
            continue
        if "," in line:
            raise AnnotationError(
                f"{what} line {number}: expected one series UID, got {line!r}",
                path=path,
                fix="write one UID per line",
            )
        if line in seen:
            raise AnnotationError(
                f"{what} line {number}: series UID repeated (first at line {seen[line]})",
                path=path,
                fix=f"delete line {number}",
            )
        seen[line] = number
        uids.append(line)
    return uids


def write_luna16_seriesuids(uids: Sequence[str], path: str | Path) -> None:
    """Write ``seriesuids.csv`` (one UID per line, no header, as LUNA16 ships it)."""
    _write_rows(path, None, ([u] for u in uids))
