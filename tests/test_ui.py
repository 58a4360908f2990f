"""The jobs dashboard (``/ui``) in a real browser: Debian's chromium driven by Playwright,
against the suite's real ``runner api``, Redis and prefork worker.

Jobs of the ``ui-gated`` template (tests/jobs.py) finish a piece only when the test pushes
a token on a Redis list, so "the progress bar moves without a reload" is checked by
releasing exactly one piece and waiting for the page to show it: an explicit barrier,
never a sleep. Playwright's ``expect`` polls the page with a deadline.

``UPDATE_DOCS_SCREENSHOT=1`` writes the README's screenshots to docs/.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from runner import Client, JobFailed
from runner.job_keys import create_job_key
from tests.api_fixtures import ApiServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
DOCS = Path(__file__).resolve().parent.parent / "docs"
WAIT_MS = 30_000

pytestmark = pytest.mark.timeout(180)


def update_screenshots() -> bool:
    return os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1"


@pytest.fixture(scope="module")
def browser():
    assert Path(CHROMIUM).exists(), "Debian's chromium is not installed: apt-get install chromium (.ci/run does)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def gates(redis_url: str) -> Iterator[Callable[[], str]]:
    """Fresh gate names; after the test every gate gets enough tokens that no piece still
    waits (a waiting piece holds one of the session worker's two processes)."""
    made: list[str] = []
    conn = redis.Redis.from_url(redis_url)

    def make() -> str:
        made.append(f"ui-gate-{uuid.uuid4().hex[:10]}")
        return made[-1]

    yield make
    for gate in made:
        conn.rpush(gate, *["go"] * 20)
        conn.expire(gate, 120)
    conn.close()


class Org:
    """An org with a key: a Client to submit with, and a way to sign a browser in."""

    def __init__(self, server: ApiServer, settings, browser, name: str | None = None) -> None:
        self.name = name or f"ui-{uuid.uuid4().hex[:8]}"
        self.server = server
        self.key = server.create_key(self.name)
        self.client = Client(settings=settings, org=self.name)
        self.browser = browser

    def sign_in(self, viewport: dict | None = None):
        """A fresh browser context signed in with the org's key; returns its page."""
        context = self.browser.new_context(viewport=viewport or {"width": 1280, "height": 900},
                                           accept_downloads=True)
        page = context.new_page()
        page.goto(f"{self.server.url}/ui/jobs")
        assert "/ui/login" in page.url  # not signed in yet
        page.fill("#api_key", self.key["key"])
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r".*/ui/jobs$"), timeout=WAIT_MS)
        return page


@pytest.fixture
def make_org(api_server: ApiServer, settings, browser, worker) -> Iterator[Callable[[], Org]]:
    orgs: list[Org] = []

    def make() -> Org:
        orgs.append(Org(api_server, settings, browser))
        return orgs[-1]

    yield make
    for org in orgs:
        for context in list(browser.contexts):
            context.close()


def gated_job(org: Org, redis_url: str, gate: str, pieces: int, **params):
    return org.client.submit("ui-gated", params={"partitioner": {"count": pieces},
                                              "app": {"redis_url": redis_url, "gate": gate, **params}})


def release(redis_url: str, gate: str, tokens: int = 1) -> None:
    with redis.Redis.from_url(redis_url) as conn:
        conn.rpush(gate, *["go"] * tokens)


def shot(page, name: str, tmp_path: Path, full_page: bool = False) -> None:
    target = DOCS / name if update_screenshots() else tmp_path / name
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target), full_page=full_page)
    assert target.read_bytes().startswith(b"\x89PNG")


