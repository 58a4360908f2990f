"""Generated pieces: a partitioner that describes its pieces (a ``range``, a
``Generated``) stores only the description, and each batch computes its own pieces."""

from __future__ import annotations

import pytest

from runner import Client, Generated


def test_replicas_pieces_are_generated_and_never_stored(client: Client) -> None:
    job = client.submit("squares", params={"partitioner": {"count": 3000}})
    assert job.wait(timeout=60) == sum(i * i for i in range(3000))
    assert not client.store.redis.exists(client.store.pieces_key(job.id))
    assert client.store.fields(job.id, "pieces_generated")["pieces_generated"] == {"count": 3000, "first": 0, "step": 1}
    assert list(client.store.load_pieces(job.id, 2990, 3005)) == list(range(2990, 3000))


def test_a_generated_piece_function_gives_each_piece_from_its_index(client: Client) -> None:
    job = client.submit("seeds", params={"partitioner": {"count": 50, "first": 7}})
    assert job.wait(timeout=60) == [{"piece": i, "job": job.id, "value": {"seed": 7 + i}} for i in range(50)]
    assert not client.store.redis.exists(client.store.pieces_key(job.id))
    assert client.store.fields(job.id, "pieces_generated")["pieces_generated"] == {"count": 50, "function": True}


def test_a_test_job_of_generated_pieces_runs_only_the_first_few(client: Client) -> None:
    job = client.submit("seeds", params={"partitioner": {"count": 50}}, test=True)
    assert [item["value"] for item in job.wait(timeout=60)] == [{"seed": 0}, {"seed": 1}]
    assert job.status().pieces_total == 2


def test_generated_refuses_a_negative_count() -> None:
    with pytest.raises(ValueError, match=r"count=-1"):
        Generated(-1)
