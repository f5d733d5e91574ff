"""The DICOM listener over real networking on loopback: a pynetdicom SCU talks to ``DicomListener`` (port 0,
a free one) -- C-ECHO, C-STORE of the bundled LIDC slab (real DICOM), a calling AE title not allowed, a
non-CT SOP class, the stable delay queueing one analysis, a re-send stored once -- and the stored study is
compared with the same slab uploaded through ``POST /studies``.  One test runs ``lungcad dicom-listener`` as
a subprocess.
"""

from __future__ import annotations

import io
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from fastapi.testclient import TestClient
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, MRImageStorage, Verification
from sqlalchemy import select

from lungcad.service.app import create_app
from lungcad.service.context import ServiceContext, open_context
from lungcad.service.db.models import Analysis, AnalysisStatus, Instance
from lungcad.service.db.session import transaction
from lungcad.service.dicom_listener import DicomListener
from lungcad.service.security import create_key
from lungcad.service.settings import load_settings
from tests.service.processes import free_port
from tests.service.uploads import API, SERIES_UID, SLAB_FILES, STUDY_UID, form, retagged, stored

CALLING = "TEST_SCU"
STABLE_S = 0.6


@pytest.fixture
def lctx(tmp_path: Path) -> Iterator[ServiceContext]:
    """A data folder whose queue is the SQLite Huey (``queue_immediate`` off): a queued analysis stays
    queued, no detector runs in the test."""
    context = open_context(load_settings(tmp_path / "listener", environ={}, dicom_stable_s=STABLE_S))
    yield context
    context.close()


@pytest.fixture
def listener(lctx: ServiceContext) -> Iterator[DicomListener]:
    with DicomListener(lctx, host="127.0.0.1", port=0, allowed_aets=(CALLING,)) as scp, scp.polling():
        yield scp


def associate(scp: DicomListener, *contexts: str, calling: str = CALLING) -> Any:
    ae = AE(ae_title=calling)
    for c in contexts:
        ae.add_requested_context(c)
    return ae.associate("127.0.0.1", scp.port, ae_title=scp.ae_title)


def send(scp: DicomListener, datasets: list[pydicom.Dataset]) -> list[int]:
    assoc = associate(scp, CTImageStorage)
    assert assoc.is_established
    try:
        return [int(assoc.send_c_store(ds).Status) for ds in datasets]
    finally:
        assoc.release()


def wait_outcomes(scp: DicomListener, n: int, timeout_s: float = 15.0) -> list[Any]:
    end = time.monotonic() + timeout_s
    while len(scp.inbox.outcomes) < n:
        assert time.monotonic() < end, f"{len(scp.inbox.outcomes)} stable studies processed, wanted {n}"
        time.sleep(0.05)
    return scp.inbox.outcomes


def analyses(ctx: ServiceContext) -> list[Analysis]:
    with ctx.sessions() as s:
        return list(s.scalars(select(Analysis)))


def slab() -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p) for p in SLAB_FILES]


def test_c_echo_succeeds(listener: DicomListener) -> None:
    assoc = associate(listener, Verification)
    assert assoc.is_established
    status = assoc.send_c_echo()
    assoc.release()
    assert int(status.Status) == 0x0000


def test_a_calling_ae_title_not_allowed_is_rejected(listener: DicomListener) -> None:
    assoc = associate(listener, Verification, calling="INTRUDER")
    assert assoc.is_rejected and not assoc.is_established
    assert stored(listener.ctx).nothing


def test_a_non_ct_sop_class_is_refused(listener: DicomListener) -> None:
    assoc = associate(listener, MRImageStorage, Verification)
    assert assoc.is_established  # the association stands for what is supported (C-ECHO) ...
    try:
        accepted = {c.abstract_syntax for c in assoc.accepted_contexts}
        rejected = {c.abstract_syntax for c in assoc.rejected_contexts}
        assert MRImageStorage in rejected and MRImageStorage not in accepted and Verification in accepted
        mr = pydicom.dcmread(io.BytesIO(retagged(1, limit=1, Modality="MR")[0]))
        with pytest.raises(ValueError, match="presentation context"):  # ... but an MR image has no way in
            assoc.send_c_store(mr)
    finally:
        assoc.release()
    time.sleep(STABLE_S + 0.3)
    assert stored(listener.ctx).nothing and not listener.inbox.outcomes


