"""Enter on a process: the full command, who runs it, its workload, its GPUs, and what it cost today."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from gpuspend.snapshot import ProcessNow, Snapshot
from gpuspend.tui.widgets.fmt import clean, money, size
from gpuspend.tui.widgets.process_table import workload_of


def detail_text(p: ProcessNow, snap: Snapshot) -> Text:
    """Everything the table cuts short. Outside text goes in as plain characters (never markup)."""
    rows = [p2 for p2 in snap.processes if p2.pid == p.pid and p2.user == p.user and p2.command == p.command]
    # each row is this process on one GPU, with that GPU's share: the process costs their sum, per currency
    # (each GPU's money is in its own; currencies are never summed)
    costs: dict[str, list[float]] = {}
    for r in rows or [p]:
        acc = costs.setdefault(snap.currency_of(r.gpu_uuid), [0.0, 0.0])
        acc[0] += r.cost_today
        acc[1] += r.idle_cost_today
    cost, idle_cost = sum(a[0] for a in costs.values()), sum(a[1] for a in costs.values())  # only: zero or not
    no_rate = snap.no_rate_at_all and not cost
    gpus = {g.uuid: g for g in snap.gpus}
    t = Text()

    def field(label: str, value: str, style: str = "") -> None:
        t.append(f"{label:<14}", style="bold")
        t.append(value, style=style)
        t.append("\n")

    field("pid", str(p.pid))
    field("user", clean(p.user))
    field("workload", workload_of(p) or "-")
    field("cost today", "no rate" if no_rate else " + ".join(money(a[0], c) for c, a in sorted(costs.items())))
    field("idle today", "no rate" if no_rate else " + ".join(money(a[1], c) for c, a in sorted(costs.items())),
          "#ff5f5f" if idle_cost else "")
    t.append(f"{'GPUs':<14}", style="bold")
    for i, row in enumerate(rows):
        g = gpus.get(row.gpu_uuid)
        name = f"GPU {row.gpu_index}" if row.gpu_index is not None else clean(row.gpu_uuid)
        state = f", {g.state}" if g is not None else ""
        share = "" if no_rate else f", {money(row.cost_today, snap.currency_of(row.gpu_uuid))} today"
        t.append(("" if i == 0 else " " * 14) + f"{name}: {size(row.used_memory)} held{state}{share}\n")
    if not rows:
        t.append("-\n")
    t.append("\ncommand\n", style="bold")
    t.append(clean(p.command) or "-")
    t.append("\n\n")
    t.append("today's cost is this process's share of its GPUs since midnight (UTC): by SM share when the "
             "driver reports it, else by memory; idle today is the part spent while its GPU was idle.",
             style="dim")
    return t


class ProcessScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss", "Close", id="process_close"),
        Binding("enter", "dismiss", "Close", show=False),
        Binding("q", "dismiss", "Close", show=False),
    ]

    def __init__(self, process: ProcessNow, snap: Snapshot, *, ascii_only: bool = False) -> None:
        super().__init__()
        self.process = process
        self.snap = snap
        self.ascii_only = ascii_only

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="process-box"):
            yield Static(detail_text(self.process, self.snap), id="process-text")

    def on_mount(self) -> None:
        self.query_one("#process-box").border_title = f"process {self.process.pid} (esc to close)"

    def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)
