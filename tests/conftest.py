"""Real servers for the suite: a Redis server and a prefork Celery worker, on free
ports, in temp dirs, stopped by PID. A server that cannot start fails the tests."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner import Client, get_settings
from runner.local import embedded_redis, worker_process

TEST_MODULES = ["tests.jobs", "tests.simple_jobs", "examples.wordcount", "examples.object_report"]
REPO = Path(__file__).resolve().parent.parent

# A developer's RUNNER_* settings must not leak into the suite.
for _key in [k for k in os.environ if k.startswith("RUNNER_")]:
    del os.environ[_key]
# Runner's data dir (artifacts) defaults under XDG_DATA_HOME: the suite's goes to a temp dir,
# shared by every process the tests start, never into the developer's own.
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="runner-test-data-")


@pytest.fixture(scope="session")
def server_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def redis_url(server_dir: Path) -> Iterator[str]:
    directory = server_dir / "redis"
    directory.mkdir()
    with embedded_redis(directory) as url:
        yield url


@pytest.fixture(scope="session")
def worker_log(server_dir: Path) -> Path:
    return server_dir / "worker.log"


@pytest.fixture(scope="session")
def file_roots(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Where test jobs may read and write files: pytest's temp dirs and the repo."""
    return [tmp_path_factory.getbasetemp().resolve(), REPO]


def s3_env(s3) -> dict[str, str]:
    """The RUNNER_S3_* settings that point a process at the test S3 server."""
    return {"RUNNER_S3_ENDPOINT_URL": s3.endpoint_url, "RUNNER_S3_ACCESS_KEY_ID": s3.access_key,
            "RUNNER_S3_SECRET_ACCESS_KEY": s3.secret_key, "RUNNER_S3_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def worker(redis_url: str, worker_log: Path, file_roots: list[Path], s3) -> Iterator[None]:
    with worker_process(redis_url, include=TEST_MODULES, concurrency=2, log_path=worker_log, file_roots=file_roots,
                        env=s3_env(s3)):
        yield


@pytest.fixture(scope="session")
def settings(redis_url: str, file_roots: list[Path], s3):
    return get_settings(broker_url=redis_url, result_backend=redis_url, store_url=redis_url, include=TEST_MODULES,
                        file_roots=file_roots, s3_endpoint_url=s3.endpoint_url, s3_access_key_id=s3.access_key,
                        s3_secret_access_key=s3.secret_key, s3_region="us-east-1")


@pytest.fixture
def client(settings, worker) -> Client:
    return Client(settings=settings)


# -- S3: a real SeaweedFS server (tests/s3server.py) ---------------------------------------


@pytest.fixture(scope="session")
def s3(server_dir: Path):
    """A SeaweedFS S3 server for the whole session. Every worker test depends on it (the
    session worker gets its settings), so it starts with the first test that needs a worker."""
    from tests.s3server import seaweed_s3

    directory = server_dir / "s3"
    directory.mkdir()
    with seaweed_s3(directory) as server:
        yield server


@pytest.fixture(scope="session")
def s3_settings(s3):
    """Settings pointing s3:// at the test server (and no file roots)."""
    return get_settings(file_roots=[], s3_endpoint_url=s3.endpoint_url, s3_access_key_id=s3.access_key,
                        s3_secret_access_key=s3.secret_key, s3_region="us-east-1")


@pytest.fixture
def bucket(s3) -> str:
    """A fresh, empty bucket of its own for one test."""
    import uuid

    name = f"test-{uuid.uuid4().hex[:20]}"
    s3.client().create_bucket(Bucket=name)
    return name


# -- HTTP API: a real `runner api` (tests/api_fixtures.py) ----------------------------------
from tests.api_fixtures import (  # noqa: E402,F401
    _token_a, _token_b, api_a, api_b, api_client, api_env, api_server, org_a, org_b,
)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failing test that used the session worker shows the end of that worker's log:
    a worker that stopped serving explains itself in CI's output."""
    report = yield
    log = getattr(item, "funcargs", {}).get("worker_log") if "worker" in getattr(item, "fixturenames", ()) else None
    if report.failed and report.when == "call" and log is not None and log.exists():
        report.sections.append(("session worker log (last 40 lines)",
                                "\n".join(log.read_text(errors="replace").splitlines()[-40:])))
    return report
