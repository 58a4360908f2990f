"""The dashboard's parts without a browser.

The job list query (``runner/ui/joblist.py``) against a real Redis: every job exactly
once, newest first, across pages and filters, ties on the creation time included;
expired jobs skipped; a filter that matches little stops at its bound. And a params form
generated from a published JSON Schema, read back into params the one validation takes."""

from __future__ import annotations

import json
import uuid

import pytest

from runner.models import JobState
from runner.store import StatusStore
from runner.ui import joblist
from runner.ui.joblist import JobFilter, page_of_jobs

pytestmark = pytest.mark.timeout(60)


def _seed(store: StatusStore, org: str, count: int) -> list[str]:
    """``count`` jobs; every third is failed, every fourth is named "nightly", and pairs share
    a creation time (ties). Returns their ids newest first, as Redis orders them."""
    entries = []
    with store.redis.pipeline(transaction=False) as pipe:
        for n in range(count):
            job_id = f"{n:04d}{uuid.uuid4().hex[:12]}"
            created = 1_700_000_000 + n // 2
            record = {"id": job_id, "org": org, "template": "squares@1.0.0", "state": "failed" if n % 3 == 0 else
                      "completed", "name": "nightly" if n % 4 == 0 else None, "task_timeout": 1.0,
                      "job_timeout": 1.0, "max_retries": 0, "retention_hours": 1.0, "queue": "default",
                      "created_at": created}
            pipe.hset(store.job_key(job_id), mapping={k: json.dumps(v) for k, v in record.items()})
            pipe.zadd(store.org_jobs_key(org), {job_id: created})
            entries.append((created, job_id))
        pipe.execute()
    return [job_id for _, job_id in sorted(entries, reverse=True)]


def _walk(store: StatusStore, org: str, flt: JobFilter, limit: int) -> list[str]:
    seen, cursor = [], None
    for _ in range(1000):
        page = page_of_jobs(store, org, flt, cursor, limit)
        seen += [job.id for job in page.jobs]
        cursor = page.next_cursor
        if cursor is None:
            return seen
    raise AssertionError("paging did not end")


@pytest.fixture
def store(redis_url: str) -> StatusStore:
    return StatusStore(redis_url)


def test_pages_cover_every_job_once_newest_first_with_ties(store: StatusStore) -> None:
    org = f"jl-{uuid.uuid4().hex[:8]}"
    ids = _seed(store, org, 101)
    assert _walk(store, org, JobFilter(), limit=7) == ids
    assert page_of_jobs(store, org, JobFilter()).in_range == 101


def test_filters_page_through_only_matching_jobs(store: StatusStore, monkeypatch: pytest.MonkeyPatch) -> None:
    org = f"jl-{uuid.uuid4().hex[:8]}"
    ids = _seed(store, org, 90)
    failed = [i for i in ids if int(i[:4]) % 3 == 0]
    assert _walk(store, org, JobFilter(state=JobState.FAILED), limit=4) == failed
    nightly_failed = [i for i in failed if int(i[:4]) % 4 == 0]
    assert _walk(store, org, JobFilter(state=JobState.FAILED, name="NIGHT"), limit=2) == nightly_failed
    monkeypatch.setattr(joblist, "CHUNK", 10)
    monkeypatch.setattr(joblist, "MAX_SCAN", 20)  # a bounded scan hands back a cursor to carry on
    first = page_of_jobs(store, org, JobFilter(state=JobState.RUNNING))
    assert first.jobs == [] and first.scanned == 20 and first.next_cursor is not None
    assert _walk(store, org, JobFilter(state=JobState.FAILED), limit=4) == failed


def test_a_time_range_and_expired_jobs(store: StatusStore) -> None:
    org = f"jl-{uuid.uuid4().hex[:8]}"
    ids = _seed(store, org, 20)
    store.redis.delete(store.job_key(ids[0]))  # expired: only its index entry is left
    window = JobFilter(since=1_700_000_002, until=1_700_000_005)
    expected = [i for i in ids if 4 <= int(i[:4]) <= 11]
    assert _walk(store, org, window, limit=3) == expected
    assert ids[0] not in _walk(store, org, JobFilter(state=JobState.FAILED), limit=50)
    assert ids[0] not in _walk(store, org, JobFilter(), limit=50)
    assert _walk(store, f"other-{org}", JobFilter(), limit=5) == []


def test_a_params_form_round_trips_through_the_published_schema() -> None:
    import enum

    from pydantic import BaseModel, Field

    from runner.catalog import TemplateInfo, schema_of
    from runner.params import validate_params
    from runner.ui.forms import form_fields, read_params

    class Mode(str, enum.Enum):
        fast = "fast"
        careful = "careful"

    class AppParams(BaseModel):
        threshold: float = Field(0.5, description="Cut-off.")
        rounds: int = 3
        mode: Mode = Mode.fast
        verbose: bool = True
        tags: list[str] = []
        label: str | None = None

    info = TemplateInfo(ref="t@1.0.0", name="t", version="1.0.0", partitioner="p", app="a", assembler="s",
                        params_schema={"app": schema_of(AppParams), "partitioner": None, "assembler": None})
    fields = {f.name: f for f in form_fields(info)["app"]}
    assert {name: f.widget for name, f in fields.items()} == {
        "app.threshold": "number", "app.rounds": "integer", "app.mode": "select", "app.verbose": "checkbox",
        "app.tags": "json", "app.label": "text"}
    assert fields["app.mode"].options == ("fast", "careful") and fields["app.threshold"].value == "0.5"
    assert fields["app.threshold"].description == "Cut-off."
    form = {"app.threshold": "0.75", "app.rounds": "", "app.mode": "careful", "app.tags": '["a", "b"]',
            "app.label": "x"}  # verbose unticked; rounds left empty keeps its default
    params = read_params(info, form)
    assert params == {"app": {"threshold": 0.75, "mode": "careful", "verbose": False, "tags": ["a", "b"], "label": "x"}}
    assert validate_params(info, params)["app"]["rounds"] == 3
    bad = read_params(info, {"app.rounds": "three"})
    with pytest.raises(Exception) as refused:
        validate_params(info, bad)
    assert "app.rounds" in str(refused.value)


def test_every_page_script_and_style_ships_in_the_wheel() -> None:
    """The package-data globs cover every file the dashboard serves (no CDN, no build)."""
    import fnmatch
    import tomllib
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    globs = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["runner.ui"]
    package = repo / "runner" / "ui"
    served = [p.relative_to(package).as_posix() for sub in ("templates", "static") for p in (package / sub).rglob("*")
              if p.is_file()]
    assert "static/vendor/htmx.min.js" in served and "static/vendor/uPlot.iife.min.js" in served
    assert [name for name in served if not any(fnmatch.fnmatch(name, g) for g in globs)] == []
    for page in (package / "templates").glob("*.html"):  # nothing from another origin
        assert "http://" not in page.read_text() and "https://" not in page.read_text(), page
