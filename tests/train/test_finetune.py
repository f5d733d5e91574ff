"""Fine-tuning (``--init-from``) and training on several cohorts at once."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch

from lungcad.cli import main
from lungcad.data.cohort import read_cohorts
from lungcad.errors import InputError
from lungcad.evaluate.calibrate import calibration_records
from lungcad.model.bundle import ModelBundle, save_bundle
from lungcad.train.fit import fit, initial_weights
from tests.train.conftest import tiny_config, write_tiny_cohort


class WeightsAtStart(L.Callback):
    """Keeps a copy of the network weights as training starts."""

    def on_train_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        self.weights = {k: v.detach().clone() for k, v in pl_module.model.state_dict().items()}


def _first_run(cohort: Path, tmp_path: Path) -> Path:
    cfg = tiny_config(epochs=1, steps_per_epoch=2, hard_negatives_per_scan=0)
    fit(cfg, cohort, tmp_path / "a", cache_dir=tmp_path / "cache", use_mlflow=False, show_progress=False)
    return tmp_path / "a" / "last.ckpt"


def _model_weights(ckpt: Path) -> dict[str, torch.Tensor]:
    state = torch.load(ckpt, weights_only=False)["state_dict"]
    return {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}


@pytest.mark.slow
def test_init_from_checkpoint_and_model_file_starts_from_those_weights(
    tiny_cohort: Path, tmp_path: Path
) -> None:
    ckpt = _first_run(tiny_cohort, tmp_path)
    trained = _model_weights(ckpt)
    cfg = tiny_config(epochs=1, steps_per_epoch=1, hard_negatives_per_scan=0)
    start = WeightsAtStart()
    run = tmp_path / "b"
    fit(
        cfg,
        [tiny_cohort],
        run,
        init_from=ckpt,
        cache_dir=tmp_path / "cache",
        use_mlflow=False,
        show_progress=False,
        extra_callbacks=[start],
    )
    assert start.weights.keys() == trained.keys()
    for key, value in trained.items():
        assert torch.equal(start.weights[key], value), key
    assert json.loads((run / "run.json").read_text())["init_from"] == str(ckpt.resolve())

    # a model file (what `lungcad export-model` writes) works the same way
    from lungcad.model.unet import LungUNet

    net = LungUNet.from_config(cfg.model)
    net.load_state_dict(trained)
    model_file = save_bundle(ModelBundle(net, cfg, "t", "0", cfg.config_hash()), tmp_path / "m.pt")
    for key, value in initial_weights(model_file, cfg).items():
        assert torch.equal(value, trained[key]), key


@pytest.mark.slow
def test_init_from_refuses_another_architecture_and_resume(tiny_cohort: Path, tmp_path: Path) -> None:
    ckpt = _first_run(tiny_cohort, tmp_path)
    wider = tiny_config()
    wider = wider.model_copy(update={"model": wider.model.model_copy(update={"widths": [8, 8, 8, 8]})})
    with pytest.raises(InputError, match=r"model.widths is \[4, 8, 8, 8\] there"):
        initial_weights(ckpt, wider)
    with pytest.raises(InputError, match="a resumed run continues from its own last.ckpt"):
        fit(tiny_config(), tiny_cohort, tmp_path / "a", resume=True, init_from=ckpt, use_mlflow=False)
    with pytest.raises(InputError, match="initial weights not found"):
        initial_weights(tmp_path / "missing.pt", tiny_config())
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a lungcad training checkpoint"):
        initial_weights(junk, tiny_config())


def test_train_cli_without_data_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--run-dir", str(tmp_path / "r")]) == 2
    assert "no training data" in capsys.readouterr().err


def test_read_cohorts_merges_and_refuses_a_scan_twice(tiny_cohort: Path, tmp_path: Path) -> None:
    other = write_tiny_cohort(tmp_path / "other", n=2, uid_root="1.2.826.0.1.8")
    records = read_cohorts([tiny_cohort, other])
    assert len(records) == 5 and len({r.scan_id for r in records}) == 5
    with pytest.raises(InputError, match="is in two cohorts"):
        read_cohorts([tiny_cohort, tiny_cohort])
    with pytest.raises(InputError, match="no cohort folder given"):
        read_cohorts([])


@pytest.mark.slow
def test_run_on_two_cohorts_records_both_and_calibrates_on_its_split(
    tiny_cohort: Path, tmp_path: Path
) -> None:
    other = write_tiny_cohort(tmp_path / "other", n=2, uid_root="1.2.826.0.1.8")
    cfg = tiny_config(epochs=1, steps_per_epoch=1, hard_negatives_per_scan=0, val_fraction=0.4)
    run = tmp_path / "run"
    fit(cfg, [tiny_cohort, other], run, cache_dir=tmp_path / "cache", use_mlflow=False, show_progress=False)
    info = json.loads((run / "run.json").read_text())
    assert info["data_dirs"] == [str(tiny_cohort.resolve()), str(other.resolve())]
    split = json.loads((run / "splits.json").read_text())
    assert len(split["train"]) + len(split["val"]) == 5 and len(split["val"]) == 2
    assert sorted(r.scan_id for r in calibration_records(run)) == sorted(split["val"])


def test_export_model_refuses_a_missing_or_foreign_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.pt"
    assert main(["export-model", "--checkpoint", str(tmp_path / "none.ckpt"), "--out", str(out)]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    junk = tmp_path / "junk.ckpt"
    torch.save({"weights": torch.zeros(2)}, junk)  # a readable torch file, but not a training checkpoint
    assert main(["export-model", "--checkpoint", str(junk), "--out", str(out)]) == 2
    assert "not a lungcad training checkpoint" in capsys.readouterr().err
    assert not out.exists()
