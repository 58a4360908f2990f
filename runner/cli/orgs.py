"""``runner orgs`` (each org's quotas and what it uses now) and ``runner orgs set ORG``
(change them): what ``store.org_quotas`` reads and writes, for an installation's
operator. Limits are enforced fleet-wide: ``max_queued_jobs`` at submit (HTTP 429),
``max_running_jobs`` when a job would start (it waits ``queued``), ``max_pieces_in_flight``
and ``weight`` by the fair share of batches."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from runner.cli.common import console, read_store, say

if TYPE_CHECKING:
    from rich.table import Table

    from runner.store.org_quotas import OrgQuota

__all__ = ["orgs"]

CLEAR = "none"  # an option's value that clears that limit


class _Limit(click.ParamType):
    """A whole number of at least ``least``, or ``none`` (clear the limit)."""

    name = "N|none"

    def __init__(self, least: int) -> None:
        self.least = least

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value).strip().lower()
        if text == CLEAR:
            return CLEAR
        try:
            number = int(text)
        except ValueError:
            number = None
        if number is None or number < self.least:
            self.fail(f"{value!r}: use a whole number of at least {self.least}, or none to clear it", param, ctx)
        return number


class _Weight(click.ParamType):
    """A number above 0 (an org's share of the fleet against others'), or ``none`` (1)."""

    name = "W|none"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value).strip().lower()
        if text == CLEAR:
            return CLEAR
        try:
            weight = float(text)
        except ValueError:
            weight = float("nan")
        if not 0 < weight < float("inf"):
            self.fail(f"{value!r}: use a number above 0 (2 gets twice the share of 1), or none for 1", param, ctx)
        return weight


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def orgs(ctx: click.Context, as_json: bool) -> None:
    """Each org's quotas and what it uses now: running, queued and waiting jobs.

    Change them with: runner orgs set ORG --max-running-jobs N ...
    """
    if ctx.invoked_subcommand is not None:
        return
    store, _ = read_store()
    found = store.org_quotas.all()
    if as_json:
        print(json.dumps([quota.model_dump() for quota in found], indent=2))
    elif found:
        console.print(quota_table(found))
    else:
        say("no org has quotas yet: runner orgs set ORG --max-running-jobs N --max-queued-jobs N ...")


@orgs.command("set")
@click.argument("org")
@click.option("--max-running-jobs", type=_Limit(1), default=None, metavar="N|none",
              help="Jobs of the org running at once; more wait queued until one ends.")
@click.option("--max-pieces-in-flight", type=_Limit(1), default=None, metavar="N|none",
              help="Pieces of the org handed to workers at once (fair share).")
@click.option("--max-queued-jobs", type=_Limit(0), default=None, metavar="N|none",
              help="Jobs of the org queued at once; a submit over it is refused (HTTP 429).")
@click.option("--weight", type=_Weight(), default=None, metavar="W|none",
              help="The org's share of a busy fleet against others' (1).")
@click.option("--json", "as_json", is_flag=True)
def set_(org: str, max_running_jobs: Any, max_pieces_in_flight: Any, max_queued_jobs: Any, weight: Any,
         as_json: bool) -> None:
    """Set ORG's quotas; each option given replaces that one (none clears it), the others stay."""
    given = {"max_running_jobs": max_running_jobs, "max_pieces_in_flight": max_pieces_in_flight,
             "max_queued_jobs": max_queued_jobs, "weight": weight}
    limits = {name: (None if value == CLEAR else value) for name, value in given.items() if value is not None}
    if not limits:
        raise click.UsageError("give at least one of --max-running-jobs, --max-pieces-in-flight, "
                               "--max-queued-jobs, --weight (a number, or none to clear it)")
    store, _ = read_store()
    quota = store.org_quotas.set(org, **limits)
    if as_json:
        print(quota.model_dump_json(indent=2))
    else:
        console.print(quota_table([quota]))


def _limit(value: int | float | None, default: str = "-") -> str:
    return default if value is None else f"{value:g}"


def quota_table(found: list["OrgQuota"]) -> "Table":
    """One row an org: each limit ('-' for none), then its running, queued and waiting jobs
    and its pieces in flight."""
    from rich.table import Table

    table = Table()
    table.add_column("org", no_wrap=True)
    for name in ("max running", "max pieces in flight", "max queued", "weight", "running", "queued", "waiting",
                 "pieces in flight"):
        table.add_column(name, justify="right", no_wrap=True)
    for q in found:
        table.add_row(q.org, _limit(q.max_running_jobs), _limit(q.max_pieces_in_flight), _limit(q.max_queued_jobs),
                      _limit(q.weight, "1"), str(q.running), str(q.queued), str(q.waiting), str(q.in_flight))
    return table
