"""The main screen: summary, GPU table, processes (with `/` filter), 24 h chart, alerts."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from gpuspend.snapshot import Snapshot
from gpuspend.tui.widgets.alerts import AlertLine, AlertsPanel
from gpuspend.tui.widgets.chart import SpendChart
from gpuspend.tui.widgets.fmt import clean
from gpuspend.tui.widgets.gpu_table import GpuTable
from gpuspend.tui.widgets.process_table import ProcessTable
from gpuspend.tui.widgets.summary import SummaryBar


class DashboardScreen(Screen):
    BINDINGS = [
        Binding("slash", "filter", "Filter", key_display="/", id="filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="clear_filter"),
    ]

    def __init__(self, *, ascii_only: bool = False) -> None:
        super().__init__()
        self.ascii_only = ascii_only

    def compose(self) -> ComposeResult:
        yield SummaryBar("loading...", id="summary")
        yield Static("", id="banner", classes="-hidden")
        gpus = GpuTable(id="gpus")
        gpus.ascii_only = self.ascii_only
        yield gpus
        with Horizontal(id="lower"):
            with Vertical(id="procs-box"):
                yield Input(placeholder="filter processes (user, command, pid, gpu3); enter keeps, esc clears",
                            id="filter", classes="-hidden")
                yield ProcessTable(id="procs")
            with Vertical(id="side"):
                chart = SpendChart(id="chart")
                chart.ascii_only = self.ascii_only
                yield chart
                yield AlertsPanel("", id="alerts")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#procs-box").border_title = "processes"
        self.query_one("#chart").border_title = "$/h, last 24 h"
        self.query_one("#alerts").border_title = "alerts"
        self.query_one("#gpus").focus()

    def on_screen_resume(self) -> None:
        resumed = getattr(self.app, "dashboard_resumed", None)
        if resumed is not None:
            resumed()

    # -- data ------------------------------------------------------------------------------------------
    def show_snapshot(self, snap: Snapshot, collector: str, alerts: list[AlertLine]) -> None:
        narrow = self.has_class("-narrow")
        with self.app.batch_update():
            self.query_one(SummaryBar).show(snap, collector, compact=narrow)
            gpus = self.query_one(GpuTable)
            gpus.bar_width = 4 if narrow else 8
            gpus.show(snap.gpus, snap.currency)
            self.query_one(ProcessTable).show(snap.processes, snap.currency, no_rate=snap.no_rate_at_all)
            by_state = dict(snap.cost_per_hour_by_state)
            self.query_one(SpendChart).show(snap.hourly, (by_state.get("busy", 0.0), by_state.get("held-idle", 0.0)
                                                          + by_state.get("free-idle", 0.0)), snap.currency)
            self.query_one(AlertsPanel).show(alerts, self.ascii_only)
            n = sum(1 for p in snap.processes)
            shown = self.query_one(ProcessTable).row_count
            title = f"processes ({shown} of {n})" if shown != n else f"processes ({n})"
            box = self.query_one("#procs-box")
            if str(box.border_title) != title:     # setting it repaints the box, even to the same text
                box.border_title = title

    def set_banner(self, text: str | None) -> None:
        banner = self.query_one("#banner", Static)
        banner.set_class(not text, "-hidden")
        banner.update(clean(text or ""))

    # -- filter ----------------------------------------------------------------------------------------
    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.remove_class("-hidden")
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        if box.has_class("-hidden") and not box.value:
            return
        box.value = ""
        box.add_class("-hidden")
        self.query_one(ProcessTable).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "filter":
            return
        table = self.query_one(ProcessTable)
        table.filter_text = event.value.strip()
        snap = getattr(self.app, "snapshot", None)
        if snap is not None:
            self.show_snapshot(snap, self.app.collector_text, self.app.alert_lines)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            if not event.value:
                event.input.add_class("-hidden")
            self.query_one(ProcessTable).focus()
