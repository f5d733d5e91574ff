"""Fixtures of the dashboard's browser tests: Chromium (skipped with the reason when it cannot start), a live
``lungcad serve`` + ``lungcad worker`` on loopback (``tests/service/live.py``) and a key per role."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lungcad.service.security import Role
from tests.service.conftest import client, ctx, make_key, settings  # noqa: F401 - the TestClient fixtures
from tests.service.live import REPO, Services, has_command, live_services, lungcad_cli, service_env
from tests.web.browser import AXE, BUNDLE, CHROMIUM_ARGS, chromium_path


@pytest.fixture(scope="session")
def browser() -> Iterator:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # the test extra installs it
        pytest.skip(f"playwright is not installed ({exc}); pip install -e '.[test]'")
    exe = chromium_path()
    if exe is None:
        pytest.skip("no Chromium on PATH (apt-get install chromium; .ci/run installs it)")
    if not (BUNDLE / "app.css").is_file() or not AXE.is_file():
        pytest.fail("the dashboard bundle or web/node_modules is missing: run `make web` (make setup does)")
    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        except Exception as exc:  # noqa: BLE001 - any launch failure means "cannot start": skip with it
            pytest.skip(f"Chromium ({exe}) cannot start: {str(exc)[:300]}")
        try:
            yield b
        finally:
            b.close()


def create_key(data_dir: Path, env: dict[str, str], role: str) -> str:
    if not has_command("admin", "create-key"):
        pytest.skip("this checkout has no `lungcad admin create-key`")
    argv = [*lungcad_cli(), "admin", "create-key", "--role", role, "--data-dir", str(data_dir)]
    run = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout.strip()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Services, dict[str, str]]]:
    """serve + worker on a fresh data folder, and a key of every role ({role: key})."""
    root = tmp_path_factory.mktemp("web")
    data = root / "data"
    env = service_env(data)
    with live_services(data, root / "logs", env) as services:
        keys = {r.value: create_key(data, env, r.value) for r in Role if r is not Role.ADMIN}
        keys[Role.ADMIN.value] = services.key
        yield services, keys
