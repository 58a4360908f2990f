"""Attached jobs: a big artifact through ``runner api``, and metric writes.

    .venv/bin/python benchmarks/bench_attach.py                # 2 GB artifact (the figures of record)
    .venv/bin/python benchmarks/bench_attach.py --size-mb 200  # a fast smoke run
    .venv/bin/python benchmarks/bench_attach.py --json

Starts a private Redis and a real ``runner api`` (artifacts on a local ``file://``
directory), creates an attached job and, as its process (``runner.attach.Job``):

- uploads a file of ``--size-mb`` MB (``job.io.upload``, streamed) and downloads it back
  (``job.io.download``), timing each, while a thread samples the RSS of this process
  (the client) and of the API process every 20 ms: peak RSS and growth over the idle one;
  the peer is a plain local copy of the same file (``shutil.copyfile``), the bound the
  upload works against on one disk;
- writes metric values three ways: one ``add_output_metric`` call per value (one HTTP
  request each), ``POST /v1/jobs/{id}/metrics`` with 1,000 values per request, and the
  store call a worker's batch flush makes (``store.metric_series.add``, 1,000
  values per call) — values per second each.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if sys.path[:1] != [str(REPO_ROOT)]:
    sys.path.insert(0, str(REPO_ROOT))
for _key in [k for k in os.environ if k.startswith("RUNNER_")]:
    del os.environ[_key]

import httpx  # noqa: E402
import psutil  # noqa: E402

from benchmarks.bench_api import serve  # noqa: E402
from runner.api.keys import ApiKeys  # noqa: E402
from runner.attach import Job  # noqa: E402
from runner.local import embedded_redis  # noqa: E402
from runner.store import StatusStore  # noqa: E402

MB = 1024 * 1024


class PeakRss:
    """Samples processes' RSS every 20 ms until stopped: the peak of each."""

    def __init__(self, processes: list[psutil.Process]) -> None:
        self.processes, self.done = processes, threading.Event()
        self.idle = [p.memory_info().rss for p in processes]
        self.peak = list(self.idle)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.done.wait(0.02):
            self.peak = [max(peak, p.memory_info().rss) for peak, p in zip(self.peak, self.processes)]

    def stop(self) -> list[dict[str, float]]:
        self.done.set()
        self.thread.join()
        return [{"idle_mb": idle / MB, "peak_mb": peak / MB, "growth_mb": (peak - idle) / MB}
                for idle, peak in zip(self.idle, self.peak)]


def make_file(path: Path, size_mb: int) -> None:
    block = os.urandom(MB)
    with path.open("wb") as out:
        for _ in range(size_mb):
            out.write(block)


def api_pid(port_url: str) -> int:
    """The pid of the process listening on the API's port (the ``runner api`` process)."""
    port = int(port_url.rsplit(":", 1)[1])
    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
            return conn.pid
    raise RuntimeError(f"no process listens on port {port}")


def artifact_run(job: Job, api: psutil.Process, work: Path, size_mb: int) -> dict[str, Any]:
    source = work / "model.bin"
    make_file(source, size_mb)
    began = time.perf_counter()
    shutil.copyfile(source, work / "copy.bin")
    copy_s = time.perf_counter() - began
    (work / "copy.bin").unlink()
    rss = PeakRss([psutil.Process(), api])
    began = time.perf_counter()
    path = job.io.upload(source, "model.bin")
    upload_s = time.perf_counter() - began
    began = time.perf_counter()
    back = job.io.download(path, work / "back.bin")
    download_s = time.perf_counter() - began
    client, server = rss.stop()
    assert back.stat().st_size == source.stat().st_size
    return {"size_mb": size_mb, "upload_s": upload_s, "upload_mb_s": size_mb / upload_s,
            "download_s": download_s, "download_mb_s": size_mb / download_s,
            "local_copy_mb_s": size_mb / copy_s, "upload_vs_local_copy": (size_mb / upload_s) / (size_mb / copy_s),
            "client_rss": client, "api_rss": server}


def metrics_run(job: Job, store: StatusStore, seconds: float) -> dict[str, float]:
    def rate(step: Any, per_call: int) -> float:
        calls, began = 0, time.perf_counter()
        while time.perf_counter() - began < seconds:
            step(calls)
            calls += 1
        return calls * per_call / (time.perf_counter() - began)

    batch = [{"name": f"m{i % 10}", "value": float(i)} for i in range(1000)]
    return {
        "sdk_one_per_request_values_s": rate(lambda i: job.add_output_metric("loss", float(i), step=i), 1),
        "http_1000_per_request_values_s": rate(lambda i: job.api.metrics(batch), 1000),
        "store_1000_per_flush_values_s": rate(lambda i: store.metric_series.add(job.id, batch), 1000),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=2048)
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per metrics case")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-attach-") as tmp:
        (Path(tmp) / "redis").mkdir()
        with embedded_redis(Path(tmp) / "redis") as redis_url:
            results = run(Path(tmp), redis_url, args.size_mb, args.seconds)
    print(json.dumps(results, indent=2) if args.json else _text(results))


def run(work: Path, redis_url: str, size_mb: int, seconds: float) -> dict[str, Any]:
    """Both measurements against a fresh ``runner api`` on ``redis_url``."""
    env = {**os.environ, "RUNNER_BROKER_URL": redis_url, "RUNNER_FILE_ROOTS": str(work),
           "RUNNER_API_RATE_LIMIT": "100000000/hour"}
    store = StatusStore(redis_url)
    _, key = ApiKeys(store).create("bench")
    runner_cmd = [str(Path(sys.executable).with_name("runner")), "api", "--log-level", "warning"]
    with serve(runner_cmd, env, work / "api.log") as url:
        token = httpx.post(f"{url}/v1/auth/access_token", json={"apiKey": key}).json()["token"]
        made = httpx.post(f"{url}/v1/jobs", json={"attach": True, "name": "bench"},
                          headers={"Authorization": f"Bearer {token}"}).json()
        job = Job.init(made["id"], made["apiKey"], host=url, argv=[])
        results = {"machine": {"nproc": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
                               "python": platform.python_version()},
                   "artifact": artifact_run(job, psutil.Process(api_pid(url)), work, size_mb),
                   "metrics": metrics_run(job, store, seconds)}
    return results


def _text(results: dict[str, Any]) -> str:
    a, m = results["artifact"], results["metrics"]
    return "\n".join([
        f"artifact {a['size_mb']} MB: upload {a['upload_mb_s']:.0f} MB/s ({a['upload_s']:.1f}s), "
        f"download {a['download_mb_s']:.0f} MB/s ({a['download_s']:.1f}s); local copy {a['local_copy_mb_s']:.0f} MB/s "
        f"(upload = {a['upload_vs_local_copy']:.2f}× it)",
        f"peak RSS: client {a['client_rss']['peak_mb']:.0f} MB (+{a['client_rss']['growth_mb']:.0f}), "
        f"API {a['api_rss']['peak_mb']:.0f} MB (+{a['api_rss']['growth_mb']:.0f})",
        f"metrics: {m['sdk_one_per_request_values_s']:.0f} values/s one per request; "
        f"{m['http_1000_per_request_values_s']:.0f}/s 1000 per request; "
        f"{m['store_1000_per_flush_values_s']:.0f}/s 1000 per store flush",
    ])


if __name__ == "__main__":
    main()
