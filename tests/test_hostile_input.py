"""Hostile and malformed input is refused before anything is written: each bad value
raises a RunnerError naming the field, and the store holds exactly the keys it held."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from runner import Client, InvalidParams, RunnerError, SourceError

ORG = "hostile"


@pytest.fixture
def hostile(settings, worker) -> Client:
    # a control queue nobody consumes: what gets queued here is only ever looked at
    return Client(settings=settings.model_copy(update={"control_queue": "hostile-void"}), org=ORG)


def job_keys(client: Client) -> int:
    return sum(1 for _ in client.store.redis.scan_iter(f"{client.store.prefix}:job:*", count=1000))


BAD = [
    ({"params": {"app": {"blob": "x" * (2 * 1024 * 1024)}}}, InvalidParams, "params: 2097"),
    ({"source": "file:///a\x00b"}, InvalidParams, "source: contains the control character"),
    ({"source": 123}, InvalidParams, "source: must be a URI string"),
    ({"destination": ["s3://b/k"]}, InvalidParams, "destination: must be a URI string"),
    ({"job_timeout": math.nan}, InvalidParams, "job_timeout: Input should be a finite number"),
    ({"job_timeout": math.inf}, InvalidParams, "job_timeout: Input should be a finite number"),
    ({"job_timeout": -5}, InvalidParams, "job_timeout: Input should be greater than 0"),
    ({"task_timeout": 10**9}, InvalidParams, "task_timeout: must be at most"),
    ({"max_retries": 10**6}, InvalidParams, "max_retries: Input should be less than or equal to 100"),
    ({"name": "bad\nname"}, InvalidParams, "name: "),
    ({"retention_hours": -1}, InvalidParams, "retention_hours: must be a number of hours"),
    ({"params": {"app": {"x": math.nan}}}, InvalidParams, "params: must be plain JSON values"),
    ({"params": "not an object"}, InvalidParams, "params: must be an object"),
    ({"inputs": {f"in{i}": "bypass:" for i in range(40)}}, InvalidParams, "inputs: 40 inputs, more than"),
    ({"inputs": {"bad name!": "bypass:"}}, InvalidParams, "inputs: 'bad name!' must be"),
    ({"source": "file:///etc/passwd"}, SourceError, "source: "),
    ({"test": "yes"}, InvalidParams, "test: Input should be a valid boolean"),
]


@pytest.mark.parametrize("arguments, error, message", BAD, ids=[str(list(b[0]))[:40] for b in BAD])
def test_hostile_input_is_refused_naming_the_field_and_nothing_is_written(
    hostile: Client, arguments: dict, error: type, message: str
) -> None:
    before = job_keys(hostile)
    with pytest.raises(error) as refused:
        hostile.submit("squares", **arguments)
    assert message in str(refused.value)
    assert job_keys(hostile) == before


@pytest.mark.parametrize("ref", ["squares\x00", "../etc", "a b", "", 7, None])
def test_a_template_ref_outside_the_allowed_characters_is_refused(hostile: Client, ref) -> None:
    with pytest.raises(InvalidParams, match="template"):
        hostile.submit(ref)


def test_the_staged_flow_refuses_the_same_values(hostile: Client) -> None:
    job = hostile.create("squares")
    with pytest.raises(InvalidParams, match="source: contains the control character"):
        job.set_datasource(source="file:///x\x07")
    with pytest.raises(InvalidParams, match="params: "):
        job.set_params(app={"blob": "y" * (2 * 1024 * 1024)})
    with pytest.raises(InvalidParams, match="job_timeout"):
        job.run(job_timeout=math.nan)
    assert job.status().state.value == "draft" and job.status().params == {}


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=JSON, source=st.one_of(st.text(max_size=40), JSON), name=st.one_of(st.none(), st.text(max_size=30)),
       job_timeout=st.one_of(st.none(), st.floats(), st.integers()))
def test_any_json_and_any_uri_gives_a_job_or_a_runner_error(hostile: Client, tmp_path: Path, params, source, name,
                                                           job_timeout) -> None:
    try:
        job = hostile.submit("squares", params=params, source=source, name=name, job_timeout=job_timeout)
    except RunnerError:
        return
    assert job.status().org == ORG


@hypothesis_settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(section=st.sampled_from(["app", "partitioner", "assembler"]), value=JSON)
def test_any_json_given_to_set_params_gives_a_draft_or_a_runner_error(hostile: Client, section, value) -> None:
    job = hostile.create("squares", retention_hours=0.01)
    try:
        job.set_params(**{section: value})
    except RunnerError:
        return
    assert job.status().state.value == "draft"