def test_the_slab_is_stored_as_an_upload_then_one_analysis_is_queued(
    listener: DicomListener, client: TestClient, admin_headers: dict[str, str]
) -> None:
    lctx = listener.ctx
    assert send(listener, slab()) == [0x0000] * len(SLAB_FILES)
    assert analyses(lctx) == []  # not stable yet: nothing analysed while the study may still grow
    (out,) = wait_outcomes(listener, 1)
    assert (out.n_files, out.n_stored, out.n_duplicates, out.refused) == (
        len(SLAB_FILES),
        len(SLAB_FILES),
        0,
        None,
    )
    now = stored(lctx)
    assert (now.studies, now.series, now.instances, now.blobs, now.tmp) == (
        1,
        1,
        len(SLAB_FILES),
        len(SLAB_FILES),
        (),
    )
    assert not any((lctx.storage.root / "dicom_inbox").iterdir())  # the inbox is emptied

    # the same study as POST /studies makes it (the conftest client: another data folder), read by the API
    up = client.post(
        f"{API}/studies", files=form(*((p.name, p.read_bytes()) for p in SLAB_FILES)), headers=admin_headers
    )
    assert up.status_code == 201, up.text
    with transaction(lctx.sessions) as s:
        key = create_key(s, "admin").key
    with TestClient(create_app(ctx=lctx)) as lc:
        got = lc.get(f"{API}/studies/{out.study_id}", headers={"X-API-Key": key})
    assert got.status_code == 200, got.text
    want = client.get(f"{API}/studies/{up.json()['id']}", headers=admin_headers).json()
    # total_bytes differs by a few bytes an instance: a received file carries the listener's File Meta
    # (Implementation Class UID / Version Name, PS3.10 7.1), not the exporter's; it is checked below
    skip = {"id", "created_at", "updated_at", "state", "latest_analysis", "analyses", "total_bytes"}
    a, b = got.json(), want
    assert {k: v for k, v in a.items() if k not in skip} == {k: v for k, v in b.items() if k not in skip}
    assert a["study_uid"] == STUDY_UID and [x["series_uid"] for x in a["series"]] == [SERIES_UID]
    assert a["series"][0]["usable"] is True and a["series"][0]["n_instances"] == len(SLAB_FILES)

    # the stored blobs are the received instances: same pixels, same UIDs as the files sent
    with lctx.sessions() as s:
        rows = s.execute(select(Instance.sop_uid, Instance.blob)).all()
    by_sop = {sop: lctx.storage.blob_path(digest) for sop, digest in rows}
    for ds in slab():
        blob = pydicom.dcmread(by_sop[str(ds.SOPInstanceUID)])
        assert blob.PixelData == ds.PixelData and blob.SeriesInstanceUID == ds.SeriesInstanceUID
    assert a["total_bytes"] == sum(p.stat().st_size for p in by_sop.values())
    assert abs(a["total_bytes"] - b["total_bytes"]) < 64 * len(SLAB_FILES)

    (row,) = analyses(lctx)  # once per stable study, queued as POST /analyses queues it
    assert (row.study_id, row.series_uid, row.status) == (out.study_id, SERIES_UID, AnalysisStatus.QUEUED)
    assert lctx.queue.pending_count() == 1  # the job is in the Huey queue

    # sending the same instances again: stored once, no second analysis
    assert send(listener, slab()[:5]) == [0x0000] * 5
    second = wait_outcomes(listener, 2)[1]
    assert (second.n_stored, second.n_duplicates, second.analysis_id) == (0, 5, None)
    now = stored(lctx)
    assert (now.studies, now.instances, now.blobs) == (1, len(SLAB_FILES), len(SLAB_FILES))
    assert len(analyses(lctx)) == 1


def test_a_study_sent_in_two_associations_is_one_study(listener: DicomListener) -> None:
    files = slab()
    assert send(listener, files[:8]) == [0] * 8
    assert send(listener, files[8:]) == [0] * (len(files) - 8)  # within the stable delay: the same round
    (out,) = wait_outcomes(listener, 1)
    assert out.n_stored == len(files)
    assert len(analyses(listener.ctx)) == 1


