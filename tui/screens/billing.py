"""`b`: the month so far by day, top services and GPU SKUs, import coverage, cheaper elsewhere."""

from __future__ import annotations

from rich import box
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from gpuspend.clock import to_datetime
from gpuspend.snapshot import BillingSummary
from gpuspend.tui.widgets.fmt import money, plain


def _table(title: str, ascii_only: bool, *cols: str) -> Table:
    t = Table(title=title, title_justify="left", title_style="bold", box=box.ASCII if ascii_only else box.SIMPLE,
              expand=True, pad_edge=False)
    for i, c in enumerate(cols):
        t.add_column(c, justify="left" if i == 0 else "right", no_wrap=i != 0, overflow="ellipsis")
    return t


def days_table(s: BillingSummary, ascii_only: bool) -> Table:
    t = _table(f"{s.month} by day ({s.currency})", ascii_only, "day", "billed", "metered", "total")
    total = 0.0
    for d in s.days:
        total += d.billed + d.metered
        t.add_row(d.day, money(d.billed, s.currency), money(d.metered, s.currency),
                  money(d.billed + d.metered, s.currency))
    t.add_row(Text("month so far", style="bold"), "", "", Text(money(total, s.currency), style="bold"))
    return t


def spenders_table(title: str, rows, currency: str, ascii_only: bool) -> Table:
    t = _table(title, ascii_only, "name", "amount")
    for sp in rows:
        t.add_row(plain(sp.name), money(sp.amount, currency))
    if not rows:
        t.add_row(Text("no imported billing rows", style="dim"), "")
    return t


def coverage_table(s: BillingSummary, ascii_only: bool) -> Table:
    t = _table("import coverage", ascii_only, "source", "format", "covered to", "rows")
    for fmt, src, end_ms, rows in s.coverage:
        end = to_datetime(end_ms).strftime("%Y-%m-%d %H:%M") if end_ms else "-"
        t.add_row(plain(src), plain(fmt), end, str(rows))
    if not s.coverage:
        t.add_row(Text("nothing imported for this month: `gpuspend import FILE`", style="dim"), "", "", "")
    return t


def alternatives_table(s: BillingSummary, ascii_only: bool) -> Table:
    t = _table("cheaper elsewhere (same GPU-hours this month, catalog prices)", ascii_only,
               "provider", "GPU", "$/GPU-h", "would cost", "saving")
    for a in s.alternatives:
        style = "green" if a.saving > 0 else "dim"
        t.add_row(plain(a.provider), plain(a.gpu_model), f"{a.per_gpu_hour:.2f}", money(a.cost_same_hours, "USD"),
                  Text(money(a.saving, "USD"), style=style))
    if not s.alternatives:
        t.add_row(Text("no catalog match for these GPUs", style="dim"), "", "", "", "")
    return t


class BillingScreen(Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="billing_back"),
        Binding("b", "app.pop_screen", "Back", show=False),
    ]

    def __init__(self, month: str, *, ascii_only: bool = False) -> None:
        super().__init__()
        self.month = month
        self.ascii_only = ascii_only

    def compose(self) -> ComposeResult:
        yield Static(f"billing {self.month}: loading...", id="billing-title")
        with VerticalScroll(id="billing-scroll"), Grid(id="billing-grid"):
            yield Static("", id="bill-days")
            yield Static("", id="bill-services")
            yield Static("", id="bill-skus")
            yield Static("", id="bill-coverage")
            yield Static("", id="bill-alternatives")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="billing", exit_on_error=False)
    def load(self) -> None:
        summary = self.app.load_billing(self.month)
        self.app.call_from_thread(self.show_summary, summary)

    def show_summary(self, s: BillingSummary) -> None:
        a = self.ascii_only
        total = sum(d.billed + d.metered for d in s.days)
        self.query_one("#billing-title", Static).update(
            Text(f"billing {s.month}: {money(total, s.currency)} so far ({s.currency}); esc to go back",
                 style="bold"))
        self.query_one("#bill-days", Static).update(days_table(s, a))
        self.query_one("#bill-services", Static).update(spenders_table("top services", s.services, s.currency, a))
        self.query_one("#bill-skus", Static).update(spenders_table("top GPU SKUs", s.gpu_skus, s.currency, a))
        self.query_one("#bill-coverage", Static).update(coverage_table(s, a))
        self.query_one("#bill-alternatives", Static).update(alternatives_table(s, a))
