"""Big inputs, bounded memory: the ``bytes`` and ``lines`` partitioners over a generated
2 GiB text file, on ``file://`` and on S3 (a real SeaweedFS), measuring the partitioner
process's peak RSS and its throughput.

    .venv/bin/python benchmarks/bench_big_input.py                  # the full run: 2 GiB, file:// and S3
    .venv/bin/python benchmarks/bench_big_input.py --size-mb 256 --skip-s3   # a quick run
    .venv/bin/python benchmarks/bench_big_input.py --json           # machine-readable results

What is measured is the production partition step (``workers/tasks.py::partition``)
minus the Celery task around it: in a FRESH child process per case (so its peak RSS is
the partitioner's alone, not the benchmark's), with the same modules a worker has loaded
(``workers.tasks``), it builds ``Storages(settings)``, ``storages.source(uri)``, a
``TaskContext`` with the partitioner's params model, calls the registered partitioner and
streams its pieces into a real Redis with ``StatusStore.store_pieces`` — timed from the
call to the last piece stored. The child then reads ``getrusage(RUSAGE_SELF).ru_maxrss``
(the kernel's high-water mark of its resident set) and checks the pieces it stored:

- ``bytes``: ranges are contiguous, cover ``[0, size)``, each ``piece_size`` long but the
  last; a sample of pieces is read back with ``ctx.read_range`` (what an app does).
- ``lines``: the pieces are text ``PieceRef`` ranges (the file is over 64 MiB), are
  contiguous and cover ``[0, size)``; for ~50 sampled pieces the byte before each end is
  ``\\n`` (no line is split; the last piece may end without one), and a few sampled
  pieces hold exactly ``lines_per_piece`` lines.

Cases: ``bytes`` (piece_size 8 MiB) and ``lines`` (lines_per_piece 10,000) on ``file://``,
then the same two on ``s3://`` after uploading the file to SeaweedFS with boto3
(multipart ``upload_file``). PASS means peak RSS < 150 MB and the pieces checked out.
MB here are 10^6 bytes (stricter than MiB for the RSS bound). Everything lives in a temp
dir under /tmp (the file, Redis, SeaweedFS's copy) and is removed at the end; Redis and
weed are stopped by PID.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if sys.path[:1] != [str(REPO_ROOT)]:  # this checkout's runner/, workers/, partitioners/ and tests/ first
    sys.path.insert(0, str(REPO_ROOT))

# A developer's RUNNER_* settings must not change the numbers (children inherit this too).
for _key in [k for k in os.environ if k.startswith("RUNNER_")]:
    del os.environ[_key]

MiB = 1024 * 1024
MB = 1_000_000
RSS_LIMIT_MB = 150.0
BYTES_PIECE = 8 * MiB
LINES_PER_PIECE = 10_000
SAMPLES = 50  # pieces whose end is checked for a newline
FULL_LINE_SAMPLES = 3  # pieces read whole to count their lines
CHILD_TIMEOUT = 3600.0
BUCKET = "bench-big-input"
KEY = "big/input.txt"


# -- the input ---------------------------------------------------------------------------

def _block(seed: int = 20240601, size: int = MiB) -> bytes:
    """About ``size`` bytes of text lines of varying length (0 to ~200 bytes, ~80 on
    average, some UTF-8 beyond ASCII), ending with a newline; deterministic."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(1, 11))) for _ in range(400)]
    words += ["café", "naïve", "über", "Straße", "日本", "ñandú"]
    lines, total = [], 0
    while total < size - 256:
        if rng.random() < 0.02:
            line = "\n"  # an empty line now and then
        else:
            line = " ".join(rng.choice(words) for _ in range(rng.randint(1, 21))) + "\n"
        encoded = line.encode()
        lines.append(encoded)
        total += len(encoded)
    return b"".join(lines)


