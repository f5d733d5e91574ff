"""Dashboard benchmark: page weight and time to interactive of the study page, its CT volume loaded from a
live service, against references measured in the same run.

A real ``lungcad serve`` + ``lungcad worker`` on loopback (``tests/service/live.py``) analyse one series
(LIDC-IDRI-0001 by default, else the bundled slab; ``--series DIR``).  Then, ``repeats`` times, each in a
fresh browser context (an empty cache, as a reader opening the study for the first time) of Debian's
Chromium driven by Playwright, logged in with a session cookie:

* the study page ``/ui/study/{id}``: time to interactive = ``performance.now()`` (milliseconds since the
  navigation started) when the viewer reports the volume drawn (``#study[data-viewer-ready="true"]``, set
  by ``web/src/pages/study.js`` after NiiVue loaded and drew the CT and its labels);
* the worklist ``/ui/worklist`` (the reference page: same layout, bundle and session, no volume): the time
  its table is filled;
* the raw download of the same two volume files (``volume.nii.gz``, ``labels.nii.gz``) with httpx: what the
  viewer cannot be faster than.

Page weight: bytes transferred (encoded, headers included) per resource type (Document, Script,
Stylesheet, Fetch, ...) from the DevTools protocol's Network events, for both pages; and when the last
byte of the volumes arrived (``volumes_received_ms``, same clock as the TTI's start), which splits the
study page's time into download and decoding + drawing.

Ratios (ours / reference, same run): ``study_tti_over_worklist_tti`` and
``study_tti_over_volume_download``; numbers in ``benchmarks/results/ui.json``.  Chromium renders WebGL in
software here (SwiftShader), so the study page's time is an upper bound of a reading station's.

Usage::

    python benchmarks/bench_ui.py [--series DIR] [--repeats 3] [--quick] [--json PATH]

``--quick``: one repetition.
"""

from __future__ import annotations

import argparse
import io
import re
import statistics
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchlib import default_json_path, write_result

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # the live-service and browser helpers of the tests
    sys.path.insert(0, str(REPO))

LIDC = REPO.parent / "shared" / "data" / "lidc" / "LIDC-IDRI-0001" / "01-01-2000-30178" / "3000566-03192"
SLAB = REPO / "tests" / "data" / "lidc_slab_0001"
ANALYSIS_TIMEOUT_S = 900.0
READY_TIMEOUT_MS = 300_000
READY_JS = (
    "() => document.querySelector('#study')?.dataset.viewerReady === 'true' ? performance.now() : false"
)
WORKLIST_JS = (
    "() => { const c = document.querySelector('#wl-summary');"
    " return c && !c.textContent.startsWith('Loading') ? performance.now() : false; }"
)


def _pick_series(arg: Path | None) -> tuple[Path | None, str]:
    if arg is not None:
        return (arg if arg.is_dir() else None), str(arg)
    if LIDC.is_dir():
        return LIDC, "LIDC-IDRI-0001"
    return (SLAB if SLAB.is_dir() else None), "bundled slab of LIDC-IDRI-0001 (LIDC data absent)"


