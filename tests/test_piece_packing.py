"""Stored pieces packed: small pieces go into the job's piece list many to an element (a
JSON array), so Redis pushes and ranges over a few elements per batch; any range of
pieces loads back exactly, and a list stored one piece an element (before packing, or of
large pieces) loads as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner import Client
from runner.store.piece_packing import PACK_MOST, pack_size

pytestmark = pytest.mark.timeout(60)


def test_small_pieces_are_packed_and_every_range_loads_back_exactly(client: Client) -> None:
    store, job = client.store, client.create("echo-list")
    pieces = [{"i": index, "text": "x" * (index % 7)} for index in range(1000)]
    assert store.store_pieces(job.id, iter(pieces), 60) == 1000
    assert store.redis.llen(store.pieces_key(job.id)) == -(-1000 // PACK_MOST)  # 8 elements, not 1,000
    for start, stop in ((0, 1000), (0, 1), (127, 129), (128, 256), (500, 999), (999, 1000), (990, 1200), (5, 5)):
        assert list(store.load_pieces(job.id, start, stop)) == pieces[start:stop]
    assert store.store_pieces(job.id, iter(pieces), 60, limit=3) == 3  # a redelivered (test) partition starts over
    assert list(store.load_pieces(job.id, 0, 10)) == pieces[:3]


def test_large_pieces_and_a_list_stored_before_packing_load_one_piece_an_element(client: Client) -> None:
    store, job = client.store, client.create("echo-list")
    large = ["y" * 5000 for _ in range(3)]
    assert pack_size([json.dumps(piece) for piece in large]) == 1
    store.store_pieces(job.id, iter(large), 60)
    assert store.redis.llen(store.pieces_key(job.id)) == 3 and list(store.load_pieces(job.id, 1, 3)) == large[1:]
    store.redis.hdel(store.job_key(job.id), "pieces_packed")  # as a job in flight across the upgrade has it
    store.redis.delete(store.pieces_key(job.id))
    store.redis.rpush(store.pieces_key(job.id), *(json.dumps(index) for index in range(10)))
    assert list(store.load_pieces(job.id, 4, 7)) == [4, 5, 6]


def test_a_job_of_stored_pieces_runs_over_packed_pieces_in_order(client: Client, tmp_path: Path) -> None:
    text = "".join(f"line {index}\n" for index in range(700))
    (tmp_path / "in.txt").write_text(text)
    job = client.submit("echo-lines", source=(tmp_path / "in.txt").as_uri(),
                        params={"partitioner": {"lines_per_piece": 1}})
    assert job.wait(timeout=60) == text
    assert 0 < client.store.redis.llen(client.store.pieces_key(job.id)) < 700  # packed
