"""Tables for ``bench_speed.py``'s report: the goals with ✔/✗ first, then each goal's
figures for every engine, then where Runner's time went (its phases)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.speed_engines import PHASES

__all__ = ["render"]

NAMES = {"runner": "Runner (one piece per app call)", "pool": "process pool (chunksize 100)",
         "chunked": "Celery, 100 pieces per task by hand", "chord": "plain Celery chord, a task per piece"}


def render(report: dict[str, Any], console: Console) -> None:
    sections = report["sections"]
    machine = report["machine"]
    goals = Table(title=f"Speed goals (issues 13 and 24) — medians of {report['repeats']} interleaved repeats; 1 worker × "
                        f"{report['concurrency']} processes, {machine['cpus']} CPUs, load {machine['load_average']}; "
                        f"{report['seconds']:.0f} s")
    for name, justify in (("goal", "left"), ("what", "left"), ("measured", "right"), ("target", "right"),
                          ("", "center")):
        goals.add_column(name, justify=justify)
    for g in report["goals"]:
        goals.add_row(g["goal"], g["what"], g["measured"], g["target"], "[green]✔[/green]" if g["pass"] else "[red]✗[/red]")
    console.print(goals)
    for part in (_throughput, _latency, _big, _small, _fleet, _phases):
        table = part(sections)
        if table is not None:
            console.print(table)


def _throughput(sections: dict[str, Any]) -> Table | None:
    p1, p2 = sections.get("P1"), sections.get("P2")
    if not (p1 or p2):
        return None
    table = Table(title="P1 / P2: the same job on each engine (median)")
    table.add_column("engine")
    if p1:
        table.add_column(f"P1 {p1['label']}\npieces/s", justify="right")
        table.add_column("Runner ÷ it", justify="right")
    if p2:
        table.add_column(f"P2 {p2['label']}\nwall s", justify="right")
        table.add_column("Runner ÷ it", justify="right")
    for engine, title in NAMES.items():
        cells = [title]
        if p1:
            cells += [f"{p1['engines'][engine]['median_pieces_per_s']:,.0f}",
                      f"{p1['vs'][engine]:.2f}×" if engine in p1["vs"] else ""]
        if p2:
            cells += [f"{p2['engines'][engine]['median_s']:.3f}", f"{p2['vs'][engine]:.2f}×" if engine in p2["vs"] else ""]
        table.add_row(*cells)
    return table


def _latency(sections: dict[str, Any]) -> Table | None:
    p3 = sections.get("P3")
    if not p3:
        return None
    sizes = list(p3["ms"])
    table = Table(title=f"P3: submit → result in the client, median of {p3['runs']} rounds, ms")
    table.add_column("engine")
    for size in sizes:
        table.add_column(f"{size} piece{'s' if size != '1' else ''} × 80 µs", justify="right")
    for engine in ("runner", "chord", "task", "pool"):
        cells = [f"{p3['ms'][size][engine]:.1f}" if engine in p3["ms"][size] else "—" for size in sizes]
        table.add_row(NAMES.get(engine, "one bare Celery task, its result read"), *cells)
    return table


def _big(sections: dict[str, Any]) -> Table | None:
    p4 = sections.get("P4")
    if not p4:
        return None
    d, base = p4["detail"], p4["baseline"]
    mb = 2 ** 20
    table = Table(title=f"P4: one {p4['pieces']:,}-piece no-work job (replicas → bench_spin → sum)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("outcome", d["outcome"]),
        ("pieces done", f"{d['pieces_done']:,} of {p4['pieces']:,}"),
        ("job timeout (the cap)", f"{d['job_timeout_s']:.0f} s"),
        ("wall, submit → wait() returned", f"{p4['seconds']:.1f} s"),
        ("time per piece", f"{p4['per_piece_us']:.2f} µs"),
        (f"  a {base['pieces']:,}-piece no-work job", f"{base['per_piece_us']:.2f} µs ({base['median_s']:.3f} s)"),
        ("Redis used_memory before", f"{d['redis_before']['used_memory'] / mb:,.1f} MB"),
        ("Redis used_memory_peak before / after",
         f"{d['redis_before']['used_memory_peak'] / mb:,.1f} / {d['redis_after']['used_memory_peak'] / mb:,.1f} MB"),
        ("Redis peak growth (peak after − used before)", f"{d['redis_peak_growth_mb']:,.1f} MB"),
        ("client RSS start / max / end", f"{d['client_rss']['start_mb']} / {d['client_rss']['max_mb']} / "
                                         f"{d['client_rss']['end_mb']} MB ({d['client_rss']['samples']} samples)"),
        ("app tasks (batches)", str(d.get("batches_total"))),
        ("first state events trimmed from the stream", "yes" if d.get("events_trimmed") else "no"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _small(sections: dict[str, Any]) -> Table | None:
    p5 = sections.get("P5")
    if not p5:
        return None
    table = Table(title=f"P5/P7: {p5['jobs']:,} three-piece jobs per engine from {p5['threads']} client threads "
                        f"(Redis commands per job: issue 13's code {p5['base_commands_per_job']:.1f})")
    for name in ("engine", "jobs/s", "Redis commands / job", "p50 ms", "p99 ms", "wall s"):
        table.add_column(name, justify="left" if name == "engine" else "right")
    for engine in ("runner", "chord"):
        e = p5["engines"][engine]
        table.add_row(NAMES[engine], f"{e['jobs_per_s']:,.1f}", f"{e['commands_per_job']:,.1f}",
                      " / ".join(f"{x:,.0f}" for x in e["p50_ms"]), " / ".join(f"{x:,.0f}" for x in e["p99_ms"]),
                      " + ".join(f"{x:.1f}" for x in e["runs_s"]))
    return table


def _fleet(sections: dict[str, Any]) -> Table | None:
    p6 = sections.get("P6")
    if not p6:
        return None
    table = Table(title=f"P6: what one {p6['pieces']:,}-piece no-work job costs the Redis server, per piece, and the "
                        "fleet ceiling it models (one Redis core ÷ CPU per piece) beside the pieces/s measured here")
    for name in ("pieces", "Redis CPU µs / piece", "Redis commands / piece", "pieces/s measured",
                 "modelled ceiling, pieces/s per Redis core"):
        table.add_column(name, justify="left" if name == "pieces" else "right")
    for label, c in p6["cases"].items():
        ceiling = c["ceiling_pieces_per_s"]
        table.add_row(label, f"{c['cpu_us_per_piece']:.2f}", f"{c['commands_per_piece']:.3f}", f"{c['pieces_per_s']:,.0f}",
                      "—" if ceiling is None else f"{ceiling:,.0f}")
    return table


def _phases(sections: dict[str, Any]) -> Table | None:
    cases: list[tuple[str, dict[str, Any]]] = []
    if "P1" in sections:
        cases.append(("P1 tiny", sections["P1"]["phases"]))
    if "P2" in sections:
        cases.append(("P2 heavy", sections["P2"]["phases"]))
    if "P3" in sections:
        cases += [(f"P3 {size} pc", phases) for size, phases in sections["P3"]["phases"].items()]
    if "P4" in sections:
        cases += [(f"P4 {sections['P4']['baseline']['pieces']:,}×0", sections["P4"]["baseline_phases"]),
                  (f"P4 {sections['P4']['pieces']:,}", sections["P4"]["phases"])]
    if not cases:
        return None
    table = Table(title="Where Runner's time goes: each case's median job, ms (from its state-change events)")
    table.add_column("phase")
    for name, _ in cases:
        table.add_column(name, justify="right")
    extra = sorted({name for _, p in cases for name in p["phases_s"]} - {name for name, _ in PHASES})
    for name, meaning in [*PHASES, *((name, "spans states whose events were trimmed") for name in extra)]:
        table.add_row(f"{name}  [dim]{meaning}[/dim]", *(_ms(p["phases_s"].get(name)) for _, p in cases))
    table.add_row("[bold]total[/bold]", *(_ms(sum(p["phases_s"].values()) or None) for _, p in cases))
    table.add_row("app tasks (batches)", *(str(p.get("batches_total")) for _, p in cases))
    table.add_row("result flushes (progress events)", *(str(p.get("result_flushes")) for _, p in cases))
    return table


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:,.1f}"
