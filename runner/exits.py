"""How a command line ends on an error: every error becomes one line (or a few) naming
the value and the fix, never a traceback — unless ``--debug`` or ``RUNNER_DEBUG=1`` asks
for one. Both command lines use it, ``runner`` and a ``SimpleJob``'s own ``main``, so it
sits beside them rather than inside the CLI (the SDK never imports the CLI).

Exit status: 2 for a usage error (a bad option, params, setting or URL: the command
never ran), 1 for everything else (a failed job, an unreachable server, a missing job),
130 for Ctrl-C. ``SimpleJob.main`` uses the same handler, so a training script's bad
``--lr fast`` reads the same as ``runner submit``'s bad ``-p``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click
import redis
from kombu.exceptions import OperationalError
from rich.console import Console

from runner.config import Settings, get_settings

from runner.redis_connect import unreachable
from runner.errors import ConfigError, InvalidParams, JobError, RunnerError, TemplateNotFound
from runner.storage import redact_url

__all__ = ["USAGE", "FAILED", "INTERRUPTED", "describe", "exit_on_error", "err_console"]

USAGE, FAILED, INTERRUPTED = 2, 1, 130

# Errors and hints go to stderr, unwrapped when piped, so stdout stays data (ids, JSON).
err_console = Console(stderr=True, soft_wrap=True, highlight=False)


def _settings_urls() -> tuple[str, str]:
    """The broker and store URLs of the current settings (defaults if they are broken)."""
    try:
        settings = get_settings()
    except ConfigError:
        settings = Settings.model_construct()
    return settings.broker_url, settings.status_store_url


def _unreachable(exc: BaseException) -> str:
    return unreachable(*_settings_urls(), exc)  # the same line a worker says (runner/redis_connect.py)


def _is_connection_error(exc: BaseException) -> bool:
    return isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OperationalError,
                            ConnectionError))


def _job_error(exc: JobError) -> str:
    error = exc.error or {}
    hint = ""
    if error.get("type") == "TemplateNotFound" and "--include" not in str(exc):
        hint = ("\n  hint: no worker imports the module defining the template: "
                "start one with runner worker --include MODULE")
    job_id = getattr(exc.status, "id", None)
    if job_id and error.get("type") != "JobCancelled":
        hint += f"\n  next: runner status {job_id} · runner logs {job_id}"
        if getattr(exc.status, "state", None) in ("failed", "timed_out"):
            hint += f" · runner retry {job_id}"
    return f"{exc}{hint}"


def describe(exc: BaseException) -> tuple[str, int]:
    """The message and exit status the command line shows for ``exc``."""
    if isinstance(exc, JobError):
        return _job_error(exc), FAILED
    if isinstance(exc, (InvalidParams, ConfigError, TemplateNotFound)):
        return f"error: {exc}", USAGE
    if isinstance(exc, RunnerError):
        return f"error: {exc}", FAILED
    if _is_connection_error(exc):
        return f"error: {_unreachable(exc)}", FAILED
    if isinstance(exc, ValueError) and "Redis URL" in str(exc):
        broker, _ = _settings_urls()
        return (f"error: RUNNER_BROKER_URL {redact_url(broker)!r} is not a Redis URL ({exc}); "
                f"use redis://HOST:PORT/DB"), USAGE
    return (f"error: unexpected {type(exc).__name__}: {exc} (run with --debug or RUNNER_DEBUG=1 for the traceback)",
            FAILED)


def debug_requested(argv: list[str] | None) -> bool:
    """``--debug`` on the command line or ``RUNNER_DEBUG=1`` in the settings."""
    if "--debug" in (sys.argv[1:] if argv is None else argv):
        return True
    try:
        return get_settings().debug
    except ConfigError:
        return False


@contextmanager
def exit_on_error(argv: list[str] | None = None) -> Iterator[None]:
    """Run a command: errors become one line on stderr and an exit status; with debug on,
    the traceback is printed first."""
    try:
        yield
    except SystemExit:
        raise
    except click.exceptions.Abort:
        sys.exit(INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(INTERRUPTED)
    except Exception as exc:
        if debug_requested(argv):
            err_console.print_exception()
        message, status = describe(exc)
        err_console.print(message, style="red" if status == FAILED else None, markup=False)
        sys.exit(status)
