"""The service end to end (issue 12's acceptance): ``lungcad serve`` and ``lungcad worker`` as real processes
on loopback; LIDC-IDRI-0001 (the bundled slab where the real data is absent) uploaded as a zip and by
STOW-RS; analysed with the report; polled; its ScanResult, report PDF, SEG and SR fetched; seen on the
worklist; the same analysis again served from the cache.  Once on SQLite + the SQLite queue, once on
PostgreSQL + Redis.  And kill -9 of the API in the middle of uploads: no half study is ever visible.

Timings are printed (``pytest -s``).
"""

from __future__ import annotations

import io
import os
import socket
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from sqlalchemy import func, select

from lungcad.contracts import ScanResult
from lungcad.service.db.models import Instance, Series, Study
from lungcad.service.db.session import make_engine, make_sessionmaker
from lungcad.service.settings import load_settings
from tests.conftest import real_data_root
from tests.service.conftest import SLAB
from tests.service.live import Services, live_services, service_env
from tests.service.uploads import STOW_TYPE, stow_body

pytestmark = pytest.mark.slow

API = "/api/v1"
LIDC_0001 = Path("lidc") / "LIDC-IDRI-0001" / "01-01-2000-30178" / "3000566-03192"
LUNA16_NODULE = ((56.21, 86.34, -115.87), 23.35)  # LIDC-IDRI-0001 in LUNA16's annotations.csv
POLL_S = 0.25
ANALYSIS_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Scan:
    """The scan of the test and its upload bodies (built once per module)."""

    folder: Path
    real: bool
    n_instances: int
    study_uid: str
    series_uid: str
    zip_body: bytes
    stow: bytes


def _build_scan(folder: Path, real: bool) -> Scan:
    files = sorted(folder.rglob("*.dcm"))
    first = pydicom.dcmread(files[0], stop_before_pixels=True)
    buf = io.BytesIO()
    # deflate level 1: a real zip at a fraction of the CPU (the box has 2 cores)
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            z.write(path, f"EXPORT/LIDC-IDRI-0001/CT/{path.relative_to(folder)}")
        z.writestr("EXPORT/README.txt", "exported for the end-to-end test\n")
    return Scan(
        folder=folder,
        real=real,
        n_instances=len(files),
        study_uid=str(first.StudyInstanceUID),
        series_uid=str(first.SeriesInstanceUID),
        zip_body=buf.getvalue(),
        stow=stow_body([p.read_bytes() for p in files]),
    )


@pytest.fixture(scope="module")
def scan() -> Scan:
    folder = real_data_root() / LIDC_0001
    if folder.is_dir():
        return _build_scan(folder, real=True)
    return _build_scan(SLAB, real=False)  # the bundled 16-slice slab holds the same nodule


class Clock:
    """Named wall-clock timings, printed at the end of a test."""

    def __init__(self, title: str) -> None:
        self.title, self.laps = title, {}

    def lap(self, name: str, t0: float) -> float:
        self.laps[name] = time.perf_counter() - t0
        return self.laps[name]

    def show(self, extra: dict[str, float] | None = None) -> None:
        print(f"\n[{self.title}] timings (s):")
        for name, seconds in {**(extra or {}), **self.laps}.items():
            print(f"  {name:<52} {seconds:7.2f}")


# -- the flow ------------------------------------------------------------------------------------------------
def upload_zip(http: httpx.Client, scan: Scan) -> dict:
    r = http.post(f"{API}/studies", files=[("files", ("lidc-0001.zip", scan.zip_body, "application/zip"))])
    assert r.status_code == 201, r.text
    return r.json()


def upload_stow(http: httpx.Client, scan: Scan) -> dict:
    r = http.post(f"{API}/dicomweb/studies", content=scan.stow, headers={"Content-Type": STOW_TYPE})
    assert r.status_code == 200, r.text  # every part an instance: no failures
    assert r.headers["content-type"].startswith("application/dicom+json")
    return r.json()