def test_jobs_list_progress_moves_without_reload(make_org, redis_url, gates, tmp_path) -> None:
    from playwright.sync_api import expect

    org = make_org()
    gate = gates()
    if update_screenshots():  # a fuller list for the README
        for count in (3, 8):
            org.client.submit("squares", params={"partitioner": {"count": count}}, name=f"squares of {count}").wait(60)
        with contextlib.suppress(JobFailed):
            org.client.submit("exploding", params={"partitioner": {"after": 2}}, name="bad header").wait(60)
    job = gated_job(org, redis_url, gate, pieces=4)
    page = org.sign_in()
    row = page.locator(f"#job-{job.id}")
    expect(row).to_contain_text("running", timeout=WAIT_MS)
    expect(row.locator(".bar")).to_have_attribute("aria-valuenow", "0")
    page.evaluate("window.__still_this_page = true")

    release(redis_url, gate)  # exactly one piece may finish
    expect(row.locator(".bar")).to_have_attribute("aria-valuenow", "1", timeout=WAIT_MS)
    expect(row).to_contain_text("1 / 4")
    assert page.evaluate("window.__still_this_page") is True  # updated in place, not reloaded
    if update_screenshots():
        page.set_viewport_size({"width": 1100, "height": 420})
        shot(page, "ui-jobs.png", tmp_path)

    # the job's page follows it live over server-sent events too
    page.click(f"#job-{job.id} a")
    page.wait_for_url(f"**/ui/jobs/{job.id}")
    bar = page.locator("#summary .bar")
    expect(bar).to_have_attribute("aria-valuenow", "1", timeout=WAIT_MS)
    page.evaluate("window.__still_this_page = true")
    release(redis_url, gate)
    expect(page.locator("#summary .bar")).to_have_attribute("aria-valuenow", "2", timeout=WAIT_MS)
    expect(page.locator("#log")).to_contain_text("says hello")
    assert page.evaluate("window.__still_this_page") is True
    release(redis_url, gate, 2)
    expect(page.locator("#job-state")).to_contain_text("completed", timeout=WAIT_MS)


