"""Tables for ``bench_fair_share.py``'s report: the goals with fair share on beside off,
then each figure for both modes."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["render"]


def render(report: dict[str, Any], console: Console) -> None:
    m, s = report["machine"], report["sizes"]
    console.print(f"{m['cpu_model']}, nproc {m['nproc']}, Python {m['python']}; load average "
                  f"{m['load_average_start']} at the start, {m['load_average_end']} at the end; "
                  f"{report['seconds']:.0f} s. Each worker run began with a warm-up job of "
                  f"{s['warm_up_pieces']} × 80 µs, so the pieces' time was known before measuring. "
                  "Absolute ms differ between machines: compare the ratios.")
    goals = Table(title=f"Issue 23 goals — fair share on vs off; 1 worker × {report['concurrency']} processes")
    for name, justify in (("goal", "left"), ("what", "left"), ("on", "right"), ("off", "right"),
                          ("target (on)", "right"), ("", "center")):
        goals.add_column(name, justify=justify)
    for g in report["goals"]:
        goals.add_row(g["goal"], g["what"], g["measured"], g["off"], g["target"],
                      "[green]✔[/green]" if g["pass"] else "[red]✗[/red]")
    console.print(goals)
    console.print(_figures(report))


def _ms(figures: dict[str, Any], key: str) -> str:
    return "—" if figures.get(key) is None else f"{figures[key]:,.1f}"


def _figures(report: dict[str, Any]) -> Table:
    sec, s, repeats = report["sections"], report["sizes"], report["repeats"]
    table = Table(title="Figures by mode (F1, F2, F4: the first worker run of each mode; F3: median of "
                        f"{repeats} worker run{'s' if repeats != 1 else ''} per mode)")
    table.add_column("figure")
    table.add_column("fair share off", justify="right")
    table.add_column("fair share on", justify="right")
    f1, f2 = sec["F1"], sec["F2"]
    table.add_row(f"F1 1-piece job, idle, {s['f1_rounds']} rounds: p50 / p99 ms",
                  *(f"{_ms(f1[m], 'p50_ms')} / {_ms(f1[m], 'p99_ms')}" for m in ("off", "on")))
    table.add_row(f"F2 1-piece jobs under {s['big_pieces']:,} × 80 µs of another org: p50 / p99 ms",
                  *(f"{_ms(f2[m], 'p50_ms')} / {_ms(f2[m], 'p99_ms')}" for m in ("off", "on")))
    table.add_row("F2 one-piece jobs measured; worst ms",
                  *(f"{f2[m]['count']}; {_ms(f2[m], 'max_ms')}" for m in ("off", "on")))
    table.add_row("F2 p50 ÷ F1 p50", *("—" if f2[m]["vs_f1_p50"] is None else f"{f2[m]['vs_f1_p50']:.2f}×"
                                       for m in ("off", "on")))
    table.add_row("F2 the big job, submit → result s", *(f"{f2[m]['big_seconds']:.2f}" for m in ("off", "on")))
    for case, label in (("big", s["big_pieces"]), ("p1", s["p1_pieces"])):
        f3 = sec["F3"][case]
        table.add_row(f"F3 {label:,} × 80 µs alone, pieces/s (runs)",
                      *(f"{f3[m]['median_pieces_per_s']:,.0f} ({', '.join(f'{x:,.0f}' for x in f3[m]['runs_pieces_per_s'])})"
                        for m in ("off", "on")))
    for n in ("2", "4"):
        f4 = sec["F4"][n]
        table.add_row(f"F4 {n} orgs × {s['f4_pieces']:,}: pieces done at first half (min/max)",
                      *(f"{', '.join(f'{d:,}' for d in f4[m]['pieces_done'])} ({f4[m]['min_max']:.2f})"
                        for m in ("off", "on")))
    table.add_row("piece time known after warm-up, µs",
                  *(", ".join(str(w["piece_time_known_us"]) for w in sec["warm_up"][m]) for m in ("off", "on")))
    return table
