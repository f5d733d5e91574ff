"""The package's shape: imports only run down the pipeline, and no module grows past 400 lines.

Stages, lowest first (DESIGN.md, "The pipeline")::

    lungcad, types, contracts, config, config_checks, config_synth, errors, log, seeding, fileio,
    schema_publish, process_memory   (the base)
    < io < preprocess < annotations < synth < data < model < infer < evaluate < longitudinal < train < report
    < service < cli

``train`` sits above ``infer`` and ``evaluate`` although the data flows the other way (a trained model is what
``infer`` runs): imports follow use, not data flow.  Inference needs only a network (``model``); training
validates each epoch by running that inference over whole scans and scoring it by the LUNA16 FROC
(``train.detection_eval`` -> ``infer.sliding``, ``infer.candidates``, ``evaluate.froc``), so the stage that
uses both sits above both, and no inference or evaluation module may import training code.

A module may import its own stage and any lower one.  Two checks:

* at run time: each subpackage's modules are all imported in a fresh interpreter, and ``sys.modules`` must
  then hold no module of a higher stage (whatever path pulled it in, ``__init__`` files included);
* statically: every ``import`` statement, including those inside functions (which the run-time check only
  sees when the function runs), names a module of the same or a lower stage.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import lungcad

PACKAGE_DIR = Path(lungcad.__file__).parent
MAX_LINES = 400
BASE = (
    "lungcad",
    "types",
    "contracts",
    "config",
    "config_checks",
    "config_synth",
    "errors",
    "log",
    "seeding",
    "fileio",
    "schema_publish",
    "process_memory",
)
STAGES = (
    "io",
    "preprocess",
    "annotations",
    "synth",
    "data",
    "model",
    "infer",
    "evaluate",
    "longitudinal",  # comparison with a prior scan: uses infer, rendered by report
    "train",
    "report",
    "service",
    "cli",
    "__main__",  # python -m lungcad: the CLI
)
RANK = {name: 0 for name in BASE} | {name: k + 1 for k, name in enumerate(STAGES)}


def _stage(module: str) -> str:
    """``lungcad.infer.detector`` -> ``infer``; ``lungcad.types`` -> ``types``; ``lungcad`` -> ``lungcad``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE_DIR.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _sources() -> list[Path]:
    return sorted(PACKAGE_DIR.rglob("*.py"))


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every lungcad import in the file, at any depth."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this file's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            out.append((node.lineno, target))
    return [(line, name) for line, name in out if name == "lungcad" or name.startswith("lungcad.")]


def test_every_part_of_the_package_has_a_stage() -> None:
    parts = {p.stem for p in PACKAGE_DIR.glob("*.py") if p.stem != "__init__"}
    parts |= {p.parent.name for p in PACKAGE_DIR.glob("*/__init__.py")}
    unknown = sorted(parts - set(RANK))
    assert not unknown, f"give these a pipeline stage in tests/test_structure.py: {unknown}"


def test_no_module_over_400_lines() -> None:
    long = {
        str(p.relative_to(PACKAGE_DIR.parent)): n
        for p in _sources()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines (split them by concept): {long}"


def test_no_import_statement_reaches_up_the_pipeline() -> None:
    upward = []
    for path in _sources():
        source = _module_name(path)
        for line, target in _imports(path):
            if RANK[_stage(target)] > RANK[_stage(source)]:
                upward.append(f"{path.relative_to(PACKAGE_DIR.parent)}:{line} imports {target}")
    assert not upward, "imports from a lower pipeline stage to a higher one:\n" + "\n".join(upward)


_PROBE = """
import importlib, json, pkgutil, sys
package = importlib.import_module(sys.argv[1])
for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    importlib.import_module(info.name)
print(json.dumps(sorted(m for m in sys.modules if m == "lungcad" or m.startswith("lungcad."))))
"""


@pytest.mark.parametrize("stage", [s for s in STAGES if (PACKAGE_DIR / s / "__init__.py").exists()])
def test_importing_a_stage_loads_nothing_above_it(stage: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, f"lungcad.{stage}"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"importing lungcad.{stage} failed:\n{proc.stderr[-3000:]}"
    loaded = json.loads(proc.stdout.splitlines()[-1])
    above = sorted(m for m in loaded if RANK[_stage(m)] > RANK[stage])
    assert not above, f"importing lungcad.{stage} alone loads higher stages: {above}"
