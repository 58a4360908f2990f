"""A user's mistakes on the command line get one line naming the value and the fix, and
an exit status (2: usage, 1: failure) — never a traceback unless --debug asks for one."""

from __future__ import annotations

import re
import sys
import uuid
from pathlib import Path

import pytest

from runner import Client, InvalidParams
from runner.local import free_port
from tests.cli import REPO, cli_env, ended, one_line_error, run_cli


@pytest.fixture
def env(redis_url: str, worker, file_roots) -> dict[str, str]:
    return cli_env(redis_url, file_roots, org=f"errors-{uuid.uuid4().hex[:8]}")


def test_an_unreachable_broker_is_one_line_from_every_command_with_the_password_hidden() -> None:
    port = free_port()
    env = {"RUNNER_BROKER_URL": f"redis://:hunter2secret@127.0.0.1:{port}/0", "RUNNER_INCLUDE": "tests.jobs"}
    expected = (f"error: cannot reach the broker at redis://:***@127.0.0.1:{port}/0 (Connection refused); "
                f"start Redis or set RUNNER_BROKER_URL")
    for command in (["jobs"], ["status", "abc"], ["submit", "squares"], ["workers"], ["result", "abc"],
                    ["logs", "abc"], ["cancel", "abc"], ["watch", "abc"], ["retry", "abc"]):
        done = run_cli(*command, env=env, status=1)
        assert one_line_error(done) == expected, command
        assert "hunter2secret" not in done.stderr


def test_a_malformed_broker_url_is_a_usage_error() -> None:
    done = run_cli("jobs", env={"RUNNER_BROKER_URL": "http://user:pw@example.com/0"}, status=2)
    message = one_line_error(done)
    assert "RUNNER_BROKER_URL 'http://user:***@example.com/0' is not a Redis URL" in message
    assert "use redis://HOST:PORT/DB" in message and "pw@" not in message


def test_debug_shows_the_traceback_and_only_then(env) -> None:
    unreachable = {**env, "RUNNER_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"}
    assert "Traceback" not in run_cli("jobs", env=unreachable, status=1).stderr
    assert "Traceback" in run_cli("--debug", "jobs", env=unreachable, status=1).stderr
    assert "Traceback" in run_cli("jobs", env={**unreachable, "RUNNER_DEBUG": "1"}, status=1).stderr


def test_bad_params_json_is_a_usage_error_naming_the_option(env) -> None:
    done = run_cli("submit", "squares", "--params-json", "{bad", env=env, status=2)
    message = one_line_error(done)
    assert "--params-json" in message and "'{bad' is not valid JSON" in message
    listed = one_line_error(run_cli("submit", "squares", "--params-json", "[1]", env=env, status=2))
    assert "must be a JSON object" in listed


def test_bad_p_values_are_usage_errors(env) -> None:
    assert "use section.field=value" in one_line_error(run_cli("submit", "squares", "-p", "count", env=env, status=2))
    invalid = one_line_error(run_cli("submit", "squares", "-p", "partitioner.count=many", env=env, status=2))
    assert "partitioner.count: Input should be a valid integer" in invalid
    clash = one_line_error(run_cli("submit", "squares", "-p", "app.x=1", "-p", "app.x.y=2", env=env, status=2))
    assert "app.x is already set to a value" in clash


@pytest.mark.parametrize("value, shown", [("0", "got 0.0"), ("-5", "got -5.0"), ("nan", "got nan")])
def test_a_bad_task_timeout_names_the_value_and_queues_nothing(env, settings, value: str, shown: str) -> None:
    client = Client(settings=settings, org=env["RUNNER_ORG"])
    done = run_cli("submit", "squares", "--task-timeout", value, env=env, status=2)
    message = one_line_error(done)
    assert "task_timeout: " in message and shown in message
    assert client.jobs() == []


