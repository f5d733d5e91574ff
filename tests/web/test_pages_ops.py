"""The batch, models, training, experiments and operations pages in a real browser (Debian's Chromium through
Playwright) against a live ``lungcad serve`` + ``lungcad worker`` (``tests/web/conftest.py``):

* batches: the bundled LIDC-IDRI-0001 slab, stored through the API, is analysed as a batch created on the
  page; its row follows the progress to the end;
* training (the issue's acceptance): a tiny job (one epoch of 48 steps on the tiny cohort) is paused from
  the page, found paused through the API, resumed from the page, found running again and left to finish;
  its loss and CPM curves are drawn from the event stream;
* experiments: the two training runs compared (curves, best values, configuration difference);
* models: the admin switches the active model to the one exported from the job and back; a radiologist
  sees no switch button and the API refuses the switch;
* operations: throughput, queue, latency percentiles and failures after the batch;
* roles: each page hidden from the navigation of a role that may not open it, and refused (403).

axe-core runs on every page (0 serious / critical violations) and every page is saved at 1280x800 and
1920x1080 (``tests/web/artifacts/<page>-<w>x<h>.png``).  Timings are printed (``pytest -s``).
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.service.test_training_jobs import tiny_job_config
from tests.service.uploads import slab_bytes
from tests.train.conftest import write_tiny_cohort
from tests.web.browser import axe_violations, login, screenshots

pytestmark = pytest.mark.slow

ANALYSIS_TIMEOUT_MS = 300_000
TRAIN_WAIT_S = 300.0  # a training process imports torch, Lightning and MLflow on a busy 2-core machine
STEPS = 48  # one epoch: the pause lands inside it (8 steps ran in 1.6 s on a quiet machine)
BATCHES_LOADED = "() => !document.querySelector('#batches-summary').textContent.startsWith('Loading')"
STATE: dict[str, Any] = {}  # what the earlier tests made, for the later ones (the module runs in order)


def _check_page(page, name: str) -> None:  # noqa: ANN001 - a Playwright page
    bad = axe_violations(page)
    shots = screenshots(page, name)
    print(f"[web] {name}: screenshots {', '.join(str(s) for s in shots)}")
    assert not bad, f"axe-core on {name}: {bad}"


def _api(services) -> httpx.Client:  # noqa: ANN001 - tests.service.live.Services
    return httpx.Client(base_url=services.url, headers=services.headers, timeout=120)


def _wait_job(c: httpx.Client, job: str, ok, what: str) -> dict:  # noqa: ANN001 - a predicate
    deadline = time.monotonic() + TRAIN_WAIT_S
    doc: dict = {}
    while time.monotonic() < deadline:
        doc = c.get(f"/api/v1/training-jobs/{job}").json()
        if ok(doc):
            return doc
        assert doc["state"] != "failed", doc["message"]
        time.sleep(0.3)
    logs = c.get(f"/api/v1/training-jobs/{job}/logs?tail=40").text
    raise AssertionError(f"job {job} did not get {what}: {doc.get('state')} {doc.get('message')}\n{logs}")


@pytest.fixture
def admin_page(browser, live):  # noqa: ANN001, ANN201 - Playwright objects
    services, keys = live
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    login(page, services.url, keys["admin"])
    yield page, services
    context.close()
    assert not errors, errors


def test_batch_page_creates_and_follows_a_batch(admin_page) -> None:  # noqa: ANN001
    page, services = admin_page
    t0 = time.perf_counter()
    with _api(services) as c:
        files = [("files", (f"{i}.dcm", d, "application/dicom")) for i, d in enumerate(slab_bytes())]
        up = c.post("/api/v1/studies", files=files)
        assert up.status_code == 201, up.text
        STATE["study_id"] = up.json()["id"]
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Batches").click()
    page.locator(f'#studies tr[data-study-id="{STATE["study_id"]}"]').wait_for()
    page.wait_for_function(BATCHES_LOADED)
    assert "No batches yet" in page.locator("#batches-summary").inner_text()
    button = page.get_by_role("button", name="Analyse the chosen studies")
    assert button.is_disabled()
    page.locator(f'#studies tr[data-study-id="{STATE["study_id"]}"] input.pick').check()
    page.get_by_role("button", name="Analyse the 1 chosen study").click()
    page.locator("#create-status").get_by_text("created: 1 analysis queued").wait_for()
    row = page.locator("#batches tbody tr").first
    row.wait_for()
    STATE["batch_id"] = row.get_attribute("data-batch-id")
    page.locator('#batches tbody tr[data-finished="true"]').wait_for(timeout=ANALYSIS_TIMEOUT_MS)
    assert "1 done" in row.inner_text() and row.locator("progress").get_attribute("value") == "100"
    with _api(services) as c:
        assert c.get(f"/api/v1/batches/{STATE['batch_id']}").json()["finished"] is True
    print(f"[web] batch of the slab analysed: {time.perf_counter() - t0:.1f} s")
    _check_page(page, "batches")


def test_training_page_pauses_and_resumes_a_tiny_job(admin_page) -> None:  # noqa: ANN001
    page, services = admin_page
    t0 = time.perf_counter()
    cohort_dir = write_tiny_cohort(services.data_dir / "cohorts" / "tiny")  # D/cohorts: an allowed root
    with _api(services) as c:
        r = c.post("/api/v1/cohorts", json={"path": str(cohort_dir)})
        assert r.status_code == 201, r.text
        cohort = r.json()["id"]
        body = {"config": tiny_job_config(epochs=1, steps_per_epoch=STEPS), "data": [cohort]}
        job = c.post("/api/v1/training-jobs", json=body).json()["id"]
        STATE.update(job=job, cohort=cohort)

        page.goto(f"{services.url}/ui/training?job={job}")
        section = page.locator(f'#job[data-job-id="{job}"]')
        section.wait_for()
        # running and at least one step drawn from the event stream
        page.wait_for_function(
            "() => Number(document.querySelector('#job').dataset.points || 0) >= 1",
            timeout=TRAIN_WAIT_S * 1000,
        )
        page.locator('#job[data-state="running"]').wait_for(timeout=TRAIN_WAIT_S * 1000)
        page.get_by_role("button", name="Pause").click()
        paused = _wait_job(c, job, lambda d: d["state"] == "paused", "paused")
        step = paused["progress"]["step"]
        assert 1 <= step < STEPS, paused["progress"]
        page.locator('#job[data-state="paused"]').wait_for(timeout=15_000)
        assert page.get_by_role("button", name="Pause").is_disabled()
        assert "paused" in page.locator("#job-state").inner_text()
        print(f"[web] training paused at step {step}: {time.perf_counter() - t0:.1f} s")
        _check_page(page, "training-paused")

        page.get_by_role("button", name="Resume").click()
        _wait_job(c, job, lambda d: d["state"] in ("starting", "running", "finished"), "resumed")

        def stepped(d: dict) -> bool:
            return d["state"] == "finished" or (d["progress"] or {}).get("step", 0) > step

        again = _wait_job(c, job, stepped, "a step past the pause")
        assert (again["progress"] or {}).get("step", 0) > step  # it ran on after the pause
        done = _wait_job(c, job, lambda d: d["state"] == "finished", "finished")
        assert done["progress"]["step"] == STEPS and done["attempts"] == 2
        page.locator('#job[data-state="finished"]').wait_for(timeout=15_000)
        # the stream's step events (snapshots as the manager reads them: not every step) up to the last
        want_cpm = 1 if done["progress"]["last_cpm"] is not None else 0
        page.wait_for_function(
            f"() => Number(document.querySelector('#job').dataset.lastStep) === {STEPS}"
            f" && Number(document.querySelector('#job').dataset.cpmPoints) >= {want_cpm}",
            timeout=30_000,
        )
        assert int(page.locator("#job").get_attribute("data-points")) >= 2
        assert page.locator("#loss-chart path.line").count() >= 1
        assert page.locator("#cpm-chart path.line").count() == want_cpm
        print(f"[web] last CPM {done['progress']['last_cpm']}, best {done['progress']['best_cpm']}")
        assert page.get_by_role("button", name="Resume").is_enabled() is False  # finished: nothing to resume
        print(f"[web] training job done (paused, resumed, finished): {time.perf_counter() - t0:.1f} s")
        _check_page(page, "training")


def test_experiments_page_compares_two_runs(admin_page) -> None:  # noqa: ANN001
    page, services = admin_page
    if "job" not in STATE:
        pytest.skip("the training test did not run")
    with _api(services) as c:  # a second, shorter run with another learning rate: a configuration difference
        body = {"config": tiny_job_config(epochs=1, steps_per_epoch=4, lr=0.001), "data": [STATE["cohort"]]}
        second = c.post("/api/v1/training-jobs", json=body).json()["id"]
        _wait_job(c, second, lambda d: d["state"] == "finished", "finished")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Experiments").click()
    page.locator("#runs tbody tr").nth(1).wait_for()
    assert page.locator("#runs tbody tr").count() >= 2
    page.locator("#runs tbody tr").nth(0).locator("input").check()
    page.locator("#runs tbody tr").nth(1).locator("input").check()
    page.get_by_role("button", name="Compare the 2 chosen runs").click()
    page.locator('#comparison[data-runs="2"]').wait_for()
    assert page.locator("#cmp-chart path.line").count() >= 1
    assert page.locator("#best tbody tr").count() >= 1
    diff = page.locator("#diff tbody").inner_text()
    assert "train.lr" in diff and "0.001" in diff, diff
    page.get_by_label("Curve").select_option("val/cpm")
    assert page.locator("#cmp-chart svg").get_attribute("aria-label").startswith("val/cpm by step")
    _check_page(page, "experiments")


def test_models_page_admin_switches_the_active_model(admin_page) -> None:  # noqa: ANN001
    page, services = admin_page
    with _api(services) as c:
        default = c.get("/api/v1/models/active").json()
        if "job" in STATE:  # a second model to switch to: the tiny job's, exported (not activated)
            r = c.post(f"/api/v1/training-jobs/{STATE['job']}/export", json={"calibrate": False})
            assert r.status_code == 201, r.text
            STATE["exported"] = r.json()["sha256"]
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Models").click()
    page.locator(f'#active-facts[data-sha256="{default["sha256"]}"]').wait_for()
    card = page.locator("#model-card")
    card.get_by_text("Best validation CPM").first.wait_for()
    assert default["model_id"] in page.locator("#active").inner_text()
    page.get_by_text("The whole card").click()  # the rest of the card opens
    assert card.get_by_text("Test FROC").first.is_visible()
    _check_page(page, "models")
    if "exported" not in STATE:
        return
    sha = STATE["exported"]
    page.locator(f'#models tr[data-sha256="{sha}"] button').click()
    page.locator(f'#active-facts[data-sha256="{sha}"]').wait_for()
    assert "is now the active model" in page.locator("#switch-status").inner_text()
    with _api(services) as c:
        assert c.get("/api/v1/models/active").json()["sha256"] == sha
    assert page.locator("#activations tbody tr").first.inner_text().split("\t")[1].strip() == "activate"
    # and back, by keyboard: the button takes the focus and Enter presses it
    page.locator(f'#models tr[data-sha256="{default["sha256"]}"] button').focus()
    page.keyboard.press("Enter")
    page.locator(f'#active-facts[data-sha256="{default["sha256"]}"]').wait_for()
    with _api(services) as c:
        assert c.get("/api/v1/models/active").json()["sha256"] == default["sha256"]


def test_operations_page_shows_throughput_latency_and_queue(admin_page) -> None:  # noqa: ANN001
    page, services = admin_page
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Operations").click()
    page.locator('#main[data-ops-loaded="true"]').wait_for()
    stats = page.locator("#ops-stats")
    if "batch_id" in STATE:
        assert int(stats.locator('[data-stat="last-day"] dd').inner_text()) >= 1
        analysis = page.locator('#latency tr[data-latency^="Analysis"]')
        assert int(analysis.locator("td").first.inner_text()) >= 1
        p50 = analysis.locator("td").nth(1).inner_text()
        assert p50 != "–" and float(p50) > 0
        assert page.locator("#tp-chart rect[data-key='done']").count() >= 1
    assert stats.locator('[data-stat="queued"] dd').inner_text() == "0"
    assert page.locator('#latency tr[data-latency="API requests"] td').first.inner_text() != "0"
    assert "No analysis has failed" in page.locator("#failures-summary").inner_text()
    _check_page(page, "operations")


def test_pages_hidden_and_refused_by_role(browser, live) -> None:  # noqa: ANN001
    services, keys = live
    base = services.url
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(60_000)
    expect = {  # role -> (pages in its navigation, pages refused)
        "viewer": ({"Batches"}, {"models", "training", "experiments", "operations"}),
        "radiologist": ({"Batches", "Models"}, {"training", "experiments", "operations"}),
        "researcher": ({"Batches", "Models", "Training", "Experiments"}, {"operations"}),
    }
    try:
        for role, (shown, refused) in expect.items():
            context.clear_cookies()
            login(page, base, keys[role])
            nav = page.get_by_role("navigation", name="Main")
            for title in ("Batches", "Models", "Training", "Experiments", "Operations"):
                want = 1 if title in shown else 0
                assert nav.get_by_role("link", name=title).count() == want, (role, title)
            for name in refused:
                r = page.goto(f"{base}/ui/{name}")
                assert r.status == 403, (role, name)
                assert "may not open the" in page.locator("#message").inner_text()
            r = page.request.get(f"{base}/ui/data/operations")
            assert r.status == 403 and r.json()["error"] == "forbidden"
        # a radiologist sees the models but no switch button, and the API refuses the switch
        context.clear_cookies()
        login(page, base, keys["radiologist"], "/ui/models")
        page.locator("#models tbody tr").first.wait_for()
        assert page.locator("#models button").count() == 0
        token = page.locator('meta[name="csrf-token"]').get_attribute("content")
        sha = page.locator("#models tbody tr").first.get_attribute("data-sha256")
        r = page.request.put(
            f"{base}/api/v1/models/active", data={"sha256": sha}, headers={"X-CSRF-Token": token}
        )
        assert r.status == 403 and "may not model.write" in r.json()["message"]
        _check_page(page, "models-radiologist")
        # a viewer's batch page lists batches but offers no new batch (no analysis.create)
        context.clear_cookies()
        login(page, base, keys["viewer"], "/ui/batches")
        page.wait_for_function(BATCHES_LOADED)
        assert page.locator("#batches tbody tr").count() == (1 if "batch_id" in STATE else 0)
        assert page.locator("#studies").count() == 0
        _check_page(page, "batches-viewer")
        # a researcher follows training jobs with the controls (training.write)
        context.clear_cookies()
        login(page, base, keys["researcher"], "/ui/training")
        page.locator("#jobs-summary").wait_for()
        if "job" in STATE:
            page.locator("#job").wait_for()
            assert page.get_by_role("button", name="Pause").count() == 1
    finally:
        context.close()
