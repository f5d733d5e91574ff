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


def test_exit_now_runs_atexit_flushes_and_keeps_the_code(tmp_path) -> None:
    """The output written before ``exit_now`` reaches a pipe, atexit handlers ran, the code is kept."""
    marker = tmp_path / "atexit.txt"
    code = (
        "import atexit, sys; from lungcad.process_memory import exit_now;"
        f"atexit.register(lambda: open({str(marker)!r}, 'w').write('ran'));"
        "sys.stdout.write('x' * 100000); exit_now(3)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 3
    assert proc.stdout == "x" * 100000
    assert marker.read_text() == "ran"


def test_python_m_lungcad_exits_2_on_a_user_error(tmp_path) -> None:
    """``python -m lungcad`` (the service spawns it) returns the CLI's code, not 0, for a bad path."""
    proc = subprocess.run(
        [sys.executable, "-m", "lungcad", "detect", str(tmp_path / "missing")], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "path does not exist" in proc.stderr
    ok = subprocess.run([sys.executable, "-m", "lungcad", "--help"], capture_output=True, text=True)
    assert ok.returncode == 0 and "detect" in ok.stdout


def test_exit_now_waits_for_a_running_non_daemon_thread(tmp_path) -> None:
    """A worker thread still writing when the command returns finishes its file (the normal exit)."""
    out = tmp_path / "late.txt"
    code = (
        "import threading, time; from lungcad.process_memory import exit_now;"
        f"t = threading.Thread(target=lambda: (time.sleep(0.5), open({str(out)!r}, 'w').write('done')));"
        "t.start(); exit_now(0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == "done"
