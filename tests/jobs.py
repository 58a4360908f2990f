"""Templates the test workers load (``RUNNER_INCLUDE=tests.jobs``) and tests submit."""

from __future__ import annotations

import os
import time

from pydantic import BaseModel, Field

from runner import app, assembler, partitioner, template


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


class SleepyParams(BaseModel):
    seconds: float = 0.0
    slow_pieces: list[int] | None = None  # None: every piece sleeps


@app("sleepy", params=SleepyParams)
def sleepy(piece: int, ctx) -> int:
    """Sleeps (interruptibly, like I/O) on the chosen pieces, then returns the piece."""
    if ctx.params.slow_pieces is None or piece in ctx.params.slow_pieces:
        time.sleep(ctx.params.seconds)
    return piece


class FlakyParams(BaseModel):
    flag_dir: str
    bad_pieces: list[int] = []
    once: bool = True  # fail only the first attempt; else fail until `flag_dir/fixed` exists


@app("flaky", params=FlakyParams)
def flaky(piece: int, ctx) -> int:
    """Records every call in ``flag_dir/calls``; fails on ``bad_pieces`` as configured."""
    from pathlib import Path

    flags = Path(ctx.params.flag_dir)
    with (flags / "calls").open("a") as calls:
        calls.write(f"{piece}\n")
    if piece in ctx.params.bad_pieces:
        marker = flags / f"failed-{piece}"
        if ctx.params.once and not marker.exists():
            marker.touch()
            raise ConnectionError(f"piece {piece} hit a transient error")
        if not ctx.params.once and not (flags / "fixed").exists():
            raise ValueError(f"piece {piece} is bad input")
    return piece * 10


@app("not_json")
def not_json(piece: int, ctx) -> object:
    return {1, 2, 3} if piece == 2 else piece


class ExplodingParams(BaseModel):
    after: int = 0


@partitioner("exploding", params=ExplodingParams)
def exploding(source, ctx):
    yield from range(ctx.params.after)
    raise ValueError("cannot split this source: bad header")


class SlowSquareParams(BaseModel):
    seconds: float = 0.0


@app("slow_square", params=SlowSquareParams)
def slow_square(piece: int, ctx) -> int:
    time.sleep(ctx.params.seconds)
    return piece * piece


template("sleepy", "1.0.0", partitioner="replicas", app="sleepy", assembler="json_list", max_retries=1)
template("flaky", "1.0.0", partitioner="replicas", app="flaky", assembler="sum")
template("not-json", "1.0.0", partitioner="replicas", app="not_json", assembler="sum")
for _size in (2, 3):  # piece 2 fails in the second batch (sent) or in the first (run inside the partition task)
    template(f"not-json-by-{_size}", "1.0.0", partitioner="replicas", app="not_json", assembler="sum", batch_size=_size)
template("exploding", "1.0.0", partitioner="exploding", app="square", assembler="sum")
template("slow-squares", "1.0.0", partitioner="replicas", app="slow_square", assembler="sum")


@app("reads_model")
def reads_model(piece: int, ctx) -> dict:
    """Uses a named input, writes artifacts and metrics, and uses scratch space."""
    model = ctx.inputs["model"].read_text()
    scratch = ctx.temp_path("scratch/work.txt")
    scratch.write_text(model * 2)
    ctx.artifact_path(f"pieces/{piece}.txt").write_text(f"piece {piece} saw {model}")
    ctx.add_metric("score", piece * 1.5)
    ctx.add_metric("label", f"p{piece}")
    return {"piece": piece, "model": model, "scratch": str(scratch), "scratch_existed": scratch.exists()}


@assembler("notes_and_list")
def notes_and_list(results, ctx) -> list:
    ctx.io.write_file("notes/summary.txt", "assembled")
    ctx.add_metric("assembled", 1)
    return list(results)


@app("object_size")
def object_size(piece: dict, ctx) -> list:
    return [piece["uri"].rsplit("/", 1)[-1], len(ctx.read(piece))]


template("with-model", "1.0.0", partitioner="replicas", app="reads_model", assembler="notes_and_list",
         inputs=["model"])
