"""`b`: a month by day, its budget and projection, top services and GPU SKUs, import coverage, cheaper
elsewhere. `[` / `]` go to the previous / next month; the screen refreshes with the dashboard's interval (at
most every BILLING_REFRESH_S) and with `r`, and stops refreshing while paused."""

from __future__ import annotations

from rich import box
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from gpuspend import budget
from gpuspend.clock import to_datetime
from gpuspend.fmt import clean, rounded, share
from gpuspend.snapshot import BillingSummary, MonthView, observed_hours_label
from gpuspend.tui.widgets.fmt import money, plain
from gpuspend.tui.widgets.summary import budget_style

BILLING_REFRESH_S = 10.0      # the billing tables cost more than a dashboard tick and move slowly


def shift_month(month: str, delta: int) -> str:
    """`2026-11` + 1 -> `2026-12`."""
    y, m = (int(x) for x in month.split("-"))
    k = y * 12 + (m - 1) + delta
    return f"{k // 12:04d}-{k % 12 + 1:02d}"


def month_text(month: str, views: tuple[MonthView, ...], currency: str, thresholds: tuple[float, ...],
               now_month: str) -> Text:
    """Month to date, the projection with its interval and the budget: the same MonthView the header uses."""
    t = Text()
    v = next((m for m in views if m.currency == currency), views[0] if views else None)
    if v is None:
        t.append(f"{month}: no spend recorded", style="dim")
        return t
    past = month < now_month
    t.append("month total " if past else "month to date ", style="dim")
    t.append(money(v.mtd, v.currency), style="bold")
    t.append(f" = billed {money(v.billed, v.currency)} + metered {money(v.metered, v.currency)}", style="dim")
    t.append(" (metered: local GPU time after the exports' coverage)\n", style="dim")
    if not past:
        t.append("projected ", style="dim")
        if v.projection is None:
            t.append("n/a", style="dim")
        else:
            t.append(money(v.projection, v.currency, decimals=0),
                     style=f"bold {budget_style(v.budget_pct_forecast, thresholds)}".strip())
            if v.low is not None and v.high is not None and v.high > v.low:
                t.append(f" ({money(v.low, v.currency, decimals=0)}-{money(v.high, v.currency, decimals=0)})")
            if v.interval_note:
                t.append(f" {v.interval_note}", style="dim")
        t.append("   ")
    t.append("budget ", style="dim")
    if v.budget is None:
        t.append("none set", style="dim")
    else:
        t.append(money(v.budget, v.currency, decimals=0))
        if v.budget_pct_actual is not None:
            t.append(f", spent {share(v.budget_pct_actual)}", style=budget_style(v.budget_pct_actual, thresholds))
        if v.budget_pct_forecast is not None and not past:
            t.append(f", projected {share(v.budget_pct_forecast)}",
                     style=budget_style(v.budget_pct_forecast, thresholds))
    return t


def _table(title: str, ascii_only: bool, *cols: str) -> Table:
    t = Table(title=title, title_justify="left", title_style="bold", box=box.ASCII if ascii_only else box.SIMPLE,
              expand=True, pad_edge=False)
    for i, c in enumerate(cols):
        t.add_column(c, justify="left" if i == 0 else "right", no_wrap=i != 0,
                     overflow="crop" if ascii_only else "ellipsis")
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
        t.add_row(plain(sp.name, ascii_only=ascii_only), money(sp.amount, currency))
    if not rows:
        t.add_row(Text("no imported billing rows", style="dim"), "")
    return t


def coverage_table(s: BillingSummary, ascii_only: bool) -> Table:
    t = _table("import coverage", ascii_only, "source", "format", "covered to", "rows")
    for fmt, src, end_ms, rows in s.coverage:
        end = to_datetime(end_ms).strftime("%Y-%m-%d %H:%M") if end_ms else "-"
        t.add_row(plain(src, ascii_only=ascii_only), plain(fmt, ascii_only=ascii_only), end, str(rows))
    if not s.coverage:
        t.add_row(Text("nothing imported for this month: `gpuspend import FILE`", style="dim"), "", "", "")
    return t


def alternatives_table(s: BillingSummary, ascii_only: bool) -> Table:
    what = (observed_hours_label({a.gpu_model: a.gpu_hours for a in s.alternatives}) if s.alternatives
            else "this month's GPU-hours")
    t = _table(f"cheaper elsewhere ({what}, catalog prices)", ascii_only,
               "provider", "GPU", "$/GPU-h", "would cost", "saving")
    for a in s.alternatives:
        style = "green" if a.saving > 0 else "dim"
        t.add_row(plain(a.provider, ascii_only=ascii_only), plain(a.gpu_model, ascii_only=ascii_only),
                  str(rounded(a.per_gpu_hour)), money(a.cost_same_hours, "USD"),
                  Text(money(a.saving, "USD"), style=style))
    if not s.alternatives:
        t.add_row(Text("no catalog match for these GPUs", style="dim"), "", "", "", "")
    return t


