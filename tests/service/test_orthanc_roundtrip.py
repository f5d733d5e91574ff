"""The PACS round trip with a real Orthanc (issue 16): the bundled LIDC slab is uploaded to Orthanc A (REST
``POST /instances``), A sends the study to lungcad's DICOM listener (``POST /modalities/lungcad/store``:
C-STORE), lungcad -- ``lungcad dicom-listener`` and ``lungcad worker`` as processes -- analyses it (the
shipped model, report on: DICOM in, DICOM out) and its worker delivers the
SEG + SR + Encapsulated PDF back: by C-STORE to Orthanc A and by STOW-RS to Orthanc B's
``/dicom-web/studies`` (B holds the same CT study, uploaded by REST).  Through each Orthanc's REST API the
test finds the three objects under the CT's StudyInstanceUID and checks their references: the SEG's
ReferencedSeriesSequence names the CT series and its instances, the SR's evidence names the CT series and
the SEG, the PDF sits in the same study and names the SR.

The same analysis also has two destinations that fail: ``late`` (STOW-RS to a port where nothing listens
at first; an Orthanc C is started on that port after two failed attempts -> delivered, attempts counted)
and ``wrong`` (STOW-RS to a URL Orthanc answers 404 -> failed after one attempt, never retried).

Run with the bundled slab, and with the whole LIDC-IDRI-0001 series when the real data is present.  Skipped,
with the reason, only when Orthanc (or its DICOMweb plugin) is not installed or does not start (or, for the
whole series, without the real data).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from lungcad.service.app import create_app
from lungcad.service.context import ServiceContext, open_context
from lungcad.service.db.models import Analysis, AnalysisStatus, ResultDelivery, ResultDeliveryStatus
from lungcad.service.db.session import transaction
from lungcad.service.security import create_key
from lungcad.service.settings import load_settings
from tests.service.live import (
    START_TIMEOUT_S,
    LiveProcess,
    lungcad_cli,
    service_env,
    spawn_worker,
    wait_worker,
)
from tests.service.orthanc import Orthanc, start_orthanc
from tests.service.processes import ServerUnavailable, free_port
from tests.service.uploads import API, SERIES_UID, SLAB_FILES, STUDY_UID

LISTENER_AET = "LUNGCAD"
SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
PDF_CLASS = "1.2.840.10008.5.1.4.1.1.104.1"
ANALYSIS_TIMEOUT_S = 600.0  # the shipped model on the slab, report included, on a busy 2-core machine
DELIVERY_TIMEOUT_S = 120.0


def _wait(what: str, ready: Any, timeout_s: float, tick_s: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = ready()
        if value:
            return value
        time.sleep(tick_s)
    raise AssertionError(f"{what} not within {timeout_s:.0f} s")


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[dict[str, Any]]:
    listener_port = free_port()
    modalities = {"lungcad": [LISTENER_AET, "127.0.0.1", listener_port]}
    started: list[Orthanc] = []
    try:
        started.append(start_orthanc(tmp_path / "orthanc-a", name="a", aet="ORTHANCA", modalities=modalities))
        started.append(start_orthanc(tmp_path / "orthanc-b", name="b", aet="ORTHANCB", modalities={}))
    except ServerUnavailable as exc:
        for o in started:
            o.stop()
        print(f"SKIPPED: Orthanc unavailable: {exc.reason}")
        pytest.skip(f"Orthanc unavailable: {exc.reason}")
    try:
        yield {"a": started[0], "b": started[1], "listener_port": listener_port, "late_port": free_port()}
    finally:
        for o in started:
            o.stop()


def _upload(orthanc: Orthanc, files: list[Path]) -> str:
    """POST the files to Orthanc's /instances; the Orthanc id of their study."""
    studies = {orthanc.post("/instances", content=p.read_bytes())["ParentStudy"] for p in files}
    assert len(studies) == 1
    return studies.pop()


def _objects(orthanc: Orthanc, study_uid: str) -> dict[str, dict[str, Any]]:
    """SOP class UID -> simplified tags of each instance under the study with ``study_uid`` (one each)."""
    (hit,) = orthanc.post("/tools/lookup", content=study_uid)
    assert hit["Type"] == "Study"
    out: dict[str, dict[str, Any]] = {}
    for series in orthanc.get(f"/studies/{hit['ID']}/series"):
        for instance_id in series["Instances"]:
            tags = orthanc.get(f"/instances/{instance_id}/tags?simplify")
            out.setdefault(tags["SOPClassUID"], tags)
    return out