def wait_done(http: httpx.Client, analysis_id: str) -> tuple[dict, list[tuple[str | None, float]]]:
    """Poll until the analysis leaves queued/running; (its last state, the (stage, progress) seen)."""
    seen: list[tuple[str | None, float]] = []
    deadline = time.monotonic() + ANALYSIS_TIMEOUT_S
    while time.monotonic() < deadline:
        state = http.get(f"{API}/analyses/{analysis_id}").json()
        if not seen or seen[-1] != (state["stage"], state["progress"]):
            seen.append((state["stage"], state["progress"]))
        if state["status"] not in ("queued", "running"):
            return state, seen
        time.sleep(POLL_S)
    raise AssertionError(f"analysis {analysis_id} not finished after {ANALYSIS_TIMEOUT_S} s: {seen}")


def check_result(result: ScanResult, scan: Scan) -> None:
    assert result.series_uid == scan.series_uid
    centre, diameter = LUNA16_NODULE
    hits = [f for f in result.findings if np.linalg.norm(np.subtract(f.center_xyz_mm, centre)) < diameter / 2]
    assert hits, f"the LUNA16 nodule of LIDC-IDRI-0001 is not among {len(result.findings)} findings"
    assert max(f.probability for f in hits) >= 0.5


def run_flow(svc: Services, scan: Scan, clock: Clock, *, first: str) -> None:
    """Upload (``first`` = "zip" or "stow" creates the study, the other way merges into it), analyse with
    the report, poll, fetch result and files, see the worklist, then hit the cache."""
    with httpx.Client(base_url=svc.url, headers=svc.headers, timeout=300) as http:
        # -- upload both ways: the first creates the study, the second finds every instance stored
        ways = {"zip": upload_zip, "stow": upload_stow}
        order = [first, "stow" if first == "zip" else "zip"]
        for i, way in enumerate(order):
            t0 = time.perf_counter()
            out = ways[way](http, scan)
            clock.lap(f"upload {way} ({len(scan.zip_body if way == 'zip' else scan.stow) >> 20} MiB)", t0)
            if way == "zip":
                assert out["study_uid"] == scan.study_uid and out["created"] is (i == 0)
                assert out["stored_instances"] == (scan.n_instances if i == 0 else 0)
                assert out["duplicate_instances"] == (0 if i == 0 else scan.n_instances)
                assert out["primary_series_uid"] == scan.series_uid
                assert any(s["name"].endswith("README.txt") for s in out["skipped"])
            else:
                assert out["00081190"]["Value"][0].endswith(f"/dicomweb/studies/{scan.study_uid}")
                assert len(out["00081199"]["Value"]) == scan.n_instances
        page = http.get(f"{API}/studies").json()
        assert page["total"] == 1, page
        [study] = page["items"]
        assert study["study_uid"] == scan.study_uid and study["n_instances"] == scan.n_instances
        assert study["series"][0]["n_instances"] == scan.n_instances and study["series"][0]["usable"]

        # -- analyse, with the clinician report
        t0 = time.perf_counter()
        r = http.post(f"{API}/analyses", json={"study_id": study["id"], "report": True})
        assert r.status_code == 202, r.text
        created = r.json()
        assert created["status"] == "queued" and created["cached"] is False
        state, seen = wait_done(http, created["id"])
        clock.lap("analysis (queue + detect + report)", t0)
        assert state["status"] == "done", (state, svc.worker.tail() if svc.worker else "")
        assert state["progress"] == 1.0 and state["attempts"] == 1 and state["error"] is None
        progress = [p for _, p in seen]
        assert progress == sorted(progress), seen  # progress never goes back
        assert state["series_uid"] == scan.series_uid and state["n_findings"] >= 1

        # -- the result: ScanResult JSON with a strong ETag
        t0 = time.perf_counter()
        r = http.get(f"{API}/analyses/{created['id']}/result")
        assert r.status_code == 200 and r.headers["etag"], r.text
        result = ScanResult.from_dict(r.json())
        check_result(result, scan)
        assert result.config_hash == state["config_hash"]
        again = http.get(
            f"{API}/analyses/{created['id']}/result", headers={"If-None-Match": r.headers["etag"]}
        )
        assert again.status_code == 304 and again.content == b""
        # -- the files: report PDF, DICOM SEG and SR
        listed = {f["name"]: f for f in http.get(f"{API}/analyses/{created['id']}/files").json()["files"]}
        for name in ("result.json", "report/report.pdf", "dicom/seg.dcm", "dicom/sr.dcm"):
            assert name in listed, sorted(listed)
        pdf = http.get(f"{API}/analyses/{created['id']}/files/report/report.pdf")
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
        assert pdf.content.startswith(b"%PDF") and len(pdf.content) == listed["report/report.pdf"]["size"]
        for name, modality in (("dicom/seg.dcm", "SEG"), ("dicom/sr.dcm", "SR")):
            got = http.get(f"{API}/analyses/{created['id']}/files/{name}")
            assert got.status_code == 200, got.text
            ds = pydicom.dcmread(io.BytesIO(got.content))
            assert ds.Modality == modality and str(ds.StudyInstanceUID) == scan.study_uid
        clock.lap("fetch result + files", t0)

        # -- the worklist: the study, first (it is the only one)
        work = http.get(f"{API}/worklist").json()
        assert work["total"] == 1 and work["items"][0]["analysis_id"] == created["id"]
        row = work["items"][0]
        assert row["study_id"] == study["id"] and row["lung_rads"] == state["lung_rads"]
        assert (
            row["n_findings"] == state["n_findings"] and row["patient_id"] == "LIDC-IDRI-0001"
        )  # admin: PHI

        # -- the same series, model and configuration again: the cached result, no job
        t0 = time.perf_counter()
        r = http.post(f"{API}/analyses", json={"study_id": study["id"], "report": True})
        cached_s = clock.lap("second analysis (cached)", t0)
        assert r.status_code == 202 and r.json()["cached"] is True and r.json()["status"] == "done", r.text
        assert cached_s < 5.0
        cached = http.get(f"{API}/analyses/{r.json()['id']}/result")
        assert cached.status_code == 200 and ScanResult.from_dict(cached.json()) == result