def generate(path: Path, size: int) -> dict[str, Any]:
    """Write exactly ``size`` bytes: ``# block N`` lines each followed by the same ~1 MiB
    block, the last block cut at ``size`` (so the file may end without a newline)."""
    block, written, index = _block(), 0, 0
    started = time.perf_counter()
    with path.open("wb") as out:
        while written < size:
            chunk = f"# block {index:08d} of the big-input benchmark\n".encode() + block
            chunk = chunk[:size - written]
            out.write(chunk)
            written += len(chunk)
            index += 1
    lines_per_block = block.count(b"\n") + 1
    return {"bytes": written, "seconds": time.perf_counter() - started,
            "approx_lines": index * lines_per_block, "avg_line_bytes": round(len(block) / (lines_per_block - 1), 1)}


# -- the child: one partition, measured ---------------------------------------------------

def _rss_now_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _check_ranges(pieces: list[dict], size: int, uri: str, ref: bool) -> list[str]:
    problems: list[str] = []
    if not pieces:
        return ["no pieces"]
    position = 0
    for index, piece in enumerate(pieces):
        if ref and piece.get("as_") != "text":
            problems.append(f"piece {index} is not a text reference: {str(piece)[:120]}")
        if piece.get("uri") != uri:
            problems.append(f"piece {index} names {piece.get('uri')!r}, not {uri!r}")
        if piece["start"] != position:
            problems.append(f"piece {index} starts at {piece['start']}, previous ended at {position}")
        if piece["end"] <= piece["start"]:
            problems.append(f"piece {index} is empty or reversed: {piece['start']}..{piece['end']}")
        position = piece["end"]
        if len(problems) > 10:
            break
    if position != size:
        problems.append(f"pieces end at {position}, the source has {size} bytes")
    return problems


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one case in this (fresh) process; returns its measurements."""
    import partitioners  # noqa: F401  (registers the built-ins)
    import workers.tasks  # noqa: F401  (what a worker process has loaded when it partitions)
    from runner import get_settings
    from runner.registry import get_function
    from runner.storage import Storages
    from runner.store import StatusStore
    from workers.context import TaskContext

    overrides: dict[str, Any] = {"file_roots": [spec["file_root"]]}
    if spec.get("s3"):
        overrides.update(spec["s3"], s3_region="us-east-1")
    settings = get_settings(**overrides)
    store = StatusStore(spec["redis_url"])
    job_id = f"bench-{spec['case']}-{os.getpid()}"
    function = get_function("partitioner", spec["partitioner"])
    params = function.params(**spec["params"]) if function.params else None

    rss_start_kib = _rss_now_kib()
    peak_start_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    storages = Storages(settings)
    source = storages.source(spec["uri"])
    ctx = TaskContext(job_id, "bench@1", "partitioner", params=params, source=source, storages=storages)
    try:
        count = store.store_pieces(job_id, function.fn(ctx.source, ctx), 3600)
    finally:
        ctx.close_piece()
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    rss_end_kib = _rss_now_kib()

    # -- the checks (after the measurement; they read the pieces back in chunks) --------
    checked = time.perf_counter()
    size = source.size()
    pieces: list[dict] = []
    for first in range(0, count, 5_000):
        pieces += [piece["$piece"] for piece in store.load_pieces(job_id, first, min(count, first + 5_000))]
    ref = spec["partitioner"] == "lines"
    problems = _check_ranges(pieces, size, source.uri, ref)
    if not problems and pieces:
        sample = sorted({round(i * (len(pieces) - 1) / max(1, SAMPLES - 1)) for i in range(SAMPLES)})
        if spec["partitioner"] == "bytes":
            step = spec["params"]["piece_size"]
            problems += [f"piece {i} is {p['end'] - p['start']} bytes, not {step}"
                         for i, p in enumerate(pieces[:-1]) if p["end"] - p["start"] != step][:5]
            for index in sample[:: max(1, len(sample) // 5)] + [len(pieces) - 1]:
                data = ctx.read_range(pieces[index])
                if len(data) != pieces[index]["end"] - pieces[index]["start"]:
                    problems.append(f"ctx.read_range(piece {index}) gave {len(data)} bytes")
        else:
            for index in sample:
                end = pieces[index]["end"]
                last = source.read_range(end - 1, end)
                if last != b"\n" and index != len(pieces) - 1:
                    problems.append(f"piece {index} ends at {end} after {last!r}, not after a newline")
            whole = [sample[len(sample) * k // (FULL_LINE_SAMPLES + 1)] for k in range(1, FULL_LINE_SAMPLES + 1)]
            for index in whole:
                piece = pieces[index]
                lines = source.read_range(piece["start"], piece["end"]).count(b"\n")
                if index != len(pieces) - 1 and lines != spec["params"]["lines_per_piece"]:
                    problems.append(f"piece {index} holds {lines} lines, not {spec['params']['lines_per_piece']}")
    store.pieces.drop_pieces(job_id)
    return {
        "case": spec["case"], "pieces": count, "bytes": size, "seconds": seconds,
        "mb_per_s": size / MB / seconds if seconds else 0.0,
        "rss_start_mb": rss_start_kib * 1024 / MB, "peak_rss_start_mb": peak_start_kib * 1024 / MB, "rss_end_mb": rss_end_kib * 1024 / MB,
        "peak_rss_mb": peak_kib * 1024 / MB, "check_seconds": time.perf_counter() - checked,
        "peak_rss_after_checks_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB,
        "problems": problems[:10],
    }


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` in a fresh interpreter (spec on stdin: it may hold S3 credentials)."""
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child"], input=json.dumps(spec),
                          capture_output=True, text=True, timeout=CHILD_TIMEOUT, cwd=REPO_ROOT)
    if proc.returncode != 0:
        return {"case": spec["case"], "error": (proc.stderr or proc.stdout)[-3000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- the parent ------------------------------------------------------------------------

def cases(uri: str, backend: str) -> list[dict[str, Any]]:
    return [
        {"case": f"bytes {backend}", "uri": uri, "partitioner": "bytes", "params": {"piece_size": BYTES_PIECE}},
        {"case": f"lines {backend}", "uri": uri, "partitioner": "lines",
         "params": {"lines_per_piece": LINES_PER_PIECE}},
    ]


def upload(server: Any, path: Path) -> float:
    """Put the file into SeaweedFS with boto3's multipart ``upload_file``; returns seconds."""
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config

    client = server.client(config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5,
                                         "mode": "standard"}, connect_timeout=10, read_timeout=300))
    client.create_bucket(Bucket=BUCKET)
    started = time.perf_counter()
    client.upload_file(str(path), BUCKET, KEY, Config=TransferConfig(
        multipart_threshold=64 * MiB, multipart_chunksize=64 * MiB, max_concurrency=4))
    seconds = time.perf_counter() - started
    size = client.head_object(Bucket=BUCKET, Key=KEY)["ContentLength"]
    if size != path.stat().st_size:
        raise RuntimeError(f"uploaded {size} bytes, the file has {path.stat().st_size}")
    return seconds


