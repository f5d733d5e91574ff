"""``lungcad evaluate`` (detection over a cohort, FROC / CPM, per-nodule metrics, JSON + PNG report) and
``lungcad evaluate-froc`` (LUNA16 FROC / CPM of a detection CSV)."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from lungcad.annotations.luna16 import (
    read_luna16_annotations,
    read_luna16_excluded,
    read_luna16_seriesuids,
    read_luna16_submission,
)
from lungcad.cli.common import console, get_config, print_json
from lungcad.evaluate.froc import FrocResult, evaluate_froc
from lungcad.evaluate.froc_report import plot_froc, write_bootstrap_csv, write_froc_csv
from lungcad.fileio import atomic_write_json, check_output_dir, ensure_output_dir


def evaluate(
    data: Path = typer.Option(..., "--data", help="cohort folder (lungcad synth, LUNA16 or LIDC layout)"),
    model: Path | None = typer.Option(None, "--model", help="model file (default models/lungcad-default.pt)"),
    out: Path = typer.Option(Path("eval_out"), "--out", help="report folder"),
    threshold: float = typer.Option(0.5, "--threshold", help="operating point on the detection probability"),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="FROC bootstrap samples over scans (0: none)"),
    no_bf16: bool = typer.Option(False, "--no-bf16", help="run the network in fp32"),
    strict: bool = typer.Option(
        False, "--strict", help="stop at the first scan that cannot be analysed (default: record it, go on)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """FROC + CPM (LUNA16 rules, bootstrap CI), sensitivity by size and type, Dice, localisation and size
    error, triage AUC / calibration, Lung-RADS confusion; writes summary.json and PNGs to --out.

    A scan that cannot be analysed (e.g. a corrupt file) is listed as failed with its reason, in the table
    and in summary.json, and left out of the metrics; --strict stops at it instead (exit code 2)."""
    from lungcad.evaluate.cohort import evaluate_cohort
    from lungcad.infer.detector import Detector

    out = check_output_dir(out)  # before loading the model: a bad --out fails at once
    detector = Detector.load(model, bf16=not no_bf16, config=get_config())
    report = evaluate_cohort(
        data,
        out,
        detector,
        threshold=threshold,
        bootstrap=bootstrap,
        strict=strict,
        show_progress=not as_json,
    )
    if as_json:
        print_json(report.to_dict() | {"outputs": {k: str(v) for k, v in report.files.items()}})
        return
    froc = report.froc
    table = Table(title=f"FROC on {len(report.scans)} scans ({froc.counts.n_nodules} nodules)")
    for col in ("FPs/scan", *[f"{r:g}" for r in froc.fp_rates], "CPM"):
        table.add_column(col)
    table.add_row("sensitivity", *[f"{s:.3f}" for s in froc.sensitivities], f"{froc.cpm:.3f}")
    b = froc.bootstrap
    if b is not None:
        table.add_row(
            f"{b.confidence:.0%} CI",
            *[f"{lo:.2f}-{hi:.2f}" for lo, hi in zip(b.sensitivities_low, b.sensitivities_high, strict=True)],
            f"{b.cpm_low:.3f}-{b.cpm_high:.3f}",
        )
    console.print(table)
    if report.failed:
        failed = Table(title=f"{len(report.failed)} scan(s) could not be evaluated (left out of the metrics)")
        failed.add_column("scan")
        failed.add_column("reason", overflow="fold")
        for f in report.failed:
            failed.add_row(escape(f.scan_id), escape(f.reason))
        console.print(failed, style="yellow")
    console.print(f"report: {out} ({', '.join(sorted(p.name for p in report.files.values()))})")


def _froc_table(result: FrocResult) -> Table:
    b = result.bootstrap
    table = Table(title="LUNA16 FROC")
    table.add_column("FPs / scan")
    table.add_column("sensitivity")
    if b is not None:
        table.add_column(f"{100 * b.confidence:g} % CI (bootstrap, n={b.n_samples})")
    for k, (rate, sens) in enumerate(zip(result.fp_rates, result.sensitivities, strict=True)):
        row = [f"{rate:g}", f"{sens:.4f}"]
        if b is not None:
            row.append(f"{b.sensitivities_low[k]:.4f} - {b.sensitivities_high[k]:.4f}")
        table.add_row(*row)
    row = ["CPM", f"{result.cpm:.4f}"]
    if b is not None:
        row.append(f"{b.cpm_low:.4f} - {b.cpm_high:.4f}")
    table.add_row(*row, style="bold")
    return table


def evaluate_froc_cmd(
    annotations: Path = typer.Option(..., "--annotations", help="annotations.csv (nodules)"),
    excluded: Path = typer.Option(..., "--excluded", help="annotations_excluded.csv (irrelevant findings)"),
    seriesuids: Path = typer.Option(..., "--seriesuids", help="seriesuids.csv (the scans evaluated)"),
    candidates: Path = typer.Option(
        ..., "--candidates", help="detections: seriesuid,coordX,coordY,coordZ,probability"
    ),
    out: Path = typer.Option(Path("froc"), "--out", help="folder for froc.csv, froc.png, summary.json"),
    bootstrap: int | None = typer.Option(
        None, "--bootstrap", help="bootstrap samples (0 = none; default from config)"
    ),
    confidence: float = typer.Option(0.95, "--confidence", help="bootstrap interval coverage"),
    seed: int = typer.Option(0, "--seed", help="bootstrap seed"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """LUNA16 FROC / CPM of a detection result; writes the curve as CSV and PNG."""
    out = check_output_dir(out)  # before the work; created when the results are written
    cfg = get_config().evaluate
    with (
        console.status("reading annotations and candidates", spinner="dots") if not as_json else nullcontext()
    ):
        nodules = read_luna16_annotations(annotations)
        irrelevant = read_luna16_excluded(excluded)
        uids = read_luna16_seriesuids(seriesuids)
        cands = read_luna16_submission(candidates)
    samples = cfg.bootstrap_samples if bootstrap is None else bootstrap
    with (
        console.status(f"FROC with {samples} bootstrap samples", spinner="dots")
        if not as_json
        else nullcontext()
    ):
        result = evaluate_froc(
            nodules, irrelevant, uids, cands,
            max_candidates_per_scan=cfg.max_candidates_per_scan,
            fp_rates=cfg.fp_rates,
            excluded_unknown_diameter_mm=cfg.excluded_unknown_diameter_mm,
            bootstrap_samples=samples, confidence=confidence, seed=seed,
        )  # fmt: skip
    ensure_output_dir(out)
    outputs = {
        "curve_csv": out / "froc.csv",
        "curve_png": out / "froc.png",
        "summary_json": out / "summary.json",
    }
    write_froc_csv(result, outputs["curve_csv"])
    if result.bootstrap is not None:
        outputs["bootstrap_csv"] = out / "froc_bootstrap.csv"
        write_bootstrap_csv(result, outputs["bootstrap_csv"])
    plot_froc(result, outputs["curve_png"], title=f"FROC - {candidates.name}")
    summary = {**result.to_dict(), "outputs": {k: str(v) for k, v in outputs.items()}}
    atomic_write_json(outputs["summary_json"], summary)
    if as_json:
        print_json(summary)
        return
    console.print(_froc_table(result))
    c = result.counts
    console.print(
        f"scans {c.n_scans}, nodules {c.n_nodules}: TP {c.n_tp}, FN {c.n_fn}, FP {c.n_fp}, "
        f"ignored on excluded findings {c.n_ignored_excluded}, duplicate hits {c.n_duplicate_hits}, "
        f"dropped by the {cfg.max_candidates_per_scan}/scan cap {c.n_dropped_by_cap}, "
        f"on scans not evaluated {c.n_outside_series}"
    )
    if result.curve.fps_per_scan[-1] < result.fp_rates[-1]:
        console.print(
            f"[yellow]the detections reach only {result.curve.fps_per_scan[-1]:.3g} FPs/scan: the curve is "
            "extended flat at its last sensitivity up to 8[/]"
        )
    for key, path in outputs.items():
        console.print(f"wrote {key}: {escape(str(path))}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(evaluate)
    app.command("evaluate-froc")(evaluate_froc_cmd)