template("object-sizes", "1.0.0", partitioner="objects", app="object_size", assembler="json_list")
template("lines-by-ref", "1.0.0", partitioner="lines", app="echo", assembler="concat",
         params={"partitioner": {"by_reference": True}})
template("s3-artifacts", "1.0.0", partitioner="replicas", app="reads_model", assembler="notes_and_list",
         inputs=["model"], queue="s3art")


class ChattyParams(BaseModel):
    lines: int = 3
    seconds: float = 0.0  # sleeps this long (interruptibly) after saying its lines


@app("chatty", params=ChattyParams)
def chatty(piece: int, ctx) -> int:
    for i in range(ctx.params.lines):
        ctx.log.info("piece %d says %d", piece, i)
    time.sleep(ctx.params.seconds)
    return piece


@app("host")
def host(piece: int, ctx) -> int:
    return piece


template("chatty", "1.0.0", partitioner="replicas", app="chatty", assembler="sum")
template("gpu-squares", "1.0.0", partitioner="replicas", app="square", assembler="sum", queue="gpu")


@partitioner("halves")
def halves(source, ctx):
    """A user partitioner passing pieces by reference: each half of the source, as bytes."""
    from runner import PieceRef

    size = source.size()
    yield PieceRef(source.uri, 0, size // 2, as_="bytes")
    yield PieceRef(source.uri, size // 2, size, as_="bytes")


@app("describe")
def describe(piece, ctx) -> list:
    """What the app received: its type and content, as text."""
    return [type(piece).__name__, piece.decode() if isinstance(piece, bytes) else piece]


template("halves", "1.0.0", partitioner="halves", app="describe", assembler="json_list")


class SlowCountParams(BaseModel):
    count: int = 10
    seconds: float = 0.0  # a pause before each piece: a partitioner slow to read its source


@partitioner("slow_count", params=SlowCountParams)
def slow_count(source, ctx):
    for index in range(ctx.params.count):
        time.sleep(ctx.params.seconds)
        yield index


template("slow-partition", "1.0.0", partitioner="slow_count", app="slow_square", assembler="sum")


class SeedsParams(BaseModel):
    count: int = 10
    first: int = 0


@partitioner("seeds", params=SeedsParams)
def seeds(source, ctx):
    """Generated pieces with a piece function: only the count is stored."""
    from runner import Generated

    return Generated(ctx.params.count, piece=lambda i: {"seed": ctx.params.first + i})


template("seeds", "1.0.0", partitioner="seeds", app="whoami", assembler="json_list", test_pieces=2)


@app("odd_one_out")
def odd_one_out(piece: int, ctx):
    """A number for every piece but 33, whose text ``sum`` cannot add."""
    return "thirty-three" if piece == 33 else piece


template("odd-one-out", "1.0.0", partitioner="replicas", app="odd_one_out", assembler="sum", test_pieces=2)
template("sleepy-limits", "1.0.0", partitioner="replicas", app="sleepy", assembler="json_list", max_retries=1,
         description="sleepy for test_pieces' limit tests: its own piece-time history, apart from sleepy's")


class GateParams(BaseModel):
    """A stage that waits until the file ``gate`` exists: a test's explicit barrier (it
    opens the gate when it has done what must happen while the stage runs)."""

    gate: str
    count: int = 1
    timeout: float = Field(120.0, gt=0)


def _wait_for_gate(params: GateParams) -> None:
    deadline = time.monotonic() + params.timeout
    while not os.path.exists(params.gate):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {params.gate} was never opened")
        time.sleep(0.02)  # the poll interval


@partitioner("gated_count", params=GateParams)
def gated_count(source, ctx):
    """``count`` pieces, once the gate is open."""
    _wait_for_gate(ctx.params)
    yield from range(ctx.params.count)


@app("gated", params=GateParams)
def gated(piece: int, ctx) -> int:
    """Returns the piece, once the gate is open."""
    _wait_for_gate(ctx.params)
    return piece


template("gated-partition", "1.0.0", partitioner="gated_count", app="slow_square", assembler="sum")
template("gated-piece", "1.0.0", partitioner="replicas", app="gated", assembler="json_list")


@app("mildew_risk")
def mildew_risk(piece: int, ctx) -> dict:
    """The Prediction-API tutorial's model: a mildew risk from a temperature reading (°C)."""
    celsius = float(ctx.inputs["temperature"].read_text())
    return {"celsius": celsius, "risk": "high" if 15 <= celsius <= 25 else "low"}


template("mildew-predictor", "1.0.0", partitioner="single", app="mildew_risk", assembler="single",
         inputs=["temperature"])


# -- live metrics: app metrics readable while the job is still assembling -----------------
@app("scored")
def scored(piece: int, ctx) -> int:
    ctx.add_metric("score", piece * 1.5, step=piece)
    return piece


@assembler("gated_sum", params=GateParams)
def gated_sum(results, ctx) -> int:
    """Sums, once the test opens the gate: until then the job stays ``assembling``."""
    _wait_for_gate(ctx.params)
    return sum(results)


template("gated-scores", "1.0.0", partitioner="replicas", app="scored", assembler="gated_sum")


class UiGateParams(BaseModel):
    redis_url: str
    gate: str  # each piece takes one token from this Redis list before it finishes: the test's barrier
    fail_pieces: list[int] = []  # these fail until the key "<gate>:fixed" exists
    wait_seconds: float = Field(60.0, gt=0)


_PNG_1PX = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                         "1f15c4890000000d49444154789c63f8cf50ef0f0004fe01fe8f2e4aa40000000049454e44ae426082")


@app("ui_gated", params=UiGateParams)
def ui_gated(piece: int, ctx) -> int:
    """Logs, records a metric, writes artifacts (piece 0), then waits for a token on the
    gate (``BLPOP``): a test moves a job's progress one piece at a time, with no sleep."""
    import redis

    ctx.log.info("piece %d says hello", piece)
    ctx.log.warning("piece %d warns", piece)
    ctx.add_metric("loss", 1.0 / (piece + 1), step=piece)
    if piece == 0:
        ctx.artifact_path("plots/pixel.png").write_bytes(_PNG_1PX)
        ctx.artifact_path("table.csv").write_text("piece,value\n0,10\n1,20\n")
        ctx.artifact_path("data.json").write_text('{"pieces": [0, 1], "ok": true}')
        ctx.artifact_path("notes.txt").write_text("gated notes\n")
    conn = redis.Redis.from_url(ctx.params.redis_url)
    try:
        give_up = time.monotonic() + ctx.params.wait_seconds
        while conn.blpop([ctx.params.gate], timeout=1) is None:  # short waits: the URL may set a socket timeout
            if time.monotonic() > give_up:
                raise TimeoutError(f"no token on {ctx.params.gate} within {ctx.params.wait_seconds}s")
        if piece in ctx.params.fail_pieces and not conn.exists(f"{ctx.params.gate}:fixed"):
            raise ValueError(f"piece {piece} is bad input")
    finally:
        conn.close()
    return piece


template("ui-gated", "1.0.0", partitioner="replicas", app="ui_gated", assembler="sum", max_retries=0,
         batch_size=1, description="the dashboard tests' job: a piece per task, each waiting for a token on a list")


# -- partial success: jobs that may go without pieces that fail for good ------------------
@assembler("sum_and_failed")
def sum_and_failed(results, ctx) -> dict:
    """Sums the results it is given (no combine: the store keeps each piece's) and says
    which pieces the job went without."""
    return {"sum": sum(results), "failed": ctx.failed_pieces}


def _add(a: int, b: int) -> int:
    return a + b


@assembler("folded_sum_and_failed", combine=_add)
def folded_sum_and_failed(results, ctx) -> dict:
    """The same over folded partial sums (the store keeps one per run of pieces)."""
    return {"sum": sum(results), "failed": ctx.failed_pieces}


template("lossy", "1.0.0", partitioner="replicas", app="flaky", assembler="sum_and_failed", max_retries=0)
template("lossy-folded", "1.0.0", partitioner="replicas", app="flaky", assembler="folded_sum_and_failed",
         max_retries=0)
template("lossy-tolerant", "1.0.0", partitioner="replicas", app="flaky", assembler="sum_and_failed", max_retries=0,
         max_failed_pieces=2, description="goes without up to two pieces unless a job says otherwise")