class BillingScreen(Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="billing_back"),
        Binding("b", "app.pop_screen", "Back", show=False),
        Binding("left_square_bracket", "month(-1)", "Prev month", key_display="[", id="month_prev"),
        Binding("right_square_bracket", "month(1)", "Next month", key_display="]", id="month_next"),
        Binding("r", "reload", "Refresh now", show=False),
    ]

    def __init__(self, month: str, *, ascii_only: bool = False, now_month: str | None = None) -> None:
        super().__init__()
        self.month = month
        self.now_month = now_month or month     # no month after this one: nothing is recorded there yet
        self.ascii_only = ascii_only
        self.loads = 0                          # summaries shown (tests wait on it)
        self._loading = False

    def compose(self) -> ComposeResult:
        yield Static(f"billing {self.month}: reading the exports and the metered time...", id="billing-title")
        yield Static("", id="billing-month")
        with VerticalScroll(id="billing-scroll"):
            # two columns (days | the rest), each as tall as its tables: nothing is clipped by a grid row
            with Horizontal(id="billing-grid"):
                yield Static("", id="bill-days")
                with Vertical(id="bill-right"):
                    yield Static("", id="bill-services")
                    yield Static("", id="bill-skus")
                    yield Static("", id="bill-coverage")
            yield Static("", id="bill-alternatives")
        yield Footer()

    def on_mount(self) -> None:
        self.load()
        seconds = max(float(getattr(self.app, "interval", 1.0) or 1.0), BILLING_REFRESH_S)
        self.set_interval(seconds, self._tick)

    def _tick(self) -> None:
        if not getattr(self.app, "paused", False) and not self._loading and self.app.screen is self:
            self.load()

    def action_reload(self) -> None:
        self.load()

    def action_month(self, delta: int) -> None:
        target = shift_month(self.month, delta)
        if target > self.now_month:
            self.app.notify(f"{target} has not started: nothing is recorded there yet", timeout=3, markup=False)
            return
        self.month = target
        self.query_one("#billing-title", Static).update(f"billing {self.month}: loading...")
        self.load()

    @work(thread=True, exclusive=True, group="billing", exit_on_error=False)
    def load(self) -> None:
        self._loading = True
        month = self.month
        try:
            loaded = self.app.load_billing(month)
        except Exception as exc:  # noqa: BLE001 - a failed read must replace "loading...", never hang on it
            note = Text(f"billing {month}: could not be read ({clean(f'{type(exc).__name__}: {exc}', 120)}); "
                        "esc to go back", style="bold red")
            self.app.call_from_thread(lambda: self.query_one("#billing-title", Static).update(note))
            return
        finally:
            self._loading = False
        summary, views = loaded if isinstance(loaded, tuple) else (loaded, ())
        self.app.call_from_thread(self.show_summary, summary, views)

    def show_summary(self, s: BillingSummary, views: tuple[MonthView, ...] = ()) -> None:
        if s.month != self.month:
            return                              # an answer for the month the user already left
        a = self.ascii_only
        total = sum(d.billed + d.metered for d in s.days)
        nav = "[ ] month, r refresh, esc back"
        if s.days:
            title = Text(f"billing {s.month}: {money(total, s.currency)} so far ({s.currency}); {nav}", style="bold")
        else:   # the 1st of a month: say where the data is rather than show empty tables
            title = Text(f"billing {s.month}: nothing recorded in {s.month} yet: [ shows {shift_month(s.month, -1)}; "
                         "r refresh, esc back", style="bold")
        snap = getattr(self.app, "snapshot", None)
        if getattr(self.app, "demo", False) or (snap is not None and any(g.source == "demo" for g in snap.gpus)):
            title = Text("DEMO", style="bold reverse").append(" ").append_text(title)
        self.query_one("#billing-title", Static).update(title)
        cfg = getattr(self.app, "cfg", None)
        thresholds = budget.thresholds(cfg) if cfg is not None else ()
        self.query_one("#billing-month", Static).update(month_text(s.month, views, s.currency, thresholds,
                                                                   self.now_month))
        self.query_one("#bill-days", Static).update(days_table(s, a))
        self.query_one("#bill-services", Static).update(spenders_table("top services", s.services, s.currency, a))
        self.query_one("#bill-skus", Static).update(spenders_table("top GPU SKUs", s.gpu_skus, s.currency, a))
        self.query_one("#bill-coverage", Static).update(coverage_table(s, a))
        self.query_one("#bill-alternatives", Static).update(alternatives_table(s, a))
        self.loads += 1
