"""The one door for job admission (``runner/admission.py``): every caller gets the same
checks, in one order, with each error under its own field, and nothing is written or
queued for a refused job. The ByteNite timeout over the limit and a schedule's bad
destination were two doors that disagreed; the NUL byte and the http destination were
inputs that escaped every door."""

from __future__ import annotations

import pytest

from runner import InvalidParams, InvalidSchedule, JobState, SourceError
from runner.admission import JobRequest, check

pytestmark = pytest.mark.timeout(120)


def job_count(client) -> int:
    return len(client.jobs(limit=500))


@pytest.fixture
def book(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("the cat\nthe dog\n")
    return path


def test_a_percent_encoded_nul_in_a_source_is_a_field_error_and_nothing_is_queued(client, tmp_path) -> None:
    before = job_count(client)
    with pytest.raises(InvalidParams) as caught:
        client.submit("wordcount", source=f"file://{tmp_path}/in%00.txt")
    assert caught.value.errors[0][0] == "source" and "control character" in caught.value.errors[0][1]
    assert job_count(client) == before


def test_an_http_destination_is_refused_at_submit_naming_the_field(client, book) -> None:
    before = job_count(client)
    with pytest.raises(SourceError, match=r"^destination: http\(s\) URIs are sources only"):
        client.submit("wordcount", source=book.as_uri(), destination="http://127.0.0.1:9/out.json")
    assert job_count(client) == before


def test_collect_returns_every_error_each_under_its_field(client) -> None:
    request = JobRequest(template="wordcount", source="bypass:", destination="http://127.0.0.1:9/x",
                         params={"app": {"lowercase": "nope"}}, job_timeout=10**12, name="\x01", inputs={"x": "bypass:"})
    with pytest.raises(InvalidParams) as caught:
        check(client.services, request, collect=True)
    fields = {field for field, _ in caught.value.errors}
    assert {"name", "job_timeout", "app.lowercase", "inputs.x", "source", "destination"} <= fields, fields


def test_collect_stops_at_an_unknown_template_naming_it(client) -> None:
    with pytest.raises(InvalidParams) as caught:
        check(client.services, JobRequest(template="no-such-template", job_timeout=-1), collect=True)
    assert [field for field, _ in caught.value.errors] == ["template"]


def test_a_schedule_reports_a_bad_destination_under_destination(client, book) -> None:
    with pytest.raises(InvalidSchedule) as caught:
        client.schedule("wordcount", name="bad-dest", every="1h", source=book.as_uri(),
                        destination="https://127.0.0.1:9/out.json")
    assert [field for field, _ in caught.value.errors] == ["destination"]


def test_a_draft_given_a_timeout_over_the_limit_is_refused_and_queueing_rechecks_the_record(client, book) -> None:
    limit = client.settings.max_timeout_seconds
    draft = client.create("wordcount")
    with pytest.raises(InvalidParams) as caught:
        client.run(draft.id, job_timeout=limit * 2)
    assert caught.value.errors[0][0] == "job_timeout"
    draft.set_datasource(source=book.as_uri())
    assert draft.status().state is JobState.DRAFT  # nothing was queued by the refused run
    assert client.run(draft.id).wait(timeout=60) == {"the": 2, "cat": 1, "dog": 1}


def test_a_draft_lacking_its_source_is_refused_when_queued_not_when_made(client) -> None:
    draft = client.create("wordcount")
    with pytest.raises(SourceError, match="reads a source"):
        draft.run()
    assert draft.status().state is JobState.DRAFT