def test_job_page_logs_metrics_artifacts_and_download(make_org, redis_url, gates, tmp_path) -> None:
    from playwright.sync_api import expect

    org = make_org()
    gate = gates()
    job = gated_job(org, redis_url, gate, pieces=3)
    release(redis_url, gate, 3)
    assert job.wait(timeout=60) == 0 + 1 + 2

    page = org.sign_in()
    problems: list[str] = []  # a script error or a CSP violation shows in the console
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(f"{org.server.url}/ui/jobs/{job.id}")
    expect(page.locator("#job-state")).to_contain_text("completed")
    timeline = page.locator(".timeline li.reached")  # queued, partitioning, running, assembling, completed
    expect(timeline).to_have_count(5)
    expect(timeline.nth(3)).to_contain_text(re.compile(r"assembling\s*\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"))
    log = page.locator("#log")
    expect(log).to_contain_text("piece 2 says hello")
    expect(log.locator("li.lvl-WARNING").first).to_contain_text("warns")
    expect(page.locator("#metrics-table")).to_contain_text("loss")
    expect(page.locator('.chart[data-metric="loss"] canvas')).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#result")).to_have_text("3")
    if update_screenshots():
        page.set_viewport_size({"width": 1100, "height": 900})
        shot(page, "ui-job.png", tmp_path, full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing wider than the screen
    for path in (f"/ui/jobs/{job.id}", "/ui/jobs", f"/ui/jobs/{job.id}/artifacts?show=table.csv",
                 "/ui/templates/spin@1.0.0", "/ui/fleet"):
        page.goto(org.server.url + path)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
    page.set_viewport_size({"width": 1280, "height": 900})

    page.goto(f"{org.server.url}/ui/jobs/{job.id}?piece=1")  # the log's piece filter
    expect(log).to_contain_text("piece 1 says hello")
    expect(log).not_to_contain_text("piece 2 says hello")

    page.goto(f"{org.server.url}/ui/jobs/{job.id}/artifacts")
    table = page.locator("#artifacts")
    for name in ("data.json", "notes.txt", "output.json", "plots/pixel.png", "table.csv"):
        expect(table).to_contain_text(name)
    page.click("text=table.csv")
    expect(page.locator("#csv-preview tbody tr")).to_have_count(2)
    expect(page.locator("#csv-preview thead")).to_contain_text("value")
    page.goto(f"{org.server.url}/ui/jobs/{job.id}/artifacts?show=data.json")
    expect(page.locator("#text-preview")).to_contain_text('"ok": true')
    page.goto(f"{org.server.url}/ui/jobs/{job.id}/artifacts?show=plots/pixel.png")
    image = page.locator("#preview img")
    expect(image).to_be_visible()
    assert page.evaluate("document.querySelector('#preview img').naturalWidth") == 1  # the image loaded

    with page.expect_download() as download:
        page.click("#preview a[download]")
    saved = tmp_path / "pixel.png"
    download.value.save_as(saved)
    assert saved.read_bytes() == job.read_artifact("plots/pixel.png")  # byte-exact
    assert problems == []


def test_cancel_and_retry_failed_pieces_from_the_page(make_org, redis_url, gates) -> None:
    from playwright.sync_api import expect

    org = make_org()
    failing_gate, waiting_gate = gates(), gates()
    failing = gated_job(org, redis_url, failing_gate, pieces=2, fail_pieces=[1])
    release(redis_url, failing_gate, 2)
    page = org.sign_in()
    page.on("dialog", lambda dialog: dialog.accept())  # the confirmations

    page.goto(f"{org.server.url}/ui/jobs/{failing.id}")
    expect(page.locator("#job-state")).to_contain_text("failed", timeout=WAIT_MS)
    expect(page.locator("#failed")).to_contain_text("piece 1 is bad input")
    with redis.Redis.from_url(redis_url) as conn:
        conn.set(f"{failing_gate}:fixed", "1")
    release(redis_url, failing_gate, 1)
    page.click("#retry")
    expect(page.locator("#job-state")).to_contain_text("completed", timeout=WAIT_MS)
    assert failing.result() == 0 + 1

    waiting = gated_job(org, redis_url, waiting_gate, pieces=2)  # after: its pieces hold the worker's processes

    page.goto(f"{org.server.url}/ui/jobs/{waiting.id}")
    expect(page.locator("#job-state")).to_contain_text("running", timeout=WAIT_MS)
    page.click("#cancel")
    expect(page.locator("#job-state")).to_contain_text("cancelled", timeout=WAIT_MS)
    assert waiting.status().state.value == "cancelled"

    page.click("#delete")
    page.wait_for_url("**/ui/jobs")
    page.goto(f"{org.server.url}/ui/jobs/{waiting.id}")
    expect(page.locator("h1")).to_have_text("Not found")


def test_template_form_submits_a_job_and_shows_field_errors(make_org, tmp_path) -> None:
    from playwright.sync_api import expect

    org = make_org()
    page = org.sign_in()
    page.goto(f"{org.server.url}/ui/templates")
    page.click("text=spin")
    page.wait_for_url("**/ui/templates/spin@1.0.0")
    expect(page.locator("#f-app-seconds")).to_have_value("0.0")
    page.fill("#f-app-seconds", "-1")
    page.fill("#f-partitioner-count", "3")
    page.click("#submit")
    error = page.locator("#err-app-seconds")
    expect(error).to_contain_text("greater than or equal to 0")
    expect(page.locator("#f-app-seconds")).to_have_value("-1")  # what was typed stays
    assert org.client.jobs() == []  # nothing was queued
    if update_screenshots():
        shot(page, "ui-template.png", tmp_path)

    page.fill("#f-app-seconds", "0")
    page.fill("#f-name", "from the form")
    page.click("#submit")
    page.wait_for_url(re.compile(r".*/ui/jobs/[0-9a-f]{16}$"))
    job_id = page.url.rsplit("/", 1)[-1]
    expect(page.locator("#job-state")).to_contain_text("completed", timeout=WAIT_MS)
    status = org.client.get(job_id).status()
    assert status.name == "from the form" and status.params["partitioner"]["count"] == 3
    assert org.client.get(job_id).result() == 3

    page.goto(f"{org.server.url}/ui/templates/with-model@1.0.0")  # a named input left out
    page.click("#submit")
    expect(page.locator("#err-inputs-model")).to_contain_text("required input missing")
    assert [job.id for job in org.client.jobs()] == [job_id]


def test_another_orgs_job_is_a_404_and_never_listed(make_org, redis_url, gates) -> None:
    from playwright.sync_api import expect

    org_a, org_b = make_org(), make_org()
    gate = gates()
    job = gated_job(org_a, redis_url, gate, pieces=1)
    page = org_b.sign_in()
    expect(page.locator("table.jobs")).not_to_contain_text(job.id)
    for path in (f"/ui/jobs/{job.id}", f"/ui/jobs/{job.id}/artifacts", f"/ui/jobs/{job.id}/summary"):
        response = page.goto(org_b.server.url + path)
        assert response is not None and response.status == 404, path
        expect(page.locator("#error-message")).to_contain_text(f"No job {job.id} in org {org_b.name}")
    page.goto(f"{org_b.server.url}/ui/jobs?name={job.id}")
    expect(page.locator("table.jobs")).not_to_contain_text(job.id)
    # an action with org B's own valid token on A's job: 404, and the job runs on
    page.goto(f"{org_b.server.url}/ui/jobs")
    csrf = page.get_attribute("form[action='/ui/logout'] input[name=csrf]", "value")
    answer = page.request.post(f"{org_b.server.url}/ui/jobs/{job.id}/cancel", form={"csrf": csrf},
                               max_redirects=0)
    assert answer.status == 404
    assert not job.status().is_final
    # the fleet is shared: B sees a worker busy with "another org's job", never its id
    page.goto(f"{org_b.server.url}/ui/fleet")
    expect(page.locator("table.workers")).to_contain_text("another org's job", timeout=WAIT_MS)
    expect(page.locator("table.workers")).not_to_contain_text(job.id)
    page_a = org_a.sign_in()
    page_a.goto(f"{org_a.server.url}/ui/fleet")
    expect(page_a.locator(f"table.workers a[href='/ui/jobs/{job.id}']").first).to_be_visible(timeout=WAIT_MS)
    release(redis_url, gate)
    assert job.wait(timeout=60) == 0


def test_a_revoked_keys_session_is_signed_out(make_org, redis_url, gates) -> None:
    from playwright.sync_api import expect

    org = make_org()
    gate = gates()
    job = gated_job(org, redis_url, gate, pieces=1)
    page = org.sign_in()
    listing = page.context.new_page()  # a second tab of the same session, on the live jobs list
    listing.goto(f"{org.server.url}/ui/jobs")
    expect(listing.locator(f"#job-{job.id}")).to_be_visible()
    page.goto(f"{org.server.url}/ui/jobs/{job.id}")
    expect(page.locator("#job-state")).to_contain_text("running", timeout=WAIT_MS)
    org.server.cli("keys", "revoke", org.key["id"])
    # the open job page's live feed and the list's refresh notice, and send the browser to sign in
    page.wait_for_url(re.compile(r".*/ui/login\?ended=1.*"), timeout=WAIT_MS)
    listing.wait_for_url(re.compile(r".*/ui/login\?.*"), timeout=WAIT_MS)
    expect(page.locator(".notice")).to_contain_text("Sign in again")
    response = page.goto(f"{org.server.url}/ui/jobs")
    assert "/ui/login" in page.url and response is not None and response.status == 200
    release(redis_url, gate)


def test_a_form_post_without_its_csrf_token_is_refused(make_org, redis_url, gates) -> None:
    org = make_org()
    gate = gates()
    job = gated_job(org, redis_url, gate, pieces=1)
    page = org.sign_in()
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    session = cookies["runner_ui"]
    with httpx.Client(base_url=org.server.url, cookies={"runner_ui": session}) as browserless:
        assert browserless.get("/ui/jobs").status_code == 200  # the cookie alone reads
        for form in ({}, {"csrf": "forged"}):
            answer = browserless.post(f"/ui/jobs/{job.id}/cancel", data=form)
            assert answer.status_code == 403, answer.text
            assert "CSRF" in answer.text
        assert browserless.post("/ui/login", data={"api_key": org.key["key"]}).status_code == 403
    assert not job.status().is_final  # nothing was cancelled
    flags = page.context.cookies()
    ui_cookie = next(c for c in flags if c["name"] == "runner_ui")
    assert ui_cookie["httpOnly"] and ui_cookie["sameSite"] == "Strict"
    release(redis_url, gate)
    assert job.wait(timeout=60) == 0


def test_no_asset_comes_from_outside_the_package(make_org) -> None:
    org = make_org()
    page = org.sign_in()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{org.server.url}/ui/templates")
    page.goto(f"{org.server.url}/ui/fleet")
    assert requested and all(url.startswith(org.server.url) for url in requested), requested
    assert page.locator("table.workers").inner_text()  # the fleet page lists the suite's worker


def test_schedules_pause_resume_and_run_now(make_org) -> None:
    from playwright.sync_api import expect

    org = make_org()
    org.client.schedule("squares", name="hourly", every="1h", params={"partitioner": {"count": 2}})
    page = org.sign_in()
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{org.server.url}/ui/schedules")
    row = page.locator("#schedule-hourly")
    expect(row).to_contain_text("on time")
    row.locator("text=Pause").click()
    expect(page.locator("#schedule-hourly")).to_contain_text("paused")
    assert org.client.get_schedule("hourly").info().paused
    page.locator("#schedule-hourly").locator("text=Resume").click()
    expect(page.locator("#schedule-hourly")).to_contain_text("on time")
    page.locator("#schedule-hourly").locator("text=Run now").click()
    page.wait_for_url(re.compile(r".*/ui/jobs/[0-9a-f]{16}$"))
    expect(page.locator("#job-state")).to_contain_text("completed", timeout=WAIT_MS)
    expect(page.locator(".meta")).to_contain_text("schedule hourly")


def test_no_ui_serves_the_api_without_the_dashboard(api_env, tmp_path) -> None:
    from tests.api_fixtures import run_api

    with run_api(api_env, tmp_path / "api.log", "--no-ui") as server:
        assert httpx.get(f"{server.url}/ui/jobs", timeout=10).status_code == 404
        assert httpx.get(f"{server.url}/ui/static/vendor/htmx.min.js", timeout=10).status_code == 404
        token = server.token(server.create_key(f"noui-{uuid.uuid4().hex[:6]}")["key"])
        with server.client(token) as api:
            assert api.get("/v1/jobs").status_code == 200


def test_a_jobs_own_key_sees_that_job_only(make_org, redis_url, gates) -> None:
    from playwright.sync_api import expect

    org = make_org()
    gate = gates()
    job, other = gated_job(org, redis_url, gate, pieces=1), gated_job(org, redis_url, gate, pieces=1)
    key_id, key = create_job_key(org.client.store, org.name, job.id, 3600)  # as an attached job gets one
    org.key = {"id": key_id, "org": org.name, "key": key}
    page = org.sign_in()
    jobs = page.locator("table.jobs")
    expect(jobs).to_contain_text(job.id)
    expect(jobs).not_to_contain_text(other.id)
    assert page.goto(f"{org.server.url}/ui/jobs/{other.id}").status == 404
    assert page.goto(f"{org.server.url}/ui/templates").status == 403
    assert page.goto(f"{org.server.url}/ui/fleet").status == 403
    page.goto(f"{org.server.url}/ui/jobs/{job.id}")
    expect(page.locator("#job-state")).to_contain_text("running", timeout=WAIT_MS)
    expect(page.locator("#cancel")).to_have_count(0)  # it may look, not act
    csrf = page.get_attribute("form[action='/ui/logout'] input[name=csrf]", "value")
    assert page.request.post(f"{org.server.url}/ui/jobs/{job.id}/cancel", form={"csrf": csrf}).status == 403
    assert not job.status().is_final
    release(redis_url, gate, 2)


def test_a_link_from_another_site_opens_the_page_signed_in(make_org, redis_url, gates) -> None:
    """SameSite=Strict keeps the cookie off a cross-site navigation; the page reloads itself
    from its own origin, where the cookie is sent, instead of asking to sign in again."""
    from playwright.sync_api import expect

    org = make_org()
    gate = gates()
    job = gated_job(org, redis_url, gate, pieces=1)
    page = org.sign_in()
    page.goto("about:blank")
    page.set_content(f'<a id="link" href="{org.server.url}/ui/jobs/{job.id}/artifacts">model page</a>')
    page.click("#link")
    page.wait_for_url(f"**/ui/jobs/{job.id}/artifacts")
    expect(page.locator("h1")).to_contain_text(job.id)
    release(redis_url, gate)