def test_e2e_sqlite(tmp_path: Path, scan: Scan) -> None:
    clock = Clock(f"e2e SQLite, {'LIDC-IDRI-0001' if scan.real else 'bundled slab'}")
    data = tmp_path / "d"
    with live_services(data, tmp_path / "logs", service_env(data)) as svc:
        try:
            run_flow(svc, scan, clock, first="zip")
        finally:
            clock.show(svc.timings)


def test_e2e_postgres_redis(tmp_path: Path, scan: Scan, postgres_db_url: str, redis_url: str) -> None:
    clock = Clock(f"e2e PostgreSQL + Redis, {'LIDC-IDRI-0001' if scan.real else 'bundled slab'}")
    data = tmp_path / "d"
    # a queue name of its own: other tests of the session may share the Redis server
    env = service_env(
        data, database_url=postgres_db_url, queue_url=redis_url, queue_name=f"e2e-{os.urandom(4).hex()}"
    )
    with live_services(data, tmp_path / "logs", env) as svc:
        try:
            run_flow(svc, scan, clock, first="stow")
            assert not (data / "lungcad.db").exists() and not (data / "queue.db").exists()
        finally:
            clock.show(svc.timings)


# -- kill -9 of the API during uploads -----------------------------------------------------------------------
def _db_state(svc: Services) -> tuple[int, int, int, list[tuple[int, int]]]:
    """(studies, series, instances, [(study n_instances, instance rows)]) read straight from the database."""
    engine = make_engine(load_settings(svc.data_dir, environ=svc.env).db_url)
    try:
        with make_sessionmaker(engine)() as s:
            counts = [s.scalar(select(func.count()).select_from(t)) or 0 for t in (Study, Series, Instance)]
            per_study = []
            for study in s.scalars(select(Study)):
                rows = s.scalar(
                    select(func.count()).select_from(Instance).join(Series).where(Series.study_id == study.id)
                )
                per_study.append((study.n_instances, rows or 0))
            blobs = list(s.scalars(select(Instance.blob)))
    finally:
        engine.dispose()
    storage_blobs = svc.data_dir / "blobs" / "sha256"
    assert all((storage_blobs / b[:2] / b).is_file() for b in blobs)  # no row without its file
    return counts[0], counts[1], counts[2], per_study


