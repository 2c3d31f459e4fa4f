"""``qflhw watch RUN_DIR``: a live terminal view of a run (rich), from its run directory alone.

One table row per client: device, the state of its current provider job, the job id and how
long it has waited (with the queue position when the provider reports it), shots and USD spent,
rounds it reported, its loss per round as a sparkline and its last error or retry. The header
holds the run's status, rounds done of planned, the global test accuracy per round as a
sparkline and the spend against ``budget.max_usd``. The view re-reads the directory every
``interval`` seconds (see :mod:`qflhw.dashboard.state`; nothing is locked) until the run finishes.
"""

from __future__ import annotations

import time

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from qflhw.dashboard.state import RunState, read_state, sparkline

_STYLE = {"running": "green", "queued": "yellow", "submitted": "cyan", "failed": "red", "cancelled": "red", "done": "dim"}


def render(st: RunState) -> Group:
    """The view of one snapshot."""
    planned = f" of {st.planned_rounds}" if st.planned_rounds else ""
    acc = f"{st.accuracy[-1]:.3f}" if st.accuracy else "-"
    budget = f" of ${st.budget_usd:.2f} budget" if st.budget_usd else " (free devices only)"
    head = Text.assemble(
        ("run ", "bold"), (st.run_id, "bold"), f" ({st.spec_name})  " if st.spec_name else "  ",
        (st.status, "green" if st.status in ("running", "finished") else "yellow"),
        f"  rounds {st.rounds_done}{planned}  test accuracy {acc} ",
        (sparkline(st.accuracy, lo=0.0, hi=1.0), "cyan"),
        f"\nspent ${st.total_usd:.2f}{budget}, {st.total_shots:,} shots",
    )
    table = Table(expand=False, pad_edge=False, header_style="bold")
    for col in ("client", "device", "state", "job id", "waited", "shots", "USD", "rounds ok", "loss", "last error / retry"):
        right = col in ("waited", "shots", "USD", "rounds ok")
        table.add_column(col, justify="right" if right else "left", overflow="fold" if col == "last error / retry" else "ellipsis")
    for c in st.clients.values():
        waited = c.waited(st.now)
        state = c.state + (f" #{c.queue_position}" if c.queue_position and c.state == "queued" else "")
        table.add_row(
            c.name, c.device, Text(state, _STYLE.get(c.state, "")), c.job_id or "-",
            "-" if waited is None else _duration(waited), f"{c.shots:,}", f"{c.usd:.2f}", str(c.rounds_ok),
            sparkline(c.losses), Text(c.last_error[:160], "red" if c.last_error else ""),
        )
    return Group(head, table)


def watch(run_dir: str, *, once: bool = False, interval: float = 2.0, console: Console | None = None) -> int:
    """Show the run; with ``once`` one snapshot, else live until it finishes (or Ctrl-C)."""
    if console is None:
        console = Console()
        if not console.is_terminal:  # piped or captured: full lines, nothing cut to 80 columns
            console = Console(width=220)
    st = read_state(run_dir)
    if once or st.finished:
        console.print(render(st))
        return 0
    with Live(render(st), console=console, refresh_per_second=4, transient=False) as live:
        while not st.finished:
            time.sleep(interval)
            st = read_state(run_dir)
            live.update(render(st))
    return 0


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m:02d} min"
