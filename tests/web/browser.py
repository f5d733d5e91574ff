"""Debian's Chromium driven by Playwright (Python), and the helpers of the dashboard's browser tests.

Chromium is the system's (``/usr/bin/chromium``, apt), started through Playwright's ``executable_path``:
nothing is downloaded.  WebGL 2 (NiiVue) comes from SwiftShader in headless mode.  ``axe-core`` is the npm
package the dashboard's build installs (``web/node_modules/axe-core/axe.min.js``); it is evaluated in each
page through the DevTools protocol, which the pages' Content-Security-Policy does not apply to, so the pages
are checked exactly as served.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
AXE = REPO / "web" / "node_modules" / "axe-core" / "axe.min.js"
BUNDLE = REPO / "src" / "lungcad" / "service" / "web_dist"
ARTIFACTS = Path(os.environ.get("LUNGCAD_WEB_ARTIFACTS", REPO / "tests" / "web" / "artifacts"))
SIZES = ((1280, 800), (1920, 1080))
CHROMIUM_ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None


def axe_violations(page: Any, impacts: tuple[str, ...] = ("serious", "critical")) -> list[dict]:
    """axe-core's violations of ``impacts`` on the page as it is now (WCAG 2 A/AA rules, best practice)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    found = page.evaluate(
        """async () => {
          const r = await axe.run(document, { resultTypes: ["violations"] });
          return r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 5).map(n => n.target.join(" ") + " :: " + n.failureSummary) }));
        }"""
    )
    return [v for v in found if v["impact"] in impacts]


def screenshots(page: Any, name: str) -> list[Path]:
    """The page at each of ``SIZES`` into ``ARTIFACTS/<name>-<w>x<h>.png`` (the viewport restored after)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size
    out = []
    for w, h in SIZES:
        page.set_viewport_size({"width": w, "height": h})
        page.wait_for_timeout(400)  # layout and the viewer's canvas follow the resize
        path = ARTIFACTS / f"{name}-{w}x{h}.png"
        page.screenshot(path=str(path))
        out.append(path)
    if before:
        page.set_viewport_size(before)
    return out


def login(page: Any, base: str, key: str, path: str = "/ui/") -> None:
    page.goto(f"{base}{path}")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state("networkidle")
