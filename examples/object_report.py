"""Object report: one row per object under a prefix (bytes, lines, sha256), written as a
CSV report to the destination — e.g. every object under ``s3://bucket/logs/`` into
``s3://bucket/reports/logs.csv``.

Run it against any fleet whose workers include this module::

    runner worker --include examples.object_report
    python -m examples.object_report s3://bucket/logs/ s3://bucket/reports/logs.csv
"""

from __future__ import annotations

import csv
import hashlib
import io
import sys
from collections.abc import Iterable

from pydantic import BaseModel, Field

from runner import Client, app, assembler, template


class StatsParams(BaseModel):
    chunk_bytes: int = Field(1024 * 1024, ge=1024, description="Read objects this much at a time.")


@app("object_stats", params=StatsParams)
def object_stats(piece: dict, ctx) -> dict:
    """Streams one object (never whole in memory) and describes it."""
    digest, size, lines = hashlib.sha256(), 0, 0
    with ctx.open(piece) as stream:
        while chunk := stream.read(ctx.params.chunk_bytes):
            digest.update(chunk)
            size += len(chunk)
            lines += chunk.count(b"\n")
    ctx.add_metric("object_bytes", size)
    return {"uri": piece["uri"], "bytes": size, "lines": lines, "sha256": digest.hexdigest()}


@assembler("csv_report", writes="report.csv")
def csv_report(results: Iterable[dict], ctx) -> dict:
    """Writes the rows, in object order, as CSV to the destination (``report.csv`` under
    a prefix); returns totals."""
    totals = {"objects": 0, "bytes": 0, "lines": 0}
    destination = ctx.destination.object("report.csv")
    with destination.open() as out:
        text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
        writer = csv.DictWriter(text, fieldnames=["uri", "bytes", "lines", "sha256"])
        writer.writeheader()
        for row in results:
            writer.writerow(row)
            totals["objects"] += 1
            totals["bytes"] += row["bytes"]
            totals["lines"] += row["lines"]
        text.flush()
        text.detach()
    return {"destination": destination.uri, **totals}


template(
    "object-report", "1.0.0", partitioner="objects", app="object_stats", assembler="csv_report",
    description="One CSV row per object under a prefix: bytes, lines, sha256.",
)


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        sys.exit("usage: python -m examples.object_report SOURCE_PREFIX DESTINATION")
    job = Client().submit("object-report", source=argv[0], destination=argv[1])
    print(job.wait(progress=True))


if __name__ == "__main__":
    main(sys.argv[1:])