def test_the_client_raises_invalid_params_for_a_bad_timeout(settings, worker) -> None:
    client = Client(settings=settings, org=f"timeouts-{uuid.uuid4().hex[:6]}")
    with pytest.raises(InvalidParams, match=r"job_timeout: .*greater than 0, got 0"):
        client.submit("squares", job_timeout=0)
    with pytest.raises(InvalidParams, match=r"task_timeout: .*, got inf"):
        client.submit("squares", task_timeout=float("inf"))
    assert client.jobs() == []


def test_an_unknown_template_says_how_to_make_it_known(env) -> None:
    message = one_line_error(run_cli("submit", "no-such-template", env=env, status=2))
    assert "unknown template 'no-such-template'" in message and "RUNNER_INCLUDE" in message


def test_a_bad_simplejob_argument_is_one_line(env) -> None:
    script = [sys.executable, str(REPO / "tests" / "simple_jobs.py")]
    done = run_cli("--lr", "fast", env=env, status=2, command=script)
    message = one_line_error(done)
    assert "--lr: Input should be a valid number" in message and "'fast'" in message


def test_a_simplejob_whose_module_no_worker_imports_names_the_module(env, tmp_path: Path) -> None:
    (tmp_path / "lonely.py").write_text(
        "from pydantic import BaseModel\nfrom runner import SimpleJob\n\n"
        "class LonelySettings(BaseModel):\n    count: int = 1\n\n"
        "class Lonely(SimpleJob):\n    settings: LonelySettings\n    def run(self):\n        return self.settings.count\n\n"
        "if __name__ == '__main__':\n    Lonely.main()\n")
    done = run_cli("--count", "2", env={**env, "RUNNER_INCLUDE": ""}, status=1, command=[sys.executable, str(tmp_path / "lonely.py")], cwd=tmp_path)
    assert "Traceback" not in done.stderr
    assert "no worker imports module 'lonely': start one with runner worker --include lonely" in done.stderr


def test_runner_jobs_piped_keeps_whole_ids_and_filters(env, settings) -> None:
    client = Client(settings=settings, org=env["RUNNER_ORG"])
    squares = [client.submit("squares", params={"partitioner": {"count": 2}}) for _ in range(3)]
    echo = client.submit("echo-list", params={"partitioner": {"count": 2}})
    for job in [*squares, echo]:
        job.wait(timeout=60)
    out = run_cli("jobs", env=env).stdout  # piped, like `runner jobs | cat`, and no COLUMNS
    for job in [*squares, echo]:
        assert re.search(rf"\b{job.id}\b", out), out
    assert "template" in out and "age" in out and "2/2 100%" in out
    only = run_cli("jobs", "--template", "echo-list", env=env).stdout
    assert echo.id in only and not any(job.id in only for job in squares)
    limited = run_cli("jobs", "--limit", "2", "--json", env=env).stdout
    assert limited.count('"id"') == 2


def test_an_error_message_keeps_its_brackets_and_single_spaces(env, settings) -> None:
    client = Client(settings=settings, org=env["RUNNER_ORG"])
    job = client.submit("exploding", params={"partitioner": {"after": 2}})
    ended(job)
    done = run_cli("result", job.id, env=env, status=1)
    message = one_line_error(done)
    assert f"job {job.id} failed: [partition] ValueError: cannot split this source: bad header" in message
    assert "  " not in message.splitlines()[0]


def test_status_renders_the_error_as_fields_and_the_traceback_as_text(env, settings, tmp_path: Path) -> None:
    client = Client(settings=settings, org=env["RUNNER_ORG"])
    job = client.submit("flaky", params={"partitioner": {"count": 3}, "app": {"flag_dir": str(tmp_path),
                                                                             "bad_pieces": [1], "once": False}},
                        max_retries=0)
    ended(job)
    out = run_cli("status", job.id, env=env).stdout
    rows = dict(line.split(None, 1) for line in out.splitlines() if line.startswith("error."))
    assert rows["error.stage"].strip() == "app" and rows["error.piece"].strip() == "1"
    assert rows["error.type"].strip() == "ValueError" and rows["error.message"].strip() == "piece 1 is bad input"
    assert "error.traceback" in rows and 'raise ValueError(f"piece {piece} is bad input")' in out
    assert "{'stage'" not in out  # not a raw dict
