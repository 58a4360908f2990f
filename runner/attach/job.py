"""``runner.attach.Job``: the execution context of a process you start yourself — a
training script, a container, a notebook — attached to a job by its id and key.

::

    class MyJob(Job):
        settings: MySettings
        def run(self):
            ...
            return "model.tar.gz"          # uploaded as the job's model artifact

    MyJob.init(job_id=…, api_key=…).start()

``start`` uploads ``output.json``, marks the job running, keeps it alive with heartbeats
while ``run`` works, and completes it (or fails it with the exception's type, message and
traceback; Ctrl-C fails it as interrupted). A process that dies without a word is noticed
by the fleet after ``RUNNER_ATTACH_DEAD_SECONDS``.
"""

from __future__ import annotations

import difflib
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import traceback
import typing
import weakref
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

import httpx
from pydantic import TypeAdapter

from runner.artifacts import check_name
from runner.attach.http import AttachApi, AttachError
from runner.attach.io import JobIO
from runner.attach.settings import JobSettings, build_settings, split_argv
from runner.config import get_settings
from runner.errors import ConfigError, InvalidParams

__all__ = ["Job"]

log = logging.getLogger("runner.attach")
OUTPUT = "output.json"


class _Heartbeat:
    """A daemon thread telling the API, every ``interval`` seconds, that the process lives."""

    def __init__(self, api: AttachApi, interval: float) -> None:
        self.api, self.interval, self.stopped = api, interval, threading.Event()
        self.thread = threading.Thread(target=self._loop, name="runner-attach-heartbeat", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.api.heartbeat()
            except AttachError as exc:
                if exc.status in (404, 409):  # the job ended (cancelled, timed out) or is gone
                    log.warning("job %s: %s", self.api.job_id, exc)
                    return
                log.warning("heartbeat refused: %s", exc)
            except httpx.HTTPError as exc:  # the API restarting: the next beat retries
                log.warning("heartbeat failed: %s", exc)

    def stop(self) -> None:
        self.stopped.set()


class Job:
    """An attached job. Subclass it, annotate ``settings: YourSettings`` (a
    :class:`JobSettings`) and override :meth:`run`; or use it as it is."""

    settings: JobSettings
    Settings: ClassVar[type | None] = None

    def __init__(self, api: AttachApi, record: dict[str, Any], settings: Any) -> None:
        self.api = api
        self.id: str = record["id"]
        self.name: str | None = record.get("name")
        self.settings = settings
        self.io = JobIO(api, f"{api.url}/v1/jobs/{self.id}/artifacts")
        self._metrics: dict[str, list[Any]] = {}
        self._started_at: datetime | None = None
        self._model: str | None = None
        self._beat: _Heartbeat | None = None
        self._scratch: str | None = None

    # -- attaching ----------------------------------------------------------------------
    @classmethod
    def init(cls, job_id: str | None = None, api_key: str | None = None, *, host: str | None = None,
             argv: list[str] | None = None) -> "Job":
        """Attach to a job: its id and key from the arguments, else argv ``--job_id`` /
        ``--api_key``, else ``RUNNER_JOB_ID`` / ``RUNNER_JOB_KEY``; the API at ``host``,
        else ``RUNNER_API_URL``. Reads the job's settings and overlays argv's
        (``--custom.custom_param 5``). Raises ConfigError, InvalidParams or AttachError."""
        options, overrides = split_argv(sys.argv[1:] if argv is None else list(argv))
        config = get_settings()
        job_id = job_id or options.get("job_id") or config.job_id
        api_key = api_key or options.get("api_key") or (config.job_key.get_secret_value() if config.job_key else None)
        if not job_id or not api_key:
            raise ConfigError("no job to attach to: pass Job.init(job_id=..., api_key=...), --job_id ... --api_key ..., "
                              "or set RUNNER_JOB_ID and RUNNER_JOB_KEY (from POST /v1/jobs with attach: true)")
        api = AttachApi(host or config.api_url, job_id, api_key)
        record = api.job()
        return cls(api, record, build_settings(cls.settings_model(), record.get("settings"), overrides))

    @classmethod
    def settings_model(cls) -> Any:
        """The settings class: the ``settings`` annotation (or a ``Settings`` attribute)."""
        try:
            hint = typing.get_type_hints(cls).get("settings")
        except (NameError, TypeError):
            hint = None
        if hint is JobSettings and cls.Settings is not None:
            return cls.Settings
        return hint or cls.Settings or JobSettings

    # -- running ------------------------------------------------------------------------
    def run(self) -> Any:
        """Do the work; return a path to the model file (uploaded as the job's model
        artifact), or None. Override it."""
        return None

    def start(self) -> Any:
        """Upload ``output.json``, mark the job running, call :meth:`run` with heartbeats
        going, then complete the job with the path ``run`` returned. An exception fails
        the job (type, message, traceback) and propagates; Ctrl-C fails it as interrupted."""
        self._started_at = datetime.now(timezone.utc)
        self.upload_job_output()
        status = self.api.start(socket.gethostname(), os.getpid())
        dead = float((status.get("attached") or {}).get("dead_seconds") or 60)
        self._beat = self._beat or _Heartbeat(self.api, max(0.2, dead / 4))
        try:
            path = self.run()
        except KeyboardInterrupt:
            self._fail("KeyboardInterrupt", "interrupted (Ctrl-C)", None)
            raise
        except BaseException as exc:
            self._fail(type(exc).__name__, str(exc) or type(exc).__name__, traceback.format_exc())
            raise
        self.complete_job(path)
        return path

    def _fail(self, kind: str, message: str, trace: str | None) -> None:
        self._stop_beat()
        try:
            self.api.fail(message, kind, trace)
        except (AttachError, httpx.HTTPError) as exc:
            log.warning("could not mark job %s failed: %s", self.id, exc)

    def _stop_beat(self) -> None:
        if self._beat is not None:
            self._beat.stop()

    def complete_job(self, path: str | Path | None = None) -> None:
        """Complete the job; ``path`` (a local file or directory, or an artifact path) is
        uploaded as its model artifact and recorded in its result and ``output.json``."""
        if path is not None:
            self._model = self._store_model(path)
        self.upload_job_output()
        self._stop_beat()
        self.api.complete(self._model)

    def _store_model(self, path: str | Path) -> str:
        if self.io.is_artifact(path):
            return self.io.artifact_name(path)
        local = Path(path)
        if local.is_dir():
            local = Path(shutil.make_archive(self.temp_path(local.name), "gztar", local))
        if not local.is_file():
            raise InvalidParams([("model", f"{str(path)!r} is neither a local file nor an artifact path")])
        self.io.upload(local, local.name)
        return local.name

    # -- what the job reports -----------------------------------------------------------
    @property
    def host_name(self) -> str:
        """The job's page on Runner's dashboard."""
        return f"{self.api.url}/ui/jobs/{self.id}"

    def add_output_metric(self, name: str, value: float, step: int | None = None) -> None:
        """Report a metric value now: live in ``runner status`` and ``GET /v1/jobs/{id}``."""
        self.add_output_metrics({name: value}, step)

    def add_output_metrics(self, values: dict[str, float], step: int | None = None) -> None:
        """Report several metric values in one request."""
        items = []
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidParams([(f"metric {name!r}", f"must be a number, got {value!r}")])
            items.append({"name": str(name), "value": value, **({"step": step} if step is not None else {})})
            self._metrics.setdefault(str(name), []).append(value)
        self.api.metrics(items)

    def upload_job_output(self) -> str:
        """Upload ``output.json`` (settings, host, start time, metrics so far, model);
        returns ``'artifacts/output.json'``."""
        document = {
            "job": {"id": self.id, "name": self.name}, "settings": self._config(),
            "host": socket.gethostname(), "pid": os.getpid(),
            "started_at": self._started_at.isoformat() if self._started_at else None,
            "metrics": self._metrics, "model": self._model,
        }
        self.api.put_artifact(OUTPUT, TypeAdapter(dict).dump_json(document, indent=2))
        return f"artifacts/{OUTPUT}"

    def _config(self) -> Any:
        getter = getattr(self.settings, "get_config", None)
        if callable(getter):
            return TypeAdapter(Any).dump_python(getter(), mode="json")
        return TypeAdapter(type(self.settings)).dump_python(self.settings, mode="json")

    # -- files --------------------------------------------------------------------------
    def temp_path(self, name: str) -> str:
        """A local path in this job's scratch directory, kept until the process exits."""
        if self._scratch is None:
            self._scratch = tempfile.mkdtemp(prefix=f"runner-job-{self.id}-")
            weakref.finalize(self, shutil.rmtree, self._scratch, True)
        path = Path(self._scratch) / check_name(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        return str(path)

    def artifact_path(self, name: str) -> str:
        """The path of artifact ``name``: ``job.io.write_file`` uploads to it, ``read_file``
        downloads from it (it is also its download URL)."""
        return self.io.prefix + check_name(name)

    def __getattr__(self, name: str) -> Any:
        # only for names normal lookup missed: point at self.settings when it has the name
        if name.startswith("_") or name in ("settings", "api", "io"):
            raise AttributeError(name)
        fields = list(getattr(type(self.__dict__.get("settings")), "model_fields", {}))
        close = difflib.get_close_matches(name, fields, n=1, cutoff=0.6)
        hint = f"; settings are at self.settings (did you mean self.settings.{close[0]}?)" if close else ""
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}{hint}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r})"