def print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(110, shutil.get_terminal_size().columns))
    table = Table(title=f"Partitioning a {report['size_bytes'] / MiB:,.0f} MiB text file "
                        f"(peak RSS limit {RSS_LIMIT_MB:.0f} MB; MB = 10^6 bytes)")
    for column in ("case", "pieces", "seconds", "MB/s", "RSS before MB", "peak RSS MB", "pieces check", "verdict"):
        table.add_column(column, justify="left" if column in ("case", "pieces check") else "right")
    for row in report["results"]:
        if "error" in row:
            table.add_row(row["case"], "-", "-", "-", "-", "-", "error", "[red]FAIL[/red]")
            continue
        check = "ok" if not row["problems"] else f"{len(row['problems'])} problem(s)"
        verdict = "[green]PASS[/green]" if row["passed"] else "[red]FAIL[/red]"
        table.add_row(row["case"], f"{row['pieces']:,}", f"{row['seconds']:.2f}", f"{row['mb_per_s']:,.0f}",
                      f"{row['rss_start_mb']:.1f}", f"{row['peak_rss_mb']:.1f}", check, verdict)
    console.print(table)
    for row in report["results"]:
        for problem in row.get("problems", []):
            console.print(f"[red]{row['case']}[/red]: {problem}")
        if "error" in row:
            console.print(f"[red]{row['case']} failed[/red]:\n{row['error']}")
    extra = f"generated in {report['generate_seconds']:.1f} s"
    if report.get("upload_seconds") is not None:
        extra += f"; uploaded to SeaweedFS in {report['upload_seconds']:.1f} s " \
                 f"({report['size_bytes'] / MB / report['upload_seconds']:,.0f} MB/s)"
    console.print(f"{report['date']} · {report['cpus']} cores · Python {report['python']} · {extra}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=2048, help="size of the generated file in MiB, over 64 (default 2048)")
    parser.add_argument("--skip-s3", action="store_true", help="only file:// (no SeaweedFS)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--tmp", default="/tmp", help="where the temp dir goes (default /tmp)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(sys.stdin.read()))))
        return 0
    if args.size_mb <= 64:
        parser.error("--size-mb must be over 64: `lines` passes pieces by reference only above 64 MiB")

    size = args.size_mb * MiB
    need = size * (1 if args.skip_s3 else 2.2) + 256 * MiB
    free = shutil.disk_usage(args.tmp).free
    if free < need:
        print(f"not enough space in {args.tmp}: need {need / MiB:,.0f} MiB, {free / MiB:,.0f} MiB free", file=sys.stderr, flush=True)
        return 2

    from tests.s3server import seaweed_s3
    from runner.local import embedded_redis

    report: dict[str, Any] = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cpus": os.cpu_count(),
        "python": platform.python_version(), "size_bytes": size, "rss_limit_mb": RSS_LIMIT_MB,
        "upload_seconds": None, "results": [],
    }
    with tempfile.TemporaryDirectory(prefix="runner-bench-big-", dir=args.tmp) as tmp:
        root = Path(tmp)
        data = root / "data"
        data.mkdir()
        path = data / "input.txt"
        if not args.json:
            print(f"generating {size / MiB:,.0f} MiB in {path} …", file=sys.stderr, flush=True)
        generated = generate(path, size)
        report.update(generate_seconds=generated["seconds"], approx_lines=generated["approx_lines"],
                      avg_line_bytes=generated["avg_line_bytes"])
        (root / "redis").mkdir()
        with embedded_redis(root / "redis") as redis_url:
            base = {"redis_url": redis_url, "file_root": str(data)}
            for spec in cases(path.as_uri(), "file://"):
                if not args.json:
                    print(f"running {spec['case']} …", file=sys.stderr, flush=True)
                report["results"].append(run_child({**base, **spec}))
            if not args.skip_s3:
                with seaweed_s3(root / "s3") as server:
                    if not args.json:
                        print(f"uploading to SeaweedFS at {server.endpoint_url} …", file=sys.stderr, flush=True)
                    report["upload_seconds"] = upload(server, path)
                    s3 = {"s3_endpoint_url": server.endpoint_url, "s3_access_key_id": server.access_key,
                          "s3_secret_access_key": server.secret_key}
                    for spec in cases(f"s3://{BUCKET}/{KEY}", "s3://"):
                        if not args.json:
                            print(f"running {spec['case']} …", file=sys.stderr, flush=True)
                        report["results"].append(run_child({**base, **spec, "s3": s3}))
    for row in report["results"]:
        row["passed"] = "error" not in row and not row["problems"] and row["peak_rss_mb"] < RSS_LIMIT_MB
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return 0 if all(row["passed"] for row in report["results"]) else 1


if __name__ == "__main__":
    sys.exit(main())
