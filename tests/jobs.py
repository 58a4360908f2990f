"""Templates the test workers load (``RUNNER_INCLUDE=tests.jobs``) and tests submit."""

from __future__ import annotations

import time

from pydantic import BaseModel, Field

from runner import app, template


class EchoParams(BaseModel):
    suffix: str = ""


@app("echo", params=EchoParams)
def echo(piece, ctx):
    """Returns the piece (plus a suffix for strings): results must come back in order."""
    return piece + ctx.params.suffix if isinstance(piece, str) else piece


@app("square")
def square(piece: int, ctx) -> int:
    return piece * piece


class SpinParams(BaseModel):
    seconds: float = Field(0.0, ge=0)


@app("spin", params=SpinParams)
def spin(piece: int, ctx) -> int:
    """Busy for ``seconds`` (CPU, like real work), then returns 1."""
    end = time.perf_counter() + ctx.params.seconds
    while time.perf_counter() < end:
        pass
    return 1


@app("whoami")
def whoami(piece, ctx) -> dict:
    return {"piece": ctx.piece_index, "job": ctx.job_id, "value": piece}


@app("byte_length")
def byte_length(piece: dict, ctx) -> int:
    return len(ctx.read_range(piece))


template("echo-lines", "1.0.0", partitioner="lines", app="echo", assembler="concat")
template("echo-list", "1.0.0", partitioner="replicas", app="echo", assembler="json_list", test_pieces=4)
template("squares", "1.0.0", partitioner="replicas", app="square", assembler="sum")
template("spin", "1.0.0", partitioner="replicas", app="spin", assembler="sum")
template("whoami", "1.0.0", partitioner="replicas", app="whoami", assembler="json_list")
template("byte-length", "1.0.0", partitioner="bytes", app="byte_length", assembler="sum")
template("records", "1.0.0", partitioner="jsonl", app="echo", assembler="json_list")
