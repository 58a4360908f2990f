"""Runner's configuration: one settings object read from ``RUNNER_*`` environment variables.

Nothing else in Runner reads ``os.environ``. A misspelt ``RUNNER_*`` variable raises
:class:`ConfigError` naming the closest real setting, because a silently ignored
``RUNNER_BROKER_ULR`` sends a fleet to the wrong Redis.

The broker (task delivery), the Celery result backend (Celery's own; Runner keeps no Celery
results) and the status store (job records, results, events) are three settings, each
defaulting to the one before it. Today all three must be Redis (or Redis Sentinel): the
store's scripts and the broker's transport both need it, and a ``sentinel://`` broker URL
moves the store with it unless ``RUNNER_STORE_URL`` says otherwise.
"""

from __future__ import annotations

import difflib
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from runner.errors import ConfigError

__all__ = ["Settings", "get_settings"]

ENV_PREFIX = "RUNNER_"


class Settings(BaseSettings):
    """Every knob Runner has, with the defaults a single-host installation wants."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    broker_url: str = Field("redis://127.0.0.1:6379/0", description="Celery broker (task delivery).")
    result_backend: str | None = Field(None, description="Celery result backend (Runner's tasks keep no Celery results); defaults to broker_url.")
    store_url: str | None = Field(None, description="Redis holding job records, results and events; defaults to result_backend.")
    key_prefix: str = Field("runner", description="Prefix of every Redis key Runner writes in the store.")
    include: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated modules that define templates; imported by workers and clients."
    )
    org: str = Field("default", description="Org (tenant) a client acts for when none is given.")
    default_queue: str = Field("default", description="Queue of app tasks when a template names none.")
    control_queue: str = Field("control", description="Queue of partition and assemble tasks; every worker consumes it.")
    task_timeout: float = Field(300.0, gt=0, description="Default seconds one piece may run (soft limit).")
    job_timeout: float = Field(3600.0, gt=0, description="Default seconds a whole job may run.")
    max_retries: int = Field(2, ge=0, description="Default retries of a failing piece.")
    retention_hours: float = Field(168.0, gt=0, description="Hours a finished job stays in the store.")
    max_batch: int = Field(1000, ge=1, description="Most pieces one app task carries.")
    fair_share: bool = Field(
        True, description="Hand a job's batches to the fleet a few at a time, round-robin between jobs and weighted "
                          "between orgs, so a small job never waits behind a big one (false: all at once, FIFO).")
    fair_batch_seconds: float = Field(
        0.25, gt=0, description="Under fair share, the most work (seconds) one app task carries once its piece "
                               "time is known: how often busy jobs take turns (a newly arrived job's partition "
                               "does not wait for it: a batch stops early for it).")
    inline_stages: bool = Field(
        True, description="Let the process that finishes a stage run the next one itself when its worker serves "
                          "that stage's queue (the partition task runs the first batch, the last batch assembles), "
                          "saving broker round trips; each stage still has its own task id, lease, events and logs.")
    result_max_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="Largest assembled result kept in the store.")
    max_params_bytes: int = Field(1024 * 1024, ge=1024, description="Largest params object a job may carry (JSON bytes).")
    max_inputs: int = Field(32, ge=0, description="Most named inputs a job may bind.")
    max_timeout_seconds: float = Field(
        30 * 86400.0, gt=0, description="Largest task_timeout / job_timeout a job may ask for."
    )
    redis_master_name: str = Field(
        "mymaster", description="The Sentinel group's master name, when a URL is sentinel://host:26379;sentinel://…"
    )
    redis_outage_seconds: float = Field(
        60.0, ge=0, description="Seconds every Redis call rides out an outage (restart, failover) before failing."
    )
    worker_dead_seconds: float = Field(
        15.0, ge=3, description="Seconds without a word from a worker before its running tasks are re-run elsewhere."
    )
    visibility_timeout: int = Field(
        7200, ge=60, description="Seconds before the Redis transport redelivers an unacknowledged task."
    )
    data_dir: Path | None = Field(
        None, description="Runner's local data, the same for every process of a user whatever its folder: job "
                          "artifacts (<data dir>/artifacts) and files any worker may read or write; "
                          "default $XDG_DATA_HOME/runner, else ~/.local/share/runner.")
    file_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=lambda: [Path.cwd()],
        description="Comma-separated directories file:// sources and destinations must lie in, besides the "
                    "data dir (default: the cwd). A setting of the workers: they read and write the files.",
    )
    artifacts_url: str | None = Field(
        None, description="Where job artifacts go (file:// or s3:// prefix); default <data dir>/artifacts."
    )
    shared_cache_dir: Path | None = Field(
        None, description="Executable apps' SHARED_CACHE_DIR (read-only by convention); default a temp directory.")
    user_cache_dir: Path | None = Field(
        None, description="Root of executable apps' USER_CACHE_DIR, one directory per org; default a temp directory.")
    s3_endpoint_url: str | None = Field(None, description="S3-compatible endpoint; AWS when unset.")
    s3_region: str | None = Field(None, description="S3 region; else AWS_DEFAULT_REGION / AWS config.")
    s3_access_key_id: str | None = Field(None, description="S3 access key; else the standard AWS chain.")
    s3_secret_access_key: SecretStr | None = Field(None, description="S3 secret key; never logged.")
    url_allow_link_local: bool = Field(
        False, description="Allow http(s) sources on link-local / cloud-metadata addresses (169.254.0.0/16, fd00:ec2::254)."
    )
    http_timeout: float = Field(30.0, gt=0, description="Seconds to connect to / wait on an http(s) source.")
    log_max_lines: int = Field(10_000, ge=100, description="Most log lines kept per job (older ones are dropped).")
    log_format: Literal["text", "json"] = Field("text", description="Worker process log format (json: one object a line).")
    flower_basic_auth: SecretStr | None = Field(None, description="user:password that `runner flower` requires.")
    flower_url: str | None = Field(None, description="Flower's URL, for `runner doctor` to check.")
    flower_db: Path = Field(Path(".runner/flower.db"), description="Where `runner flower` keeps its state across restarts.")
    schedule_min_interval: float = Field(
        10.0, gt=0, description="Shortest interval (seconds) a schedule may fire at; refused at create below it."
    )
    debug: bool = Field(False, description="Print tracebacks on the command line (also `runner --debug`).")
    api_max_body_bytes: int = Field(1024 * 1024, ge=1024, description="Largest request body the HTTP API reads (413 above).")
    api_rate_limit: str = Field(
        "100/second", pattern=r"^\d+/(second|minute|hour|\d+s)$",
        description="Requests per API key per window, shared by every API process: N/second, N/minute, N/hour or N/<secs>s.",
    )
    api_token_seconds: int = Field(3600, ge=1, description="Seconds an HTTP API access token lives.")
    ui: bool = Field(True, description="Serve the jobs dashboard at /ui from `runner api` (`--no-ui` turns it off).")
    ui_session_seconds: int = Field(8 * 3600, ge=60, description="Seconds a dashboard (/ui) session lives after its last request.")
    api_link_seconds: int = Field(48 * 3600, ge=60, description="Seconds a signed result link stays valid.")
    api_max_upload_bytes: int = Field(5 * 1024**3, ge=1024, description="Largest file a ByteNite client may PUT "
                                      "to a job's upload link (tempUrl); 413 above, nothing stored.")
    metrics_token: SecretStr | None = Field(
        None, description="Bearer token that reads every org's metrics at the HTTP API's /metrics (for Prometheus); "
                          "without it, only an org's access token reads that org's. Never logged.",
    )
    attach_dead_seconds: float = Field(
        60.0, ge=1, description="Seconds without a heartbeat before an attached job's process counts as gone "
                                "(the job ends failed: 'the attached process stopped reporting').")
    attach_max_artifact_bytes: int = Field(
        64 * 1024**3, ge=1024, description="Largest artifact a PUT /v1/jobs/{id}/artifacts/{name} may upload (413 above).")
    api_url: str = Field("http://127.0.0.1:8000", description="`runner api`'s URL, for attached jobs (runner.attach.Job).")
    job_id: str | None = Field(None, description="The job an attached process attaches to (runner.attach.Job.init).")
    job_key: SecretStr | None = Field(None, description="That job's own API key (runner.attach.Job.init); never logged.")

    @field_validator("include", "file_roots", mode="before")
    @classmethod
    def _split_modules(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def backend_url(self) -> str:
        """The Celery result backend actually used."""
        return self.result_backend or self.broker_url

    @property
    def status_store_url(self) -> str:
        """The Redis URL of the status store actually used."""
        return self.store_url or self.backend_url

    @property
    def data_root(self) -> Path:
        """The data directory actually used (see ``data_dir``)."""
        return self.data_dir or _default_data_dir(os.environ.get("XDG_DATA_HOME"))

    @property
    def allowed_roots(self) -> list[Path]:
        """Where file:// URIs may point: the file roots and the data dir (none: anywhere)."""
        return [*self.file_roots, self.data_root] if self.file_roots else []

    @property
    def artifacts_root(self) -> str:
        """The URI prefix under which each job's artifacts live (``<root>/<job id>/``): one
        place every process of the user agrees on, wherever it was started."""
        if self.artifacts_url:
            return self.artifacts_url.rstrip("/")
        return _local_artifacts(self.data_root)


@lru_cache(maxsize=4)
def _default_data_dir(xdg_data_home: str | None) -> Path:
    return (Path(xdg_data_home) if xdg_data_home else Path.home() / ".local" / "share") / "runner"


@lru_cache(maxsize=16)
@lru_cache(maxsize=8)
def _local_artifacts(root: Path) -> str:
    """``root``'s artifacts folder as a URI (resolving a path costs a system call per
    component, and every batch's context asks: resolved once per process)."""
    return (root / "artifacts").resolve().as_uri()


def _check_unknown_env(environ: dict[str, str]) -> None:
    known = {name.upper() for name in Settings.model_fields}
    for key in environ:
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX):]
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {ENV_PREFIX}{close[0]}?" if close else ""
            raise ConfigError(f"unknown setting {key}{hint} (known: {', '.join(sorted(known))})")


def get_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with ``overrides`` on top.

    Raises :class:`ConfigError` for an unknown ``RUNNER_*`` variable or a bad value.
    """
    _check_unknown_env(dict(os.environ))
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{ENV_PREFIX}{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None
