"""The Detector end to end on tiny models: outputs, CLI, and every bad input it must survive."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from lungcad.cli import main
from lungcad.config import load_config
from lungcad.errors import InputError
from lungcad.infer.detector import Detector
from lungcad.infer.outputs import write_result_json
from lungcad.infer.properties import equivalent_diameter
from lungcad.io.image import save_volume
from lungcad.model.bundle import ModelBundle, save_bundle
from lungcad.model.unet import LungUNet
from lungcad.types import SCHEMA_VERSION, CheckStatus, CTVolume, DiameterSource, LungRads, ScanStatus, Texture
from tests.conftest import REPO, make_phantom

SLAB = REPO / "tests" / "data" / "lidc_slab_0001"


def published_schema() -> dict:
    return json.loads((REPO / "docs" / "schema" / f"scan_result-{SCHEMA_VERSION}.json").read_text())


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = load_config(
        overrides={
            "model": {"widths": [4, 8, 8, 8], "depth": 1},
            "infer": {"patch_size": [48, 48, 48], "peak_threshold": 0.0},
        },
        environ={},
    )
    import torch

    torch.manual_seed(0)  # module-scoped: built before the per-test seeding fixture runs
    model = LungUNet.from_config(cfg.model).eval()

    with torch.no_grad():  # make the heatmap head fire a little so findings flow through every stage
        model.heads.bias[1] = 0.0
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    return save_bundle(ModelBundle(model, cfg, "tiny", "0.0", cfg.config_hash()), path)


def test_detect_real_slab_end_to_end(tiny_model: Path, tmp_path: Path) -> None:
    det = Detector.load(tiny_model)
    run = det.run(SLAB)
    r = run.result
    assert r.model_id == "tiny" and r.series_uid.endswith("603192")
    assert set(r.timings_s) >= {"load", "preprocess", "network", "postprocess", "total"}
    # a slab fails lung coverage: flagged, still analysed
    assert r.qa.get("lung_coverage").status is CheckStatus.FAIL and r.status is ScanStatus.QA_WARNING
    # ... and the result says which check failed, so a reader knows why to take care
    assert r.reason is not None and r.reason.startswith("lung_coverage: ")
    assert isinstance(r.priority, LungRads)
    assert len(r.findings) <= det.cfg.infer.top_k
    for f in r.findings:
        assert 0.0 <= f.probability <= 1.0 and f.diameter_mm >= det.cfg.infer.min_diameter_mm
        assert isinstance(f.lung_rads, LungRads) and isinstance(f.texture, Texture)
        assert f.diameters is not None and f.hu_stats is not None and f.raw_probability is not None
        # diameter and volume describe the same estimate (issue 9 defect 10)
        if f.diameters.source is DiameterSource.SEGMENTATION:
            assert f.diameter_mm == f.diameters.segmentation_mm
            assert equivalent_diameter(f.volume_mm3) == pytest.approx(f.diameter_mm, abs=0.02)
        else:
            assert f.diameter_mm == f.diameters.size_head_mm
            assert f.volume_mm3 == pytest.approx(np.pi / 6 * f.diameter_mm**3, abs=0.05)
        if f.mask is not None:
            assert f.mask_ref is not None and f.mask.shape == f.mask_ref.shape_zyx
        # the voxel centre is in the original scan's grid
        np.testing.assert_allclose(run.volume.voxel_to_world(f.center_zyx_vox), f.center_xyz_mm, atol=1e-6)


def test_detect_cli_writes_outputs(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["detect", str(SLAB), "--model", str(tiny_model), "--out", str(tmp_path / "o"), "--json"])
    assert code == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    jsonschema.validate(doc, published_schema())  # stdout is exactly a result document of schema 2.0
    assert doc["schema_version"] == SCHEMA_VERSION and "findings" in doc and "outputs" not in doc
    assert f"wrote result: {tmp_path / 'o' / 'result.json'}" in " ".join(captured.err.split())
    assert json.loads((tmp_path / "o" / "result.json").read_text()) == doc
    assert (tmp_path / "o" / "result.json").exists() and (tmp_path / "o" / "candidates.csv").exists()
    rows = (tmp_path / "o" / "candidates.csv").read_text().splitlines()
    assert rows[0] == "seriesuid,coordX,coordY,coordZ,probability" and len(rows) == len(doc["findings"]) + 1
    # key images are drawn for the findings a reader is shown (p >= infer.report_threshold), all others
    # stay in result.json and candidates.csv for FROC
    shown = [f for f in doc["findings"] if f["probability"] >= load_config(environ={}).infer.report_threshold]
    assert len(list((tmp_path / "o" / "key_images").glob("*.png"))) == len(shown)


def test_no_lung_gives_qa_failed_result_not_a_crash(tiny_model: Path, tmp_path: Path) -> None:
    block = CTVolume(np.full((30, 64, 64), 40.0, dtype=np.float32), (2.0, 2.0, 2.0))  # solid tissue
    r = Detector.load(tiny_model).detect(block)
    assert r.findings == [] and r.status is ScanStatus.QA_FAILED and "no lung" in (r.reason or "")
    assert r.priority is None and r.qa.get("lung_coverage").status is CheckStatus.FAIL
    jsonschema.validate(r.to_dict(), published_schema())


def test_volume_too_small(tiny_model: Path, tmp_path: Path) -> None:
    vol = make_phantom(shape=(3, 64, 64), spacing_zyx_mm=(1.0, 4.0, 4.0))  # 3 mm of chest
    path = save_volume(vol, tmp_path / "thin.nii.gz")
    with pytest.raises(InputError, match="too small to analyse"):
        Detector.load(tiny_model).detect(path)


def test_not_a_ct_and_missing_model(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["detect", str(tmp_path), "--model", str(tiny_model)]) == 2
    assert "no CT series found" in capsys.readouterr().err
    assert main(["detect", str(SLAB), "--model", str(tmp_path / "none.pt")]) == 2
    assert "model file not found" in capsys.readouterr().err


def test_result_json_matches_published_schema(tiny_model: Path, tmp_path: Path) -> None:
    run = Detector.load(tiny_model).run(SLAB)
    path = write_result_json(run.result, tmp_path / "result.json")
    doc = json.loads(path.read_text())
    jsonschema.validate(doc, published_schema())
    assert "mask" not in doc["findings"][0] and "mask_ref" in doc["findings"][0]  # arrays stay in memory


@pytest.mark.slow
def test_onnx_backend_matches_torch(tiny_model: Path) -> None:
    from lungcad.model.export import onnx_available

    if not onnx_available():
        pytest.skip("onnx / onnxscript / onnxruntime not installed (pip install 'lungcad[export]')")
    torch_run = Detector.load(tiny_model, bf16=False).run(SLAB)
    onnx_run = Detector.load(tiny_model, backend="onnx").run(SLAB)
    np.testing.assert_allclose(onnx_run.prediction.heatmap, torch_run.prediction.heatmap, rtol=0, atol=1e-4)
    np.testing.assert_allclose(
        onnx_run.prediction.segmentation, torch_run.prediction.segmentation, rtol=0, atol=1e-4
    )
    assert len(onnx_run.result.findings) == len(torch_run.result.findings)


def test_unknown_backend(tiny_model: Path) -> None:
    with pytest.raises(InputError, match="backend must be torch or onnx"):
        Detector.load(tiny_model, backend="tensorrt")


def test_corrupt_series_is_a_clear_error(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    series = tmp_path / "series"
    shutil.copytree(next(SLAB.glob("*/*")), series)
    victim = sorted(series.glob("*.dcm"))[3]
    victim.write_bytes(victim.read_bytes()[:-5000])  # pixel data cut short
    assert main(["detect", str(series), "--model", str(tiny_model)]) == 2
    err = capsys.readouterr().err
    assert victim.name in err and "pixel data" in err


def test_detect_cli_batch_reads_ahead_and_matches_single_runs(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``lungcad detect A B``: one sub-folder per scan, findings equal to running each scan alone."""
    from lungcad.io import load_ct

    copy = save_volume(load_ct(SLAB), tmp_path / "slab_copy.nii.gz")  # the same scan without a series UID
    out = tmp_path / "batch"
    args = ["--model", str(tiny_model), "--json"]
    assert main(["detect", str(SLAB), str(copy), "--out", str(out), *args]) == 0
    docs = json.loads(capsys.readouterr().out)
    assert main(["detect", str(SLAB), *args]) == 0
    single = json.loads(capsys.readouterr().out)
    assert len(docs) == 2

    def centres(doc: dict) -> list:
        return [f["center_xyz_mm"] for f in doc["findings"]]

    assert centres(docs[0]) == centres(single)
    np.testing.assert_allclose(centres(docs[1]), centres(single), atol=1e-6)
    assert all((out / doc["series_uid"] / "result.json").exists() for doc in docs)  # a folder per scan
    # an unreadable scan in a batch: exit 2 naming it, as without the read-ahead
    (tmp_path / "notes.txt").write_text("hello")
    bad = ["detect", str(SLAB), str(tmp_path / "notes.txt"), "--model", str(tiny_model), "--out", str(out)]
    assert main(bad) == 2
    assert "notes.txt" in capsys.readouterr().err
