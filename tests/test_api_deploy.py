"""The compose file's `api` service: its command really serves the API, and its health
check passes against it."""

from __future__ import annotations

import subprocess
import sys

import httpx
import yaml

from runner.local import free_port, stop_process, wait_until
from tests.api_fixtures import runner_command
from tests.conftest import REPO


def test_the_compose_api_service_serves_healthz_and_passes_its_health_check(api_env, tmp_path):
    service = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["api"]
    assert all(str(port).startswith("127.0.0.1:") for port in service["ports"])
    port = str(free_port())
    command = [part.replace("${API_WORKERS:-2}", "1").replace("0.0.0.0", "127.0.0.1").replace("8000", port)
               for part in service["command"]]
    assert command[:2] == ["runner", "api"]
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*runner_command(), *command[1:]], env=api_env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, "the compose api command", proc, log, timeout=90)
        check = [part.replace("8000", port) for part in service["healthcheck"]["test"][1:]]
        assert check[0] == "python"
        assert subprocess.run([sys.executable, *check[1:]], timeout=30).returncode == 0
    finally:
        stop_process(proc)