def _zip_of(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for f in sorted(p for p in folder.rglob("*") if p.is_file()):
            z.write(f, f.relative_to(folder).as_posix())
    return buf.getvalue()


def _analyse(client: Any, series: Path) -> str:
    """Upload the series, analyse it, wait for done: the analysis id."""
    up = client.post("/api/v1/studies", files={"files": ("study.zip", _zip_of(series), "application/zip")})
    if up.status_code != 201:
        raise RuntimeError(f"upload failed: {up.status_code} {up.text[:500]}")
    made = client.post("/api/v1/analyses", json={"study_id": up.json()["id"]})
    if made.status_code != 202:
        raise RuntimeError(f"analysis refused: {made.status_code} {made.text[:500]}")
    aid = made.json()["id"]
    deadline = time.monotonic() + ANALYSIS_TIMEOUT_S
    while time.monotonic() < deadline:
        doc = client.get(f"/api/v1/analyses/{aid}").json()
        if doc["status"] == "done":
            return aid
        if doc["status"] in ("failed", "cancelled"):
            raise RuntimeError(f"the analysis {doc['status']}: {doc.get('error')}")
        time.sleep(0.5)
    raise RuntimeError(f"the analysis did not finish within {ANALYSIS_TIMEOUT_S:.0f} s")


class Weigher:
    """Bytes transferred per resource type of one page, from the DevTools protocol's Network events."""

    def __init__(self, page: Any) -> None:
        self.types: dict[str, str] = {}
        self.urls: dict[str, str] = {}
        self.bytes: dict[str, int] = defaultdict(int)
        self.requests: dict[str, int] = defaultdict(int)
        self.start: float | None = None  # the page's own request (DevTools monotonic seconds)
        self.volumes_done: float | None = None  # the last .nii.gz response fully received
        cdp = page.context.new_cdp_session(page)
        cdp.on("Network.requestWillBeSent", self._sent)
        cdp.on("Network.responseReceived", lambda e: self.types.__setitem__(e["requestId"], e["type"]))
        cdp.on("Network.loadingFinished", self._finished)
        cdp.send("Network.enable")
        self.cdp = cdp

    def _sent(self, e: dict[str, Any]) -> None:
        self.urls[e["requestId"]] = e["request"]["url"]
        if self.start is None and e.get("type") == "Document":
            self.start = float(e["timestamp"])

    def _finished(self, e: dict[str, Any]) -> None:
        kind = self.types.get(e["requestId"], "Other")
        self.bytes[kind] += int(e.get("encodedDataLength", 0))
        self.requests[kind] += 1
        if self.urls.get(e["requestId"], "").endswith(".nii.gz"):
            at = float(e["timestamp"])
            self.volumes_done = at if self.volumes_done is None else max(self.volumes_done, at)

    def result(self) -> dict[str, Any]:
        fetched = None
        if self.start is not None and self.volumes_done is not None:
            fetched = (self.volumes_done - self.start) * 1000
        return {
            "volumes_received_ms": fetched,  # from the page's request to the last volume byte (None: none)
            "total_bytes": sum(self.bytes.values()),
            "requests": sum(self.requests.values()),
            "bytes_by_type": dict(sorted(self.bytes.items())),
            "requests_by_type": dict(sorted(self.requests.items())),
        }


def _login(context: Any, base: str, key: str) -> None:
    """The session cookie through the context's own HTTP client: nothing of the bundle gets cached."""
    form = context.request.get(f"{base}/ui/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text()).group(1)
    r = context.request.post(f"{base}/ui/login", form={"api_key": key, "csrf_token": token}, max_redirects=0)
    if r.status != 303:
        raise RuntimeError(f"login failed: {r.status} {r.text()[:300]}")


def _open(browser: Any, base: str, key: str, path: str, ready_js: str) -> dict[str, Any]:
    """One page in a fresh context (empty cache): its time to interactive (ms since navigation start),
    navigation timings and weight."""
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    try:
        _login(context, base, key)
        page = context.new_page()
        weigher = Weigher(page)
        page.goto(f"{base}{path}", wait_until="commit")
        tti = page.wait_for_function(ready_js, polling=50, timeout=READY_TIMEOUT_MS).json_value()
        page.wait_for_load_state("networkidle")
        nav = page.evaluate(
            "() => { const n = performance.getEntriesByType('navigation')[0];"
            " return { dom_content_loaded_ms: n.domContentLoadedEventEnd, load_ms: n.loadEventEnd }; }"
        )
        return {"tti_ms": float(tti), **nav, **weigher.result()}
    finally:
        context.close()


def _download(client: Any, aid: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    n = 0
    for name in ("volume.nii.gz", "labels.nii.gz"):
        r = client.get(f"/api/v1/analyses/{aid}/{name}")
        r.raise_for_status()
        n += len(r.content)
    return {"seconds": time.perf_counter() - t0, "bytes": n}


def run(args: argparse.Namespace, series: Path, tmp: Path) -> dict[str, Any]:
    import httpx
    from playwright.sync_api import sync_playwright
    from tests.service.live import live_services, service_env
    from tests.web.browser import CHROMIUM_ARGS, chromium_path

    exe = chromium_path()
    if exe is None:
        raise RuntimeError("no Chromium on PATH (apt-get install chromium)")
    repeats = args.repeats or (1 if args.quick else 3)
    env = service_env(tmp / "data", rate_limit_per_minute="0")
    out: dict[str, Any] = {"repeats": repeats}
    with live_services(tmp / "data", tmp / "logs", env) as services:
        client = httpx.Client(base_url=services.url, headers=services.headers, timeout=600)
        t0 = time.perf_counter()
        aid = _analyse(client, series)
        out["analysis_s"] = time.perf_counter() - t0
        print(f"analysed in {out['analysis_s']:.1f} s", flush=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
            try:
                study, worklist, download = [], [], []
                for i in range(repeats):
                    worklist.append(_open(browser, services.url, services.key, "/ui/worklist", WORKLIST_JS))
                    study.append(_open(browser, services.url, services.key, f"/ui/study/{aid}", READY_JS))
                    download.append(_download(client, aid))
                    s, w, d = study[-1], worklist[-1], download[-1]
                    print(
                        f"[{i + 1}/{repeats}] study TTI {s['tti_ms']:.0f} ms "
                        f"({s['total_bytes'] / 1e6:.2f} MB), worklist {w['tti_ms']:.0f} ms "
                        f"({w['total_bytes'] / 1e6:.2f} MB), volume download "
                        f"{d['seconds'] * 1000:.0f} ms ({d['bytes'] / 1e6:.2f} MB)",
                        flush=True,
                    )
            finally:
                browser.close()
    out["study"] = {"runs": study, "tti_ms_median": statistics.median(r["tti_ms"] for r in study)}
    out["worklist"] = {"runs": worklist, "tti_ms_median": statistics.median(r["tti_ms"] for r in worklist)}
    out["volume_download"] = {
        "runs": download,
        "ms_median": statistics.median(d["seconds"] * 1000 for d in download),
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=Path, default=None, help="DICOM series folder (default LIDC-0001)")
    parser.add_argument("--repeats", type=int, default=None, help="page loads per page, median (default 3)")
    parser.add_argument("--quick", action="store_true", help="one page load per page")
    parser.add_argument("--json", type=Path, default=default_json_path("ui"), help="result JSON")
    args = parser.parse_args()
    mode = "quick" if args.quick else "full"
    series, label = _pick_series(args.series)
    if series is None:
        reason = f"series not found ({label}; pass --series DIR)"
        print(f"{reason}: skipping")
        write_result("ui", {}, {}, mode=mode, path=args.json, skipped=reason)
        return
    print(f"series: {label} ({series})", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp:
        m = run(args, series, Path(tmp))
    m["series"] = label
    study, worklist, dl = m["study"]["tti_ms_median"], m["worklist"]["tti_ms_median"], m["volume_download"]
    ratios = {
        "study_tti_over_worklist_tti": study / worklist,
        "study_tti_over_volume_download": study / dl["ms_median"],
    }
    received = [r["volumes_received_ms"] for r in m["study"]["runs"] if r["volumes_received_ms"] is not None]
    m["study"]["volumes_received_ms_median"] = statistics.median(received) if received else None
    print(
        f"study page: TTI {study:.0f} ms (median of {m['repeats']}; volumes received at "
        f"{m['study']['volumes_received_ms_median'] or float('nan'):.0f} ms), "
        f"{m['study']['runs'][0]['total_bytes'] / 1e6:.2f} MB; worklist {worklist:.0f} ms; "
        f"volume download {dl['ms_median']:.0f} ms; ratios {ratios}"
    )
    write_result("ui", ratios, m, mode=mode, path=args.json)


if __name__ == "__main__":
    main()
