"""Settings from ``RUNNER_*`` variables, the job state machine, and how pieces are batched."""

from __future__ import annotations

import pytest

from runner.config import Settings, get_settings
from runner.errors import ConfigError
from runner.models import FINAL_STATES, TRANSITIONS, JobState, allowed_sources
from workers.batching import plan_batches

# --- configuration -------------------------------------------------------------------------


def test_defaults_suit_a_single_host() -> None:
    settings = get_settings()

    assert settings.broker_url == "redis://127.0.0.1:6379/0"
    assert settings.result_backend is None and settings.store_url is None
    assert settings.include == []
    assert settings.key_prefix == "runner"
    assert settings.org == "default"
    assert (settings.default_queue, settings.control_queue) == ("default", "control")
    assert (settings.task_timeout, settings.job_timeout) == (300.0, 3600.0)
    assert settings.max_retries == 2
    assert settings.max_batch == 1000


def test_include_is_split_on_commas_and_stripped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_INCLUDE", "a, b")

    assert get_settings().include == ["a", "b"]


def test_include_ignores_empty_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_INCLUDE", " pkg.jobs ,, other ,")

    assert get_settings().include == ["pkg.jobs", "other"]


def test_environment_values_are_read_and_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_BROKER_URL", "redis://broker:6379/1")
    monkeypatch.setenv("RUNNER_TASK_TIMEOUT", "12.5")
    monkeypatch.setenv("RUNNER_MAX_RETRIES", "0")

    settings = get_settings()

    assert settings.broker_url == "redis://broker:6379/1"
    assert settings.task_timeout == 12.5
    assert settings.max_retries == 0


def test_overrides_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_ORG", "from-env")

    assert get_settings(org="from-override").org == "from-override"


def test_a_misspelt_variable_raises_suggesting_the_real_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_BROKER_ULR", "redis://elsewhere:6379/0")

    with pytest.raises(ConfigError) as excinfo:
        get_settings()

    message = str(excinfo.value)
    assert "RUNNER_BROKER_ULR" in message
    assert "did you mean RUNNER_BROKER_URL?" in message


def test_an_unknown_variable_with_no_close_match_still_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_ZZZZZZZZZZZZ", "1")

    with pytest.raises(ConfigError, match="unknown setting RUNNER_ZZZZZZZZZZZZ") as excinfo:
        get_settings()

    assert "did you mean" not in str(excinfo.value)


def test_variables_without_the_prefix_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNERX_BROKER_ULR", "1")
    monkeypatch.setenv("BROKER_ULR", "1")

    assert isinstance(get_settings(), Settings)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("RUNNER_TASK_TIMEOUT", "-1"), ("RUNNER_JOB_TIMEOUT", "0"), ("RUNNER_MAX_BATCH", "many"),
     ("RUNNER_VISIBILITY_TIMEOUT", "59")],
)
def test_an_invalid_value_raises_config_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigError, match="invalid settings") as excinfo:
        get_settings()

    assert variable in str(excinfo.value)


def test_an_invalid_override_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="RUNNER_MAX_RETRIES"):
        get_settings(max_retries=-1)


def test_backend_and_store_default_to_the_broker() -> None:
    settings = get_settings(broker_url="redis://b:1/0")

    assert settings.backend_url == "redis://b:1/0"
    assert settings.status_store_url == "redis://b:1/0"


def test_store_defaults_to_the_result_backend() -> None:
    settings = get_settings(broker_url="redis://b:1/0", result_backend="redis://r:1/0")

    assert settings.backend_url == "redis://r:1/0"
    assert settings.status_store_url == "redis://r:1/0"


def test_an_explicit_store_url_is_used() -> None:
    settings = get_settings(broker_url="redis://b:1/0", result_backend="redis://r:1/0", store_url="redis://s:1/0")

    assert (settings.broker_url, settings.backend_url, settings.status_store_url) == (
        "redis://b:1/0", "redis://r:1/0", "redis://s:1/0"
    )


# --- job states ----------------------------------------------------------------------------

NON_FINAL = [state for state in JobState if state not in FINAL_STATES]
ENDINGS = [JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT]


def test_the_final_states_are_the_last_four() -> None:
    assert FINAL_STATES == {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT}
    assert [state.is_final for state in JobState] == [False] * 5 + [True] * 4


def test_every_state_has_a_row_in_the_transition_table() -> None:
    assert set(TRANSITIONS) == set(JobState)


def test_cancelled_has_no_outgoing_transitions() -> None:
    assert TRANSITIONS[JobState.CANCELLED] == frozenset()


def test_completed_can_only_be_reopened_to_running() -> None:
    # retry_failed() of a partial completion runs its failed pieces (runner/partial.py)
    assert TRANSITIONS[JobState.COMPLETED] == frozenset({JobState.RUNNING})


@pytest.mark.parametrize("state", [JobState.FAILED, JobState.TIMED_OUT])
def test_failed_and_timed_out_can_only_be_reopened_to_queued_or_running(state: JobState) -> None:
    # retry_failed() may reopen them (see runner/models.py); nothing else leaves a final state.
    assert TRANSITIONS[state] <= {JobState.QUEUED, JobState.RUNNING}


