"""Every example of the API guide (``docs/api_guide.md``) runs against a live service and succeeds.

The guide marks each runnable block with ``<!-- example: curl -->`` or ``<!-- example: python -->`` on the
line before its fence.  The test starts ``lungcad serve`` + ``lungcad worker`` on a loopback port the way
the service's end-to-end tests do (``tests.service.live``), creates an admin key, puts ``study.zip`` (the
bundled 16-slice LIDC-IDRI-0001 slab) in a fresh working folder, and runs the blocks in page order, each as
its own process with ``LUNGCAD_URL`` and ``LUNGCAD_KEY`` set: bash blocks with ``bash -euo pipefail``
(their curls use ``--fail``, so an HTTP error fails the block), Python blocks with this interpreter.  A
block that exits non-zero fails the test with its output.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.service.conftest import SLAB
from tests.service.live import live_services, service_env

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "api_guide.md"
MARKER = re.compile(r"^<!-- example: (curl|python) -->\n```(\w+)\n(.*?)^```$", re.M | re.S)
BLOCK_TIMEOUT_S = 600


@dataclass(frozen=True)
class Example:
    kind: str  # curl | python
    code: str
    line: int  # of the marker in the guide, for the failure message


def examples(text: str) -> list[Example]:
    """The marked blocks of ``text`` in page order; a marker whose fence language disagrees is an error."""
    found = []
    for m in MARKER.finditer(text):
        kind, lang, code = m.groups()
        expected = {"curl": "bash", "python": "python"}[kind]
        assert lang == expected, f"line {text[: m.start()].count(chr(10)) + 1}: {kind} example fenced {lang}"
        found.append(Example(kind, code, text[: m.start()].count("\n") + 1))
    return found


def test_the_marker_finds_every_example_and_only_those() -> None:
    text = GUIDE.read_text()
    found = examples(text)
    assert len(found) == text.count("<!-- example:"), "a marker not directly above a ``` fence"
    kinds = {e.kind for e in found}
    assert kinds == {"curl", "python"}, kinds
    sample = "<!-- example: curl -->\n```bash\necho hi\n```\n\n```bash\nnot marked\n```\n"
    assert [e.code for e in examples(sample)] == ["echo hi\n"]


def _study_zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for f in sorted(p for p in SLAB.rglob("*") if p.is_file()):
            z.write(f, f"EXPORT/CT/{f.relative_to(SLAB)}")


def test_every_api_guide_example_runs(tmp_path: Path) -> None:
    found = examples(GUIDE.read_text())
    has_curl = shutil.which("curl") is not None
    skipped = [e for e in found if e.kind == "curl" and not has_curl]
    work = tmp_path / "work"
    work.mkdir()
    _study_zip(work / "study.zip")
    data = tmp_path / "d"
    with live_services(data, tmp_path / "logs", service_env(data)) as svc:
        env = {**svc.env, "LUNGCAD_URL": svc.url, "LUNGCAD_KEY": svc.key}
        # the guide's Python examples import httpx from this interpreter's environment
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        for i, ex in enumerate(found):
            if ex in skipped:
                continue
            argv = (
                ["bash", "-euo", "pipefail", "-c", ex.code]
                if ex.kind == "curl"
                else [sys.executable, "-c", ex.code]
            )
            run = subprocess.run(
                argv, cwd=work, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S
            )
            assert run.returncode == 0, (
                f"docs/api_guide.md example {i + 1} (line {ex.line}, {ex.kind}) exited {run.returncode}\n"
                f"--- stdout\n{run.stdout[-3000:]}\n--- stderr\n{run.stderr[-3000:]}\n"
                f"--- worker log\n{svc.worker.tail() if svc.worker else ''}"
            )
            assert run.stdout.strip(), f"example {i + 1} (line {ex.line}) printed nothing"
    if skipped:
        pytest.skip(f"curl is not installed: {len(skipped)} curl examples not run (the Python ones passed)")
    # what the curl examples wrote: the real result, report and SEG
    assert (work / "report.pdf").read_bytes().startswith(b"%PDF")
    assert (work / "seg.dcm").read_bytes()[128:132] == b"DICM"
    assert '"findings"' in (work / "result.json").read_text()
