"""Generated pieces: a partitioner that describes its pieces (a ``range``, a
``Generated``) stores only the description, and each batch computes its own pieces."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from runner import Client, Generated, JobFailed, TemplateError, assembler
from runner.params import parse_section
from runner.registry import get_template
from workers.runtime import JobSpec


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


# --- combined results: an associative assembler folds each batch's results ---------------


def test_a_combining_assembler_keeps_partials_not_per_piece_results(client: Client) -> None:
    job = client.submit("squares", params={"partitioner": {"count": 3000}})
    assert job.wait(timeout=60) == sum(i * i for i in range(3000))
    status = job.status()
    assert (status.pieces_done, status.pieces_failed) == (3000, 0)
    assert not client.store.redis.exists(client.store.results_key(job.id))
    runs = client.store.runs(job.id)
    assert [start for start, _, _ in runs] == [0] + [stop for _, stop, _ in runs[:-1]] and runs[-1][1] == 3000
    assert sum(json.loads(partial) for _, _, partial in runs) == sum(i * i for i in range(3000))
    assert len(runs) <= 3 * status.batches_total


def test_combined_word_counts_equal_per_piece_counts(client: Client, tmp_path: Path) -> None:
    (tmp_path / "book.txt").write_text("".join(f"the cat {i % 7} sat\n" for i in range(700)))
    job = client.submit("wordcount@1.0.0", source=(tmp_path / "book.txt").as_uri(),
                        params={"partitioner": {"lines_per_piece": 3}})
    expected = Counter(" ".join(f"the cat {i % 7} sat" for i in range(700)).split())
    assert job.wait(timeout=60) == {word: n for word, n in expected.items() if not word.isdigit()}
    assert client.store.runs(job.id) and not client.store.redis.exists(client.store.results_key(job.id))


def test_a_run_overlapping_a_recorded_run_is_refused_so_no_piece_counts_twice(client: Client) -> None:
    job = client.create("squares")
    store = client.store
    assert store.record_ranges(job.id, [(0, 10, "285")]).new == 10
    refused = store.record_ranges(job.id, [(5, 15, "1"), (10, 20, "2"), (0, 10, "285")])
    assert (refused.new, refused.refused, refused.done) == (10, (5, 0), 20)  # only 10..19 was new
    assert store.record_ranges(job.id, [(19, 21, "3")]).refused == (19,)
    assert store.done_pieces(job.id, 15, 25) == set(range(15, 20))
    assert store.missing_pieces(job.id, 25) == [20, 21, 22, 23, 24]
    assert list(store.iter_results(job.id, 20)) == [285, 2]
    with pytest.raises(LookupError, match=r"pieces 20\.\.24"):
        list(store.iter_results(job.id, 25))


def test_a_result_the_combine_refuses_fails_the_job_naming_the_piece_without_retrying(client: Client) -> None:
    job = client.submit("odd-one-out", params={"partitioner": {"count": 40}})
    with pytest.raises(JobFailed, match=r"piece 33: CombineFailed: assembler 'sum' cannot combine piece 33's result"):
        job.wait(timeout=30)
    assert not [e for _, e in client.store.read_events(job.id) if e["type"] == "piece_retry"]


# --- per-piece limits with one timer per batch -------------------------------------------


def test_each_piece_of_a_batch_gets_its_own_task_timeout(client: Client) -> None:
    # 12 pieces of 0.4 s in batches of up to 3: a batch runs 1.2 s, longer than the 1 s
    # limit, yet no piece does; then a piece after short ones is stopped at its own limit.
    job = client.submit("sleepy-limits", params={"partitioner": {"count": 12}, "app": {"seconds": 0.4}},
                        task_timeout=1)
    assert job.wait(timeout=60) == list(range(12))
    assert not [e for _, e in client.store.read_events(job.id) if e["type"] == "piece_retry"]
    slow = client.submit("sleepy-limits", params={"partitioner": {"count": 12},
                                           "app": {"seconds": 30, "slow_pieces": [2]}},
                         task_timeout=1, max_retries=0)
    started = time.monotonic()
    with pytest.raises(JobFailed, match=r"piece 2: SoftTimeLimitExceeded: .*piece 2 exceeded task_timeout=1s"):
        slow.wait(timeout=20)
    assert time.monotonic() - started < 8  # 1 s, not the 30 s sleep


def test_an_assembler_combine_must_be_a_function() -> None:
    with pytest.raises(TemplateError, match=r"combine= must be a function"):
        assembler("bad-combine", combine=3)(lambda results, ctx: None)


# --- piece time: what sizes the next jobs' batches ------------------------------------------


def _spin_kind(count: int, seconds: float) -> str:
    import tests.jobs  # noqa: F401  (registers the spin template in this process)

    spin = get_template("spin")
    params = {"partitioner": parse_section(spin.function("partitioner").params, {"count": count}),
              "app": parse_section(spin.function("app").params, {"seconds": seconds}), "assembler": None}
    return JobSpec(job_id="j", template=spin, params=params, test=False, task_timeout=1.0, max_retries=0,
                   retention_hours=1.0, queue="default", source="", destination="", inputs={}).piece_kind


def test_a_piece_time_is_known_by_the_template_and_app_params_not_by_the_partitioners() -> None:
    assert _spin_kind(10, 0.001) == _spin_kind(5000, 0.001)
    assert _spin_kind(10, 0.001) != _spin_kind(10, 0.002)


def test_the_first_job_of_a_new_size_plans_as_well_as_the_second(client: Client) -> None:
    # Pieces of a few µs: once their time is known, a 60-piece job is one batch (under
    # MIN_BATCH_SECONDS of work); unknown, it would be cut for every worker process.
    # The app params are this test's own, so only its jobs note this kind's time.
    app = {"seconds": 0.000_003}
    first = client.submit("spin", params={"partitioner": {"count": 40}, "app": app})
    assert first.wait(timeout=60) == 40
    batches = []
    for _ in range(2):  # the first and the second job of a size no job had before
        job = client.submit("spin", params={"partitioner": {"count": 60}, "app": app})
        assert job.wait(timeout=60) == 60
        batches.append(job.status().batches_total)
    assert batches == [1, 1]
