"""Executable engines: what Runner adds to starting one process per piece.

    .venv/bin/python benchmarks/bench_executables.py            # 1,000 chunks of 1 KiB
    .venv/bin/python benchmarks/bench_executables.py --quick    # 200 chunks
    .venv/bin/python benchmarks/bench_executables.py --json     # machine-readable results

Starts a private Redis and one worker of 2 processes (``runner.local.local_cluster``),
imports a template of a partitioner engine that cuts the source into 1 KiB chunks and an
app engine that copies its ``data.bin`` to its results (``json_list`` assembles the file
lists), and runs one job over a source of N KiB. It reports:

- **job pieces/s**: N over the whole job, submit to result (partition, apps, assembly);
- **per piece in Runner**: the app phase (from the "partitioned" log line to the last
  app's output line) times the 2 worker processes, over N — one process's time per piece:
  staging ``data.bin`` from the job's scratch space, the process, uploading its result,
  recording it;
- **bare per piece**: a loop in this process of ``subprocess.run([python, main.py])``
  with the same environment and the same files (a fresh ``data.bin`` and results
  directory per piece), one after another.

- **2 bare loops**: the same loop, two side by side (as the two worker processes run),
  wall time per piece.

Goal: Runner's app phase per piece is at most 1.5× the two bare loops' (``overhead`` ≤
50%). Comparing like with like (two processes at a time on both sides) keeps the figure
honest on a loaded machine, where the 2 worker processes do not get 2 whole CPUs.
The exit status is 0 when the goal is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if sys.path[:1] != [str(REPO_ROOT)]:
    sys.path.insert(0, str(REPO_ROOT))
for _key in [k for k in os.environ if k.startswith("RUNNER_")]:
    del os.environ[_key]

from runner.engines import import_template  # noqa: E402
from runner.local import local_cluster  # noqa: E402

CHUNK = 1024
PARTITIONER = '''import os
source, chunks = os.environ["SOURCE_DIR"], os.environ["CHUNKS_DIR"]
index = 0
for name in sorted(os.listdir(source)):
    with open(os.path.join(source, name), "rb") as f:
        while block := f.read(%d):
            with open(os.path.join(chunks, f"data_{index}.bin"), "wb") as out:
                out.write(block)
            index += 1
''' % CHUNK
APP = '''import os, shutil
shutil.copyfile(os.path.join(os.environ["TASK_DIR"], "data.bin"), os.path.join(os.environ["TASK_RESULTS_DIR"], "copy.bin"))
print("copied", os.environ["CHUNK_NUMBER"])
'''


def write_engines(root: Path) -> Path:
    """The two engines and a template.json in ``root``; returns the template file."""
    for name, kind, code in (("cutter", "partitioner", PARTITIONER), ("copier", "app", APP)):
        (root / name / "app").mkdir(parents=True)
        (root / name / "manifest.json").write_text(json.dumps(
            {"name": name, "version": "1.0", "type": kind, "entrypoint": "main.py"}))
        (root / name / "app" / "main.py").write_text(code)
    template = root / "template.json"
    template.write_text(json.dumps({"id": "bench-exec", "partitioner": "cutter", "app": "copier",
                                    "assembler": "json_list", "params": {}}))
    return template


def bare_loop(app: Path, chunks: int, work: Path, loops: int = 1) -> float:
    """Wall seconds per piece of running the app directly, one process after another, in
    ``loops`` such loops side by side (threads; each waits on its own process)."""
    started = time.perf_counter()
    threads = [threading.Thread(target=_loop, args=(app, range(i, chunks, loops), work)) for i in range(loops)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return (time.perf_counter() - started) / chunks


def _loop(app: Path, indices: range, work: Path) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    data = os.urandom(CHUNK)
    for index in indices:
        piece = Path(tempfile.mkdtemp(dir=work))
        (piece / "task").mkdir()
        (piece / "results").mkdir()
        (piece / "task" / "data.bin").write_bytes(data)
        env = {**base, "TASK_DIR": str(piece / "task"), "TASK_RESULTS_DIR": str(piece / "results"),
               "APP_PARAMS": "{}", "CHUNK_NUMBER": str(index)}
        subprocess.run([sys.executable, str(app)], cwd=app.parent, env=env, check=True, capture_output=True)
        assert (piece / "results" / "copy.bin").read_bytes() == data
        shutil.rmtree(piece)


def runner_job(root: Path, template: Path, chunks: int) -> dict[str, float]:
    """One job of ``chunks`` pieces on a 2-process worker: its figures."""
    source = root / "source.bin"
    source.write_bytes(os.urandom(CHUNK * chunks))
    with local_cluster(workers=2, file_roots=[root]) as client:
        ref = import_template(template, client.store, client.storages, client.settings).ref
        warm = client.submit(ref, source=source.as_uri(), params={}, test=True)
        warm.wait(timeout=120)
        started = time.perf_counter()
        job = client.submit(ref, source=source.as_uri(), task_timeout=60, job_timeout=1800)
        files = job.wait(timeout=1800)
        elapsed = time.perf_counter() - started
        assert len(files) == chunks and all(f[0]["bytes"] == CHUNK for f in files)
        lines = job.logs()
        begin = next(line.t for line in lines if line.source == "runner" and line.msg.startswith("partitioned"))
        end = max(line.t for line in lines if line.source == "app")
    app_phase = (end - begin).total_seconds()
    return {"job_seconds": elapsed, "pieces_per_second": chunks / elapsed, "app_phase_seconds": app_phase,
            "runner_per_piece_ms": app_phase * 2 / chunks * 1000, "runner_wall_per_piece_ms": app_phase / chunks * 1000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 chunks instead of 1,000")
    parser.add_argument("--chunks", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="results as JSON on stdout")
    args = parser.parse_args()
    chunks = args.chunks or (200 if args.quick else 1000)
    with tempfile.TemporaryDirectory(prefix="bench-exec-") as tmp:
        root = Path(tmp)
        template = write_engines(root)
        app = root / "copier" / "app" / "main.py"
        bare_ms = bare_loop(app, chunks, root) * 1000
        bare2_ms = bare_loop(app, chunks, root, loops=2) * 1000
        figures = runner_job(root, template, chunks)
    figures.update(chunks=chunks, bare_per_piece_ms=bare_ms, bare_2_loops_wall_per_piece_ms=bare2_ms,
                   overhead=figures["runner_wall_per_piece_ms"] / bare2_ms - 1, cpus=os.cpu_count() or 0,
                   python=platform.python_version(), load_average=os.getloadavg()[0])
    met = figures["overhead"] <= 0.5
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"{chunks} chunks of {CHUNK} B, 2 worker processes, {figures['cpus']} CPUs, Python {figures['python']}")
        print(f"  job: {figures['job_seconds']:.1f} s, {figures['pieces_per_second']:.1f} pieces/s")
        print(f"  one process's time per piece: Runner {figures['runner_per_piece_ms']:.1f} ms, "
              f"bare subprocess.run loop {bare_ms:.1f} ms")
        print(f"  wall time per piece, 2 at a time: Runner {figures['runner_wall_per_piece_ms']:.1f} ms, "
              f"2 bare loops {bare2_ms:.1f} ms -> overhead {figures['overhead']:+.0%} "
              f"({'met' if met else 'NOT met'}: goal <= +50%); load average {figures['load_average']:.1f}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
