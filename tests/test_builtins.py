"""The built-in partitioners (lines, bytes, jsonl, replicas) and assemblers (concat,
json_list, sum, merge_counts), called directly as the worker calls them, over real
``file://`` sources and destinations."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import assemblers  # noqa: F401  (registers the built-ins)
import partitioners  # noqa: F401  (registers the built-ins)
from runner.errors import SourceError
from runner.registry import get_function
from runner.config import get_settings
from runner.storage import Storages
from runner.pieces import resolve, to_stored
from workers.context import TaskContext

STORAGES = Storages(get_settings(file_roots=[]))  # unconfined: these tests use tmp_path


def make_ctx(kind: str, name: str, destination: str | None = None, **params: Any) -> TaskContext:
    model = get_function(kind, name).params  # type: ignore[arg-type]
    return TaskContext(
        job_id="j", template="t@1", kind=kind,
        params=model(**params) if model is not None else None,
        destination=STORAGES.destination(destination) if destination is not None else None,
        storages=STORAGES,
    )


def partition(name: str, uri: str, **params: Any) -> list[Any]:
    """Every piece the partitioner ``name`` yields for ``uri``, as its app receives it
    (stored, then resolved the way the worker does)."""
    pieces = get_function("partitioner", name).fn(STORAGES.source(uri), make_ctx("partitioner", name, **params))
    return [resolve(to_stored(piece), STORAGES) for piece in pieces]


def assemble(name: str, results: Any, destination: str | None = "bypass:", **params: Any) -> Any:
    return get_function("assembler", name).fn(results, make_ctx("assembler", name, destination, **params))


def write(path: Path, data: bytes | str) -> str:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path.as_uri()


def failing_after(items: list[Any]) -> Iterator[Any]:
    """The results of a job whose result stream breaks after ``items``."""
    yield from items
    raise RuntimeError("result store went away")


# --- lines ---------------------------------------------------------------------------------


def test_lines_pieces_join_back_to_the_file_exactly(tmp_path: Path) -> None:
    text = "".join(f"line {i}\n" for i in range(10))
    pieces = partition("lines", write(tmp_path / "in.txt", text), lines_per_piece=3)

    assert "".join(pieces) == text
    assert [piece.count("\n") for piece in pieces] == [3, 3, 3, 1]


def test_lines_last_piece_may_be_shorter(tmp_path: Path) -> None:
    pieces = partition("lines", write(tmp_path / "in.txt", "a\nb\nc\nd\ne\n"), lines_per_piece=2)

    assert pieces == ["a\nb\n", "c\nd\n", "e\n"]


def test_lines_never_splits_a_line(tmp_path: Path) -> None:
    lines = [("x" * (i * 997 % 20_000)) + "\n" for i in range(40)]  # crosses read-buffer edges
    pieces = partition("lines", write(tmp_path / "in.txt", "".join(lines)), lines_per_piece=7)

    assert all(piece.endswith("\n") for piece in pieces)
    assert [line for piece in pieces for line in piece.splitlines(keepends=True)] == lines


def test_lines_keeps_crlf_line_endings(tmp_path: Path) -> None:
    text = "a\r\nb\r\nc\r\n"
    pieces = partition("lines", write(tmp_path / "in.txt", text), lines_per_piece=1)

    assert pieces == ["a\r\n", "b\r\n", "c\r\n"]


def test_lines_handles_a_file_without_a_trailing_newline(tmp_path: Path) -> None:
    pieces = partition("lines", write(tmp_path / "in.txt", "a\nb\nc"), lines_per_piece=2)

    assert pieces == ["a\nb\n", "c"]


def test_lines_of_an_empty_file_is_zero_pieces(tmp_path: Path) -> None:
    assert partition("lines", write(tmp_path / "empty.txt", b"")) == []


def test_lines_decodes_the_configured_encoding(tmp_path: Path) -> None:
    uri = write(tmp_path / "in.txt", "café\nnaïve\n".encode("latin-1"))

    assert partition("lines", uri, lines_per_piece=5, encoding="latin-1") == ["café\nnaïve\n"]


def test_lines_of_invalid_utf8_raises_source_error_naming_the_uri(tmp_path: Path) -> None:
    uri = write(tmp_path / "bad.txt", b"fine\n\xff\xfe broken\n")

    with pytest.raises(SourceError) as excinfo:
        partition("lines", uri)

    assert uri in str(excinfo.value)
    assert "utf-8" in str(excinfo.value)


# --- bytes ---------------------------------------------------------------------------------


def test_byte_ranges_cover_the_file_exactly_without_overlap(tmp_path: Path) -> None:
    data = bytes(range(256)) * 10 + b"tail"
    uri = write(tmp_path / "blob.bin", data)

    pieces = partition("bytes", uri, piece_size=1000)

    assert [(p["start"], p["end"]) for p in pieces] == [(0, 1000), (1000, 2000), (2000, 2564)]
    assert all(p["uri"] == uri for p in pieces)
    assert pieces[0]["start"] == 0 and pieces[-1]["end"] == len(data)
    assert all(a["end"] == b["start"] for a, b in zip(pieces, pieces[1:]))


@pytest.mark.parametrize("piece_size", [1, 7, 4096, 10_000])
def test_reading_each_byte_range_reassembles_the_file(tmp_path: Path, piece_size: int) -> None:
    data = b"".join(i.to_bytes(2, "big") for i in range(2000))
    uri = write(tmp_path / "blob.bin", data)
    ctx = TaskContext(job_id="j", template="t@1", kind="app", params=None, storages=STORAGES)  # as an app sees it

    pieces = partition("bytes", uri, piece_size=piece_size)

    assert b"".join(ctx.read_range(p) for p in pieces) == data
    assert all(0 < p["end"] - p["start"] <= piece_size for p in pieces)


def test_byte_ranges_of_an_empty_file_is_zero_pieces(tmp_path: Path) -> None:
    assert partition("bytes", write(tmp_path / "empty.bin", b"")) == []


# --- jsonl ---------------------------------------------------------------------------------


def test_jsonl_groups_records_per_piece(tmp_path: Path) -> None:
    records = [{"n": i} for i in range(5)]
    uri = write(tmp_path / "in.jsonl", "".join(json.dumps(r) + "\n" for r in records))

    assert partition("jsonl", uri, records_per_piece=2) == [records[0:2], records[2:4], records[4:5]]


def test_jsonl_skips_blank_lines(tmp_path: Path) -> None:
    uri = write(tmp_path / "in.jsonl", '\n{"a": 1}\n   \n\n[2]\n"three"\n\n')

    assert partition("jsonl", uri, records_per_piece=10) == [[{"a": 1}, [2], "three"]]


def test_jsonl_bad_json_raises_source_error_naming_the_line_number(tmp_path: Path) -> None:
    uri = write(tmp_path / "in.jsonl", '{"a": 1}\n\n{"b": oops}\n{"c": 3}\n')

    with pytest.raises(SourceError) as excinfo:
        partition("jsonl", uri)

    assert "line 3" in str(excinfo.value)
    assert uri in str(excinfo.value)


def test_jsonl_of_an_empty_file_is_zero_pieces(tmp_path: Path) -> None:
    assert partition("jsonl", write(tmp_path / "empty.jsonl", "\n\n")) == []


def test_jsonl_of_invalid_utf8_raises_source_error_naming_the_uri(tmp_path: Path) -> None:
    uri = write(tmp_path / "bad.jsonl", b'{"a": 1}\n"\xff\xfe"\n')

    with pytest.raises(SourceError) as excinfo:
        partition("jsonl", uri)

    assert uri in str(excinfo.value)


# --- replicas ------------------------------------------------------------------------------


def test_replicas_yields_each_index_once_in_order() -> None:
    assert partition("replicas", "bypass:", count=5) == [0, 1, 2, 3, 4]


def test_replicas_with_count_zero_yields_nothing() -> None:
    assert partition("replicas", "bypass:", count=0) == []


def test_replicas_ignores_the_source(tmp_path: Path) -> None:
    assert partition("replicas", (tmp_path / "absent.txt").as_uri(), count=2) == [0, 1]


# --- bad sources ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["lines", "bytes", "jsonl"])
def test_a_missing_file_raises_source_error_naming_the_uri(tmp_path: Path, name: str) -> None:
    uri = (tmp_path / "absent.txt").as_uri()

    with pytest.raises(SourceError, match="does not exist") as excinfo:
        partition(name, uri)

    assert uri in str(excinfo.value)


@pytest.mark.parametrize("name", ["lines", "bytes", "jsonl"])
def test_an_unknown_scheme_raises_source_error(name: str) -> None:
    with pytest.raises(SourceError, match="unsupported URI scheme 'ftp'"):
        partition(name, "ftp://x")


def test_a_directory_source_for_lines_raises_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="is a directory"):
        partition("lines", tmp_path.as_uri())


# --- concat --------------------------------------------------------------------------------


def test_concat_without_a_destination_returns_the_joined_string() -> None:
    assert assemble("concat", iter(["a", "b", "c"]), separator=", ") == "a, b, c"
    assert assemble("concat", iter(["a", "b"]), destination=None) == "ab"


def test_concat_of_no_results_is_the_empty_string() -> None:
    assert assemble("concat", iter([])) == ""


def test_concat_to_a_file_writes_it_and_returns_a_summary(tmp_path: Path) -> None:
    target = tmp_path / "out" / "result.txt"
    uri = target.as_uri()

    summary = assemble("concat", iter(["héllo", "world", "!"]), destination=uri, separator="|")

    assert target.read_text(encoding="utf-8") == "héllo|world|!"
    assert summary == {"destination": uri, "bytes": len("héllo|world|!".encode()), "pieces": 3}
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.txt"]


def test_concat_with_a_non_string_result_raises_type_error_naming_the_piece() -> None:
    with pytest.raises(TypeError, match="piece 2's result is int"):
        assemble("concat", iter(["a", "b", 3, "d"]))


def test_concat_with_a_non_string_result_leaves_no_destination_file(tmp_path: Path) -> None:
    target = tmp_path / "result.txt"

    with pytest.raises(TypeError, match="piece 1"):
        assemble("concat", iter(["a", None]), destination=target.as_uri())

    assert list(tmp_path.iterdir()) == []


def test_concat_whose_results_fail_midway_leaves_no_destination_file(tmp_path: Path) -> None:
    target = tmp_path / "result.txt"

    with pytest.raises(RuntimeError, match="result store went away"):
        assemble("concat", failing_after(["a" * 100_000, "b"]), destination=target.as_uri())

    assert list(tmp_path.iterdir()) == []


def test_concat_failing_midway_keeps_the_previous_destination_intact(tmp_path: Path) -> None:
    target = tmp_path / "result.txt"
    target.write_text("previous run")

    with pytest.raises(RuntimeError):
        assemble("concat", failing_after(["new"]), destination=target.as_uri())

    assert target.read_text() == "previous run"
    assert list(tmp_path.iterdir()) == [target]


# --- json_list -----------------------------------------------------------------------------


def test_json_list_without_a_destination_returns_the_list_in_order() -> None:
    assert assemble("json_list", iter([3, {"a": 1}, None, "x"])) == [3, {"a": 1}, None, "x"]


def test_json_list_to_a_file_writes_valid_json_and_returns_a_summary(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    results = [1, {"k": [1, 2]}, "é", None]

    summary = assemble("json_list", iter(results), destination=target.as_uri())

    assert json.loads(target.read_text(encoding="utf-8")) == results
    assert summary == {"destination": target.as_uri(), "bytes": target.stat().st_size, "pieces": 4}


def test_json_list_of_no_results_writes_an_empty_array(tmp_path: Path) -> None:
    target = tmp_path / "result.json"

    summary = assemble("json_list", iter([]), destination=target.as_uri())

    assert json.loads(target.read_text()) == []
    assert summary["pieces"] == 0
    assert summary["bytes"] == target.stat().st_size


def test_json_list_whose_results_fail_midway_leaves_no_destination_file(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        assemble("json_list", failing_after([1, 2]), destination=(tmp_path / "r.json").as_uri())

    assert list(tmp_path.iterdir()) == []


# --- sum -----------------------------------------------------------------------------------


def test_sum_adds_ints_and_floats() -> None:
    assert assemble("sum", iter([1, 2, 3])) == 6
    assert assemble("sum", iter([1, 2.5, -0.5])) == pytest.approx(3.0)


def test_sum_of_no_results_is_zero() -> None:
    assert assemble("sum", iter([])) == 0


@pytest.mark.parametrize(
    ("results", "message"),
    [([1, "2", 3], "piece 1's result is str"), ([1, 2, True], "piece 2's result is bool")],
)
def test_sum_rejects_a_non_number_naming_the_piece(results: list[Any], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        assemble("sum", iter(results))


# --- merge_counts --------------------------------------------------------------------------


def test_merge_counts_adds_the_counts_of_every_piece() -> None:
    merged = assemble("merge_counts", iter([{"a": 1, "b": 2}, {"b": 3, "c": 1}, {}]))

    assert merged == {"b": 5, "a": 1, "c": 1}


def test_merge_counts_orders_by_count_descending_then_key() -> None:
    merged = assemble("merge_counts", iter([{"pear": 2, "fig": 1}, {"apple": 2, "kiwi": 3, "date": 1}]))

    assert list(merged.items()) == [("kiwi", 3), ("apple", 2), ("pear", 2), ("date", 1), ("fig", 1)]


def test_merge_counts_top_keeps_only_the_n_largest() -> None:
    merged = assemble("merge_counts", iter([{"a": 1, "b": 5}, {"c": 3, "a": 1}]), top=2)

    assert list(merged.items()) == [("b", 5), ("c", 3)]


def test_merge_counts_rejects_a_non_dict_naming_the_piece() -> None:
    with pytest.raises(TypeError, match="piece 1's result is list"):
        assemble("merge_counts", iter([{"a": 1}, ["a"]]))