def test_the_cli_listener_answers_c_echo(tmp_path: Path) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "lungcad", "dicom-listener", "--data-dir", str(tmp_path / "d")]
    cmd += ["--port", str(port), "--ae-title", "CADTEST", "--allowed-aet", CALLING, "--stable-seconds", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ae = AE(ae_title=CALLING)
        ae.add_requested_context(Verification)
        end = time.monotonic() + 20
        while True:
            assoc = ae.associate("127.0.0.1", port, ae_title="CADTEST")
            if assoc.is_established or time.monotonic() > end or proc.poll() is not None:
                break
            time.sleep(0.2)
        assert assoc.is_established, proc.stderr.read() if proc.poll() is not None else "no association"
        assert int(assoc.send_c_echo().Status) == 0
        assoc.release()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode in (0, -15), err
    assert "CADTEST" in err  # the start-up line names the AE title and port


def test_a_port_in_use_is_a_clear_error(lctx: ServiceContext) -> None:
    from lungcad.errors import InputError

    with DicomListener(lctx, host="127.0.0.1", port=0) as first:
        with pytest.raises(InputError, match="cannot listen on 127.0.0.1"):
            DicomListener(lctx, host="127.0.0.1", port=first.port).start()


def test_a_late_slice_rearms_the_study_and_is_judged_with_its_series(listener: DicomListener) -> None:
    files = slab()
    assert send(listener, files[:-1]) == [0] * (len(files) - 1)
    first = wait_outcomes(listener, 1)[0]
    assert (first.n_stored, first.refused) == (len(files) - 1, None)
    # one slice alone is not a CT volume: it is stored because the stored series is judged with it
    assert send(listener, files[-1:]) == [0]
    second = wait_outcomes(listener, 2)[1]
    assert (second.n_stored, second.n_duplicates, second.refused) == (1, 0, None)
    assert stored(listener.ctx).instances == len(files)
    assert len(analyses(listener.ctx)) == 2  # the study changed: analysed again, once


def test_no_phi_in_the_listener_logs(listener: DicomListener, tmp_path: Path) -> None:
    from tests.service.helpers_phi import phi_copy, phi_in
    from tests.service.test_phi import captured_logs

    with captured_logs() as logs:
        assert send(listener, [pydicom.dcmread(p) for p in phi_copy(tmp_path / "phi")]) == [0] * len(
            SLAB_FILES
        )
        (out,) = wait_outcomes(listener, 1)
    assert out.n_stored == len(SLAB_FILES)
    text = logs["structlog"].getvalue()
    assert "dicom_study_processed" in text  # the capture saw the listener's own lines
    assert not phi_in(text), phi_in(text)
    assert not phi_in("\n".join(logs["logging"].lines)), phi_in("\n".join(logs["logging"].lines))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--ae-title", "A" * 17], "dicom_ae_title"),
        (["--ae-title", "BAD\\AE"], "dicom_ae_title"),
        (["--port", "0"], "dicom_port"),
        (["--allowed-aet", ""], "dicom_allowed_aets"),
        (["--stable-seconds", "0"], "dicom_stable_s"),
    ],
)
def test_bad_listener_options_exit_2_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    from lungcad.cli import main

    data = tmp_path / "d"
    assert main(["dicom-listener", "--data-dir", str(data), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Fix:" in err and "Traceback" not in err
    assert not (data / "lungcad.db").exists()  # refused before touching anything


def test_a_storage_failure_keeps_the_files_and_retries_the_study(lctx: ServiceContext) -> None:
    blobs = lctx.storage.blobs
    with DicomListener(lctx, host="127.0.0.1", port=0) as scp:  # polled by hand: no thread
        assert send(scp, slab()[:4]) == [0] * 4
        time.sleep(STABLE_S)
        blobs.rename(blobs.with_name("away"))
        blobs.write_bytes(b"")  # a file where the blob folder should be: storing fails (even as root)
        try:
            with pytest.raises(OSError):
                scp.poll()
        finally:
            blobs.unlink()
            blobs.with_name("away").rename(blobs)
        assert scp.inbox.pending() == [STUDY_UID]  # re-armed, the received files still there
        assert len(list((lctx.storage.root / "dicom_inbox" / STUDY_UID).glob("*.dcm"))) == 4
        assert stored(lctx).studies == 0
        time.sleep(STABLE_S)
        (out,) = scp.poll()
    assert (out.n_stored, out.refused) == (4, None)
    assert stored(lctx).instances == 4 and len(analyses(lctx)) == 1