@pytest.mark.parametrize("state", sorted(FINAL_STATES))
def test_no_final_state_leads_to_another_final_state(state: JobState) -> None:
    assert not TRANSITIONS[state] & FINAL_STATES


def test_the_happy_path_is_a_chain_of_legal_transitions() -> None:
    path = [JobState.DRAFT, JobState.QUEUED, JobState.PARTITIONING, JobState.RUNNING, JobState.ASSEMBLING,
            JobState.COMPLETED]

    for current, following in zip(path, path[1:]):
        assert following in TRANSITIONS[current]


def test_completed_is_entered_only_from_assembling() -> None:
    assert allowed_sources(JobState.COMPLETED) == [JobState.ASSEMBLING]


def test_of_the_non_final_states_only_draft_leads_to_queued() -> None:
    assert [s for s in allowed_sources(JobState.QUEUED) if s in NON_FINAL] == [JobState.DRAFT]


def test_draft_is_never_entered() -> None:
    assert allowed_sources(JobState.DRAFT) == []


@pytest.mark.parametrize("ending", [JobState.FAILED, JobState.CANCELLED])
def test_failed_and_cancelled_are_reachable_from_every_non_final_state(ending: JobState) -> None:
    assert allowed_sources(ending) == NON_FINAL


def test_timed_out_is_reachable_from_every_non_final_state_except_draft() -> None:
    assert allowed_sources(JobState.TIMED_OUT) == [s for s in NON_FINAL if s is not JobState.DRAFT]
    assert JobState.TIMED_OUT not in TRANSITIONS[JobState.DRAFT]


@pytest.mark.parametrize("state", NON_FINAL)
def test_no_state_moves_backwards_or_skips_ahead(state: JobState) -> None:
    order = list(JobState)
    forward = {target for target in TRANSITIONS[state] if target not in ENDINGS}

    assert forward == {order[order.index(state) + 1]}


# --- batching ------------------------------------------------------------------------------


def assert_exact_cover(batches: list[tuple[int, int]], total: int) -> None:
    """The ranges are non-empty, contiguous, in order, and cover range(total) exactly."""
    assert [i for start, stop in batches for i in range(start, stop)] == list(range(total))
    assert all(stop > start for start, stop in batches)


@pytest.mark.parametrize(
    ("total", "workers", "max_batch"),
    [(1, 1, 1), (10, 1, 1000), (10, 4, 3), (1000, 8, 50), (12345, 3, 1000), (7, 100, 1000)],
)
def test_batches_are_contiguous_and_cover_every_piece_once(total: int, workers: int, max_batch: int) -> None:
    batches = plan_batches(total, workers, max_batch)

    assert_exact_cover(batches, total)
    assert all(stop - start <= max_batch for start, stop in batches)


@pytest.mark.parametrize(("total", "workers", "max_batch"), [(5000, 2, 1000), (999, 4, 10), (100, 1, 1000)])
def test_guided_batch_sizes_never_grow(total: int, workers: int, max_batch: int) -> None:
    sizes = [stop - start for start, stop in plan_batches(total, workers, max_batch)]

    assert sizes == sorted(sizes, reverse=True)


def test_guided_batches_start_large_and_end_with_single_pieces() -> None:
    batches = plan_batches(5000, 2, 1000)
    sizes = [stop - start for start, stop in batches]

    assert len(batches) < 60
    assert sizes[0] == 1000
    assert sizes[-1] == 1
    assert_exact_cover(batches, 5000)


def test_first_guided_batch_is_a_share_of_the_remaining_work() -> None:
    assert plan_batches(100, 5, 1000)[0] == (0, 10)  # 100 / (2 * 5)


def test_a_fixed_batch_size_wins_over_guided_scheduling() -> None:
    batches = plan_batches(10, 2, 1000, batch_size=4)

    assert batches == [(0, 4), (4, 8), (8, 10)]


def test_a_fixed_batch_size_is_still_capped_by_max_batch() -> None:
    batches = plan_batches(10, 2, 3, batch_size=5)

    assert batches == [(0, 3), (3, 6), (6, 9), (9, 10)]


@pytest.mark.parametrize("batch_size", [None, 5])
def test_no_pieces_means_no_batches(batch_size: int | None) -> None:
    assert plan_batches(0, 2, 1000, batch_size=batch_size) == []


def test_zero_workers_is_treated_as_one() -> None:
    batches = plan_batches(10, 0, 1000)

    assert batches[0] == (0, 5)
    assert_exact_cover(batches, 10)


def test_known_tiny_pieces_set_a_floor_on_batch_size_so_the_tail_is_not_single_pieces() -> None:
    batches = plan_batches(5000, 2, 1000, piece_seconds=80e-6)  # 10 ms of work = 125 pieces
    sizes = [stop - start for start, stop in batches]

    assert_exact_cover(batches, 5000)
    assert min(sizes[:-1]) == 125
    assert len(batches) < 30


def test_a_job_of_known_tiny_pieces_that_fits_the_floor_is_one_batch() -> None:
    assert plan_batches(20, 2, 1000, piece_seconds=80e-6) == [(0, 20)]


def test_known_slow_pieces_keep_guided_scheduling_down_to_single_pieces() -> None:
    assert plan_batches(200, 2, 1000, piece_seconds=0.03)[-1] == (199, 200)
