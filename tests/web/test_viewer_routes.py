"""The routes the viewer loads: the analysed series as NIfTI on the input grid (int16 HU), the label map on
the same grid (label n = finding n of the report; all zeros for an analysis without the report) and the
findings numbered as the report numbers them.  The analyses run in-process on the bundled slab."""

from __future__ import annotations

import gzip

import numpy as np
import SimpleITK as sitk
from fastapi.testclient import TestClient

from lungcad.io.load import load_ct
from tests.service.conftest import SLAB
from tests.service.uploads import slab_bytes

API = "/api/v1"


def _nifti(body: bytes, tmp_path, name: str) -> sitk.Image:
    assert body[:2] == b"\x1f\x8b"  # gzip
    assert int.from_bytes(gzip.decompress(body)[:4], "little") == 348  # a NIfTI-1 header
    path = tmp_path / name
    path.write_bytes(body)
    return sitk.ReadImage(str(path))


def test_volume_labels_and_numbered_findings(client: TestClient, make_key, tmp_path) -> None:
    admin = {"X-API-Key": make_key("admin")}
    up = client.post(
        f"{API}/studies",
        files=[("files", (f"{i}.dcm", d)) for i, d in enumerate(slab_bytes())],
        headers=admin,
    )
    assert up.status_code == 201, up.text
    study_id = up.json()["id"]
    made = client.post(f"{API}/analyses", json={"study_id": study_id, "report": True}, headers=admin)
    aid = made.json()["id"]
    assert client.get(f"{API}/analyses/{aid}", headers=admin).json()["status"] == "done"

    vol = client.get(f"{API}/analyses/{aid}/volume.nii.gz", headers=admin)
    assert vol.status_code == 200 and vol.headers["content-type"] == "application/gzip"
    image = _nifti(vol.content, tmp_path, "ct.nii.gz")
    expected = load_ct(next(p for p in SLAB.iterdir() if p.is_dir()))
    hu = sitk.GetArrayFromImage(image)
    assert hu.dtype == np.int16 and hu.shape == expected.shape
    assert np.array_equal(hu, np.rint(expected.hu).astype(np.int16))
    assert np.allclose(image.GetSpacing(), expected.spacing_xyz_mm, atol=1e-4)
    # SimpleITK reads NIfTI back into LPS: the same world placement as the DICOM series
    assert np.allclose(image.GetOrigin(), expected.origin_xyz_mm, atol=1e-3)
    again = client.get(f"{API}/analyses/{aid}/volume.nii.gz", headers=admin)
    assert again.content == vol.content  # served from the viewer cache

    shown = client.get(f"{API}/analyses/{aid}/shown-findings", headers=admin).json()
    assert shown["findings"], shown  # the slab's nodule is found
    assert [f["number"] for f in shown["findings"]] == list(range(1, len(shown["findings"]) + 1))
    assert all(f["probability"] >= shown["min_probability"] for f in shown["findings"])
    labels = client.get(f"{API}/analyses/{aid}/labels.nii.gz", headers=admin)
    assert labels.headers["x-lungcad-labels"] == "stored"
    lab = sitk.GetArrayFromImage(_nifti(labels.content, tmp_path, "labels.nii.gz"))
    assert lab.shape == hu.shape
    first = shown["findings"][0]
    result = client.get(f"{API}/analyses/{aid}/result", headers=admin).json()
    z, y, x = (round(v) for v in result["findings"][first["index"]]["center_zyx_vox"])
    assert lab[z, y, x] == 1  # label 1 lies at finding 1's centre

    # without the report: an all-zero map on the same grid; a viewer key may load both
    plain = client.post(
        f"{API}/analyses", json={"study_id": study_id, "model": None, "report": False}, headers=admin
    ).json()["id"]
    viewer = {"X-API-Key": make_key("viewer")}
    none = client.get(f"{API}/analyses/{plain}/labels.nii.gz", headers=viewer)
    assert none.status_code == 200 and none.headers["x-lungcad-labels"] == "none"
    assert not sitk.GetArrayFromImage(_nifti(none.content, tmp_path, "none.nii.gz")).any()
    # a service key (no study.read) may not load the pixels; unknown analyses are 404
    assert (
        client.get(
            f"{API}/analyses/{aid}/volume.nii.gz", headers={"X-API-Key": make_key("service")}
        ).status_code
        == 403
    )
    assert client.get(f"{API}/analyses/nope/volume.nii.gz", headers=admin).status_code == 404
