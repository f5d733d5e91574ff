"""The docs site builds with ``mkdocs build --strict`` (no warning of any kind), and its generated reference
pages hold what the code has: every CLI command and option, every configuration key, every service setting,
every route, the permission matrix, every ``result.json`` field."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
MKDOCS = Path(sys.executable).parent / "mkdocs"
PAGES = (  # a few of the built site's files, hand-written and generated
    "index.html",
    "getting_started/index.html",
    "api_guide/index.html",
    "outputs/index.html",
    "reference/cli/index.html",
    "reference/config/index.html",
    "reference/troubleshooting/index.html",
    "reference/model_card/index.html",
    "reference/openapi.json",
    "reference/scan_result.json",
    "whitepaper/index.html",
    "deploy/index.html",
)


def _gen_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", REPO / "scripts" / "gen_docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    return _gen_docs().pages()


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    if not MKDOCS.exists():
        pytest.skip(f"mkdocs is not installed in {MKDOCS.parent} (make setup installs the docs extra)")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    run = subprocess.run(
        [str(MKDOCS), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-5000:]
    warnings = [line for line in log.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert not warnings, "\n".join(warnings)
    site = tmp_path / "site"
    for page in PAGES:
        assert (site / page).is_file(), page
    assert "lungcad detect" in (site / "reference" / "cli" / "index.html").read_text()


# the hand-written pages (the others are generated, or owned by their guides)
HAND_WRITTEN = ("index.md", "getting_started.md", "api_guide.md", "outputs.md", "whitepaper.md")


@pytest.mark.parametrize("page", HAND_WRITTEN)
def test_nested_lists_are_indented_four_spaces(page: str) -> None:
    """Python-Markdown (mkdocs and the whitepaper PDF) nests a list item only under 4 spaces of indent; 1-3
    spaces silently flatten it into its parent list."""
    fence, bad = False, []
    for n, line in enumerate((REPO / "docs" / page).read_text().splitlines(), 1):
        fence ^= line.startswith("```")
        if not fence and re.match(r"^( {1,3}| {5,7})(- |\d+\. )", line):
            bad.append(n)
    assert not bad, f"docs/{page}: list items at lines {bad} are indented by other than a multiple of 4"


def test_cli_reference_has_every_command_and_option(pages: dict[str, str]) -> None:
    import typer.main

    from lungcad.cli import build_app

    text = pages["cli.md"]

    def walk(cmd, path: list[str]) -> None:  # noqa: ANN001 - a typer command or group
        assert f"`{' '.join(path)}`" in text, path
        for p in cmd.params:
            if p.param_type_name == "option" and not p.hidden:
                assert f"`{', '.join([*p.opts, *p.secondary_opts])}`" in text, (path, p.opts)
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(build_app()), ["lungcad"])
    assert "`--min-probability` | float range in [0.0, 1.0]" in text  # a range shown


def test_config_reference_has_every_key_with_its_range(pages: dict[str, str]) -> None:
    from lungcad.config import LungcadConfig

    text = pages["config.md"]

    def walk(model: type, path: list[str]) -> None:
        for name, field in model.model_fields.items():
            if hasattr(field.annotation, "model_fields"):  # a (nested) section
                assert f"# `{'.'.join([*path, name])}`" in text
                walk(field.annotation, [*path, name])
            else:
                env = "__".join(p.upper() for p in [*path, name])
                assert f"`LUNGCAD_{env}`" in text, (path, name)

    walk(LungcadConfig, [])
    # a hand-checked row: preprocess.target_spacing_mm = Field(1.0, gt=0.1, le=5.0, description=...)
    assert "| `target_spacing_mm` | float | `1.0` | > 0.1, <= 5.0 | isotropic resampling voxel (mm) |" in text


def test_settings_reference_has_every_setting(pages: dict[str, str]) -> None:
    from lungcad.service.settings import ServiceSettings

    text = pages["service_settings.md"]
    for name in ServiceSettings.model_fields:
        assert f"`LUNGCAD_{name.upper()}`" in text, name
    assert "| `port` | int | `8000` | >= 1, <= 65535 |" in text


def test_openapi_rbac_and_schema_pages_are_the_codes(pages: dict[str, str]) -> None:
    import json

    from lungcad.infer.schema import scan_result_schema
    from lungcad.service.openapi import openapi_document
    from lungcad.service.security import permission_table

    doc = openapi_document()
    assert json.loads(pages["openapi.json"]) == doc
    for path, item in doc["paths"].items():
        for method in item:
            assert f"| `{method.upper()}` | `{path}` |" in pages["openapi.md"], (method, path)
    assert pages["rbac.md"].endswith(permission_table())
    schema = scan_result_schema()
    assert json.loads(pages["scan_result.json"]) == schema
    for name in schema["properties"]:
        assert f"| `{name}` |" in pages["result_schema.md"], name
    for name in schema["$defs"]["Finding"]["properties"]:
        assert f"| `findings[].{name}` |" in pages["result_schema.md"], name


def test_troubleshooting_lists_the_bad_input_catalogue(pages: dict[str, str]) -> None:
    text = pages["troubleshooting.md"]
    # tests/service/test_api_bad_input.py: refused(r, 415, "not_dicom", "not DICOM", "scan.dcm")
    assert "| not dicom | 415 `not_dicom` | `not DICOM`; `scan.dcm` | `test_not_dicom` |" in text
    # tests/io/test_bad_input.py: assert code == 2 and "folder is empty" in err and str(tmp_path) in err
    assert "| empty folder |  | `folder is empty` | `test_empty_folder` |" in text


def test_catalogue_extraction_on_a_hand_made_module(tmp_path: Path) -> None:
    mod = tmp_path / "test_x.py"
    mod.write_text(
        "def test_bad_thing():\n"
        '    """A bad thing."""\n'
        '    assert "is bad" in err and "Fix:" in err\n'
        "def test_api(client):\n"
        '    refused(r, 422, "no_good", "word one", "word two")\n'
        "def test_good_input_still_works():\n"
        "    assert code == 0\n"
        "def helper():\n"
        '    assert "ignored" in x\n'
    )
    got = list(_gen_docs().catalogue_entries(mod))
    assert got == [
        ("test_bad_thing", "A bad thing.", ["is bad"], []),
        ("test_api", "", ["word one", "word two"], ["422 `no_good`"]),
    ]


def test_generate_rewrites_only_what_changed(tmp_path: Path) -> None:
    gen = _gen_docs()
    first = gen.generate(tmp_path)
    assert {p.name for p in first} == set(gen.pages())
    assert gen.generate(tmp_path) == []  # nothing changed: nothing rewritten (mkdocs serve would loop)


def test_yaml_comments_by_key_path() -> None:
    text = (
        "# header comment\n"
        "preprocess:\n"
        "  hu_min: -1000.0              # intensity window\n"
        "  hu_max: 400.0\n"
        "synth:                         # a section comment is not a key's\n"
        "  followup:\n"
        "    n: 3  # pairs\n"
        "  seed: 0 # cohort seed\n"
    )
    assert _gen_docs().yaml_comments(text) == {
        ("preprocess", "hu_min"): "intensity window",
        ("synth", "followup", "n"): "pairs",
        ("synth", "seed"): "cohort seed",
    }
