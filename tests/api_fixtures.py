"""A real ``runner api`` for the HTTP tests: started through the CLI on a free port,
against the suite's Redis (and S3), waited for on ``/healthz``, stopped by PID.

Keys are made in-process by the same code as ``runner keys create --json`` (one test
makes its key with the CLI itself). Each
session uses fresh org names, so lists and counts never see another run's jobs.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from runner.api.keys import ApiKeys
from runner.local import free_port, stop_process, wait_until
from runner.store import StatusStore
from tests.conftest import TEST_MODULES, s3_env

__all__ = ["ApiServer", "run_api", "api_env", "api_server", "api_client", "api_a", "api_b", "org_a", "org_b",
           "METRICS_TOKEN"]

METRICS_TOKEN = "mt-suite-prometheus"  # RUNNER_METRICS_TOKEN of the suite's API: reads every org's metrics


def runner_command() -> list[str]:
    """The ``runner`` console script of this environment."""
    script = Path(sys.executable).with_name("runner")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from runner.cli import main; main()"]


@dataclass
class ApiServer:
    url: str
    env: dict[str, str]
    proc: subprocess.Popen
    log: Path

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run ``runner ARGS`` with the server's settings."""
        return subprocess.run([*runner_command(), *args], env=self.env, capture_output=True, text=True,
                              timeout=60, check=check)

    def create_key(self, org: str) -> dict[str, str]:
        """A new key of ``org``, ``{id, org, key}``, made in this process as ``runner keys
        create --org ORG --json`` makes it (a subprocess per key cost seconds of setup per
        test on a busy machine; test_api_auth keeps one CLI-made key)."""
        key_id, key = ApiKeys(StatusStore(self.env["RUNNER_STORE_URL"])).create(org)
        return {"id": key_id, "org": org, "key": key}

    def create_key_with_cli(self, org: str) -> dict[str, str]:
        """``runner keys create --org ORG --json``: ``{id, org, key}``, as an operator makes it."""
        return json.loads(self.cli("keys", "create", "--org", org, "--json").stdout)

    def token(self, api_key: str) -> str:
        answer = httpx.post(f"{self.url}/v1/auth/access_token", json={"apiKey": api_key}, timeout=30)
        answer.raise_for_status()
        return answer.json()["token"]

    def client(self, token: str | None, bare: bool = False) -> httpx.Client:
        """An httpx client on the server, sending ``token`` as ``Bearer`` (or bare)."""
        headers = {"Authorization": token if bare else f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@contextlib.contextmanager
def run_api(env: dict[str, str], log: Path, *args: str) -> Iterator[ApiServer]:
    """``runner api --port <free> ARGS`` until the block ends."""
    port = free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen([*runner_command(), "api", "--port", str(port), *args], env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(healthy, f"runner api on port {port}", proc, log, timeout=90)
        yield ApiServer(url, env, proc, log)
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def api_env(redis_url: str, file_roots: list[Path], s3) -> dict[str, str]:
    """The environment of ``runner api`` and ``runner keys`` in the suite."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    return {**env, "RUNNER_BROKER_URL": redis_url, "RUNNER_RESULT_BACKEND": redis_url,
            "RUNNER_STORE_URL": redis_url, "RUNNER_INCLUDE": ",".join(TEST_MODULES),
            "RUNNER_FILE_ROOTS": ",".join(str(root) for root in file_roots),
            "RUNNER_API_RATE_LIMIT": "100000/minute", "RUNNER_METRICS_TOKEN": METRICS_TOKEN, **s3_env(s3)}


@pytest.fixture(scope="session")
def api_server(api_env: dict[str, str], server_dir: Path) -> Iterator[ApiServer]:
    with run_api(api_env, server_dir / "api.log") as server:
        yield server


@pytest.fixture(scope="session")
def org_a() -> str:
    return f"a-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def org_b() -> str:
    return f"b-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def api_client(api_server: ApiServer) -> Callable[..., httpx.Client]:
    """A factory: ``api_client(org, bare=False)`` is an httpx client with a fresh token of a
    fresh key of ``org`` (a new org when omitted); closed after the test."""
    made: list[httpx.Client] = []

    def make(org: str | None = None, bare: bool = False) -> httpx.Client:
        key = api_server.create_key(org or f"o-{uuid.uuid4().hex[:8]}")
        made.append(api_server.client(api_server.token(key["key"]), bare=bare))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture(scope="session")
def _token_a(api_server: ApiServer, org_a: str) -> str:
    return api_server.token(api_server.create_key(org_a)["key"])


@pytest.fixture(scope="session")
def _token_b(api_server: ApiServer, org_b: str) -> str:
    return api_server.token(api_server.create_key(org_b)["key"])


@pytest.fixture
def api_a(api_server: ApiServer, _token_a: str) -> Iterator[httpx.Client]:
    """httpx on the API as org A (``Bearer`` token)."""
    with api_server.client(_token_a) as client:
        yield client


@pytest.fixture
def api_b(api_server: ApiServer, _token_b: str) -> Iterator[httpx.Client]:
    """httpx on the API as org B."""
    with api_server.client(_token_b) as client:
        yield client


def wait_state(api: httpx.Client, path: str, states: set[str], timeout: float,
               job_of: Callable[[dict], dict] = lambda body: body) -> dict:
    """Poll ``GET path`` (a job, in any route family) until its state is one of ``states``."""
    deadline = time.monotonic() + timeout
    while True:
        answer = api.get(path)
        assert answer.status_code == 200, answer.text
        job = job_of(answer.json())
        if job["state"] in states:
            return job
        assert time.monotonic() < deadline, f"{path} still {job['state']}, wanted {states}"
        time.sleep(0.05)  # the poll interval