def _check_references(objects: dict[str, dict[str, Any]], ct_sops: set[str]) -> dict[str, str]:
    """The SEG / SR / PDF under the CT's study reference the CT series, the SEG and the SR; their UIDs."""
    seg, sr, pdf = objects[SEG_CLASS], objects[SR_CLASS], objects[PDF_CLASS]
    for obj in (seg, sr, pdf):
        assert obj["StudyInstanceUID"] == STUDY_UID
        assert obj["SeriesInstanceUID"] != SERIES_UID  # a series of its own in the CT's study
    (ref,) = seg["ReferencedSeriesSequence"]
    assert ref["SeriesInstanceUID"] == SERIES_UID
    seg_refs = {i["ReferencedSOPInstanceUID"] for i in ref["ReferencedInstanceSequence"]}
    assert seg_refs and seg_refs <= ct_sops
    evidence = {
        s["SeriesInstanceUID"]: {i["ReferencedSOPInstanceUID"] for i in s["ReferencedSOPSequence"]}
        for study in sr["CurrentRequestedProcedureEvidenceSequence"]
        for s in study["ReferencedSeriesSequence"]
    }
    assert evidence[SERIES_UID] <= ct_sops and evidence[SERIES_UID]
    assert seg["SOPInstanceUID"] in evidence[seg["SeriesInstanceUID"]]
    assert pdf["MIMETypeOfEncapsulatedDocument"] == "application/pdf"
    pdf_refs = json.dumps(pdf)
    assert sr["SOPInstanceUID"] in pdf_refs  # the PDF names the SR it renders
    return {"seg": seg["SOPInstanceUID"], "sr": sr["SOPInstanceUID"], "pdf": pdf["SOPInstanceUID"]}