def _send_part(svc: Services, path: str, content_type: str, body: bytes, n_bytes: int) -> socket.socket:
    """Open a raw HTTP/1.1 request announcing all of ``body`` and send only its first ``n_bytes``, slowly."""
    sock = socket.create_connection(("127.0.0.1", svc.api.port), timeout=30)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{svc.api.port}\r\nX-API-Key: {svc.key}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode())
    step = 256 * 1024
    for at in range(0, n_bytes, step):
        sock.sendall(body[at : min(at + step, n_bytes)])
        time.sleep(0.01)
    return sock


def _kill_api(svc: Services) -> None:
    svc.api.proc.kill()
    assert svc.api.proc.proc.returncode == -9


def _wait_for(predicate, timeout_s: float = 30.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _staged_files(data_dir: Path, kind: str) -> int:
    return sum(1 for d in (data_dir / "tmp").glob(f"{kind}-*") for f in d.glob("*.dcm"))


def test_kill_9_of_the_api_during_uploads_leaves_no_half_study(tmp_path: Path, scan: Scan) -> None:
    clock = Clock("kill -9 of the API during uploads")
    data = tmp_path / "d"
    boundary = "e2e-form-b0undary"
    form = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="lidc.zip"\r\n'
            "Content-Type: application/zip\r\n\r\n"
        ).encode()
        + scan.zip_body
        + f"\r\n--{boundary}--\r\n".encode()
    )
    form_type = f"multipart/form-data; boundary={boundary}"
    with live_services(data, tmp_path / "logs", service_env(data), worker=False) as svc:
        try:
            # 1. a form upload killed mid-body: the body was being received, nothing stored yet
            t0 = time.perf_counter()
            sock = _send_part(svc, f"{API}/studies", form_type, form, len(form) // 2)
            time.sleep(0.5)  # the server has read what was sent
            _kill_api(svc)
            sock.close()
            svc.restart_api()
            assert _db_state(svc) == (0, 0, 0, [])
            clock.lap("form mid-body: kill, restart, check", t0)

            # 2. a STOW-RS upload killed mid-body, once instances are being staged under D/tmp
            t0 = time.perf_counter()
            sock = _send_part(svc, f"{API}/dicomweb/studies", STOW_TYPE, scan.stow, len(scan.stow) * 2 // 3)
            assert _wait_for(lambda: _staged_files(data, "stow") > 0), "no STOW instance staged"
            _kill_api(svc)
            sock.close()
            left = _staged_files(data, "stow")
            svc.restart_api()
            assert left > 0 and _db_state(svc) == (0, 0, 0, [])  # staged files are no study
            clock.lap("STOW mid-body: kill, restart, check", t0)

            # 3. a whole body sent, killed while the intake stages / stores it: a study is whole or absent
            t0 = time.perf_counter()
            sock = _send_part(svc, f"{API}/studies", form_type, form, len(form))
            _wait_for(lambda: _staged_files(data, "upload") > 0, timeout_s=60)
            _kill_api(svc)
            sock.close()
            svc.restart_api()
            studies, _, instances, per_study = _db_state(svc)
            assert studies in (0, 1) and all(n == rows == scan.n_instances for n, rows in per_study), (
                per_study
            )
            assert instances == scan.n_instances * studies
            clock.lap(f"intake killed: kill, restart, check ({studies} whole studies)", t0)

            # the restarted service takes the upload again, whole; the visible list is consistent
            with httpx.Client(base_url=svc.url, headers=svc.headers, timeout=300) as http:
                t0 = time.perf_counter()
                out = upload_zip(http, scan)
                clock.lap("upload after the kills", t0)
                assert out["stored_instances"] + out["duplicate_instances"] == scan.n_instances
                page = http.get(f"{API}/studies").json()
                assert page["total"] == 1 and page["items"][0]["n_instances"] == scan.n_instances
                stow = http.post(
                    f"{API}/dicomweb/studies",
                    content=stow_body([b"junk"], close=False),
                    headers={"Content-Type": STOW_TYPE},
                )
                assert stow.status_code == 400  # and it still refuses bad bodies cleanly
            assert _db_state(svc)[2] == scan.n_instances
            # what the killed requests left is staging only (D/tmp), which the sweep of old staging removes
            from lungcad.service.storage import Storage

            Storage(data).clean_tmp(older_than_s=0)
            assert not any((data / "tmp").iterdir())
        finally:
            clock.show(svc.timings)
