"""``lungcad.process_memory``: the CLI's memory defaults, and that a user's own settings win."""

from __future__ import annotations

import os
import subprocess
import sys


def _run(code: str, **env: str) -> str:
    full = {
        k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE" and not k.startswith("MALLOC_")
    }
    return subprocess.run(
        [sys.executable, "-c", code], env=full | env, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_cli_sets_4k_pages_before_numpy_and_mallopt_on_glibc() -> None:
    out = _run("import os, lungcad.cli, numpy; print(os.environ['NUMPY_MADVISE_HUGEPAGE'])")
    assert out == "0"
    out = _run("from lungcad.process_memory import tune_for_short_process as t; print(t())")
    assert "'numpy_pages': True" in out
    if sys.platform.startswith("linux") and os.path.exists("/lib/x86_64-linux-gnu/libc.so.6"):
        assert "'malloc': True" in out


def test_explicit_settings_win_and_late_calls_do_nothing() -> None:
    out = _run(
        "import os, lungcad.cli; print(os.environ['NUMPY_MADVISE_HUGEPAGE'])", NUMPY_MADVISE_HUGEPAGE="1"
    )
    assert out == "1"
    out = _run(
        "from lungcad.process_memory import tune_for_short_process as t; print(t())", MALLOC_TOP_PAD_="1"
    )
    assert "'malloc': False" in out
    out = _run("import numpy; from lungcad.process_memory import tune_for_short_process as t; print(t())")
    assert "'numpy_pages': False" in out