def _deliveries(ctx: ServiceContext, analysis_id: str) -> list[ResultDelivery]:
    with ctx.sessions() as s:
        return list(s.scalars(select(ResultDelivery).where(ResultDelivery.analysis_id == analysis_id)))


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.mark.parametrize("source", ["slab", "lidc0001"])
def test_orthanc_sends_the_scan_lungcad_delivers_seg_sr_pdf_back(
    servers: dict[str, Any], tmp_path: Path, source: str, request: pytest.FixtureRequest
) -> None:
    """``lungcad dicom-listener`` and ``lungcad worker`` as processes (SQLite database and queue in one data
    folder), the settings from ``LUNGCAD_*`` variables as a deployment sets them.  ``slab``: the bundled
    slab of LIDC-IDRI-0001; ``lidc0001``: its whole series from the real data (skipped without it)."""
    files = SLAB_FILES if source == "slab" else sorted(request.getfixturevalue("lidc0001_dir").glob("*.dcm"))
    a, b = servers["a"], servers["b"]
    t0 = time.perf_counter()
    destinations = [
        {"name": "orthanc-a", "kind": "cstore", "host": "127.0.0.1", "port": a.dicom_port,
         "called_ae": a.aet},
        {"name": "orthanc-b", "kind": "stowrs", "url": b.dicomweb},
        {"name": "late", "kind": "stowrs", "url": f"http://127.0.0.1:{servers['late_port']}/dicom-web",
         "objects": ["sr"], "backoff_s": 0.5, "max_attempts": 12},
        {"name": "wrong", "kind": "stowrs", "url": f"{b.url}/no-such-root", "objects": ["sr"],
         "backoff_s": 0.5},
    ]  # fmt: skip
    data_dir = tmp_path / "lungcad"
    env = service_env(
        data_dir,
        delivery_destinations=json.dumps(destinations),
        dicom_ae_title=LISTENER_AET,
        dicom_port=str(servers["listener_port"]),
        dicom_allowed_aets=a.aet,
        dicom_stable_s="1",
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    ctx = open_context(load_settings(data_dir, environ=env))  # migrates before the processes start
    started: list[LiveProcess] = []
    late: Orthanc | None = None
    try:
        worker = spawn_worker(data_dir, env, logs / "worker.log")
        started.append(worker)
        listener = LiveProcess(
            "dicom-listener", [*lungcad_cli(), "dicom-listener", "--data-dir", str(data_dir)], env,
            logs / "listener.log",
        )  # fmt: skip
        started.append(listener)
        _wait("the DICOM listener", lambda: _listening(servers["listener_port"]), START_TIMEOUT_S)
        wait_worker(worker)
        ready_s = time.perf_counter() - t0
        _upload(b, files)
        study_a = _upload(a, files)
        a.post("/modalities/lungcad/store", content=study_a)  # synchronous: every instance sent

        def done() -> Analysis | None:
            with ctx.sessions() as s:
                row = s.scalars(select(Analysis)).first()
            if row is not None:
                assert row.status not in (AnalysisStatus.FAILED, AnalysisStatus.CANCELLED), row.error
            return row if row is not None and row.status is AnalysisStatus.DONE else None

        analysis = _wait("the analysis", done, ANALYSIS_TIMEOUT_S, tick_s=0.5)
        assert analysis.report  # DICOM in, DICOM out
        analysed_s = time.perf_counter() - t0

        def late_failed_twice() -> bool:
            return any(d.destination == "late" and d.attempts >= 2 for d in _deliveries(ctx, analysis.id))

        _wait("two failed attempts to the late destination", late_failed_twice, DELIVERY_TIMEOUT_S)
        late = start_orthanc(tmp_path / "orthanc-c", name="c", modalities={}, http_port=servers["late_port"])

        def settled() -> list[ResultDelivery]:
            found = _deliveries(ctx, analysis.id)
            return found if found and all(d.status is not ResultDeliveryStatus.PENDING for d in found) else []

        rows = {(d.destination, d.object_kind): d for d in _wait("deliveries", settled, DELIVERY_TIMEOUT_S)}
        delivered_s = time.perf_counter() - t0
        assert worker.stop() == 0, worker.tail()  # stopped before the retry route below
    except BaseException:
        for proc in started:
            print(f"--- {proc.name} log ---\n{proc.tail()}")
        raise
    finally:
        for proc in started:
            proc.kill()
        if late is not None:
            late.stop()
    print(f"timings: ready {ready_s:.1f} s, analysed {analysed_s:.1f} s, delivered {delivered_s:.1f} s")

    # the delivery log: both PACS got all three objects on the first attempt
    for dest in ("orthanc-a", "orthanc-b"):
        for kind in ("seg", "sr", "pdf"):
            row = rows[(dest, kind)]
            assert (row.status, row.attempts, row.last_error) == (ResultDeliveryStatus.DELIVERED, 1, None), (
                row
            )
    late_row, wrong_row = rows[("late", "sr")], rows[("wrong", "sr")]
    assert late_row.status is ResultDeliveryStatus.DELIVERED and 3 <= late_row.attempts < 12
    assert (wrong_row.status, wrong_row.attempts, wrong_row.last_status) == (
        ResultDeliveryStatus.FAILED,
        1,
        404,
    )
    assert set(rows) == {*[(d, k) for d in ("orthanc-a", "orthanc-b") for k in ("seg", "sr", "pdf")],
                         ("late", "sr"), ("wrong", "sr")}  # fmt: skip

    # in each Orthanc: SEG + SR + PDF under the CT's study, referencing the CT series, the SEG and the SR
    ct_sops = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in files}
    uids_a = _check_references(_objects(a, STUDY_UID), ct_sops)
    uids_b = _check_references(_objects(b, STUDY_UID), ct_sops)
    assert uids_a == uids_b == {k: rows[("orthanc-a", k)].sop_instance_uid for k in ("seg", "sr", "pdf")}
    assert len(a.get(f"/studies/{study_a}/series")) == 4  # the CT and the three results, nothing else

    # the API shows the log (a viewer may read it) and the retry route re-queues the permanent failure
    with transaction(ctx.sessions) as s:
        viewer, admin = create_key(s, "viewer").key, create_key(s, "admin").key
    with TestClient(create_app(ctx=ctx)) as client:
        r = client.get(f"{API}/analyses/{analysis.id}/deliveries", headers={"X-API-Key": viewer})
        assert r.status_code == 200, r.text
        items = {(i["destination"], i["object"]): i for i in r.json()["items"]}
        assert items[("wrong", "sr")]["status"] == "failed" and items[("wrong", "sr")]["last_status"] == 404
        assert items[("orthanc-b", "seg")]["sop_instance_uid"] == uids_b["seg"]
        r = client.post(f"{API}/analyses/{analysis.id}/deliveries/retry", headers={"X-API-Key": admin})
        assert r.status_code == 200, r.text
        again = {(i["destination"], i["object"]): i for i in r.json()["items"]}
        assert again[("wrong", "sr")]["status"] == "pending" and again[("wrong", "sr")]["attempts"] == 0
        assert again[("orthanc-a", "seg")]["status"] == "delivered"
    ctx.close()
