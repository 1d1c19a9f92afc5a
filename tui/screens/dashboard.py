"""The main screen: summary, GPU table, processes (sortable, filtered by text, user and GPU; Enter for details),
24 h chart, alerts (the most expensive first)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from gpuspend.fmt import mark
from gpuspend.snapshot import Snapshot
from gpuspend.tui.widgets.alerts import AlertLine, AlertsPanel
from gpuspend.tui.widgets.chart import SpendChart, legend
from gpuspend.tui.widgets.fmt import clean
from gpuspend.tui.widgets.gpu_table import GpuTable
from gpuspend.tui.widgets.process_table import GROUP_LABEL, SORT_ORDER, SORTS, ProcessTable
from gpuspend.tui.widgets.summary import SummaryBar

CHART_TITLE = "$/h by hour, last 24 h"          # `JPY/h ...` in another currency (fmt.mark)


class DashboardScreen(Screen):
    BINDINGS = [
        Binding("slash", "filter", "Filter", key_display="/", id="filter"),
        Binding("s", "sort", "Sort", id="sort"),
        Binding("S", "sort_reverse", "Reverse sort", show=False, key_display="S", id="sort_reverse"),
        Binding("u", "user", "User", show=False, id="user"),
        Binding("w", "group", "Group by workload", show=False, id="group"),
        Binding("a", "focus_alerts", "Alerts", show=False, id="alerts"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="clear_filter"),
    ]

    def __init__(self, *, ascii_only: bool = False, only_gpus: frozenset[int] | None = None,
                 user: str | None = None, loading: str = "reading the database...") -> None:
        super().__init__()
        self.loading_text = loading
        self.ascii_only = ascii_only
        self.only_gpus = only_gpus           # --only 0,3: the GPUs (and their processes) shown
        self.picked_gpu: int | None = None   # Enter on a GPU row: only its processes (Enter again: all)
        self.user = user                     # --user NAME, `u` cycles
        self._chart_title: Text | None = None
        self._banner = ""                    # what the banner shows ("": hidden)
        self.ready = False

    def compose(self) -> ComposeResult:
        yield SummaryBar(clean(self.loading_text), id="summary")
        yield Static("", id="banner", classes="-hidden")
        gpus = GpuTable(id="gpus")
        gpus.ascii_only = self.ascii_only
        yield gpus
        with Horizontal(id="lower"):
            with Vertical(id="procs-box"):
                yield Input(placeholder="filter processes (user, command, pid, gpu3); enter keeps, esc clears",
                            id="filter", classes="-hidden")
                procs = ProcessTable(id="procs")
                procs.ascii_only = self.ascii_only
                procs.only_gpus = self.only_gpus
                procs.user_filter = self.user
                yield procs
            with Vertical(id="side"):
                chart = SpendChart(id="chart")
                chart.ascii_only = self.ascii_only
                yield chart
                yield AlertsPanel("", id="alerts")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#procs-box").border_title = "processes"
        self.query_one("#chart").border_title = CHART_TITLE
        self.query_one("#alerts").border_title = "alerts"
        self.query_one("#gpus").focus()
        self.ready = True                    # its widgets are there: snapshots can be shown

    def on_resize(self) -> None:
        # 80 columns and 120 lay the header and alerts out differently: redraw once the new layout is known
        self.call_after_refresh(self._reshow)

    def on_screen_resume(self) -> None:
        resumed = getattr(self.app, "dashboard_resumed", None)
        if resumed is not None:
            resumed()

    # -- data ------------------------------------------------------------------------------------------
    def show_snapshot(self, snap: Snapshot, collector: str, alerts: list[AlertLine]) -> None:
        narrow = self.has_class("-narrow")
        short = self.has_class("-short")
        procs = self.query_one(ProcessTable)
        with self.app.batch_update():
            # simulated GPUs are never mistaken for real ones (the screenshots and `--demo` say DEMO)
            demo = bool(getattr(self.app, "demo", False)) or any(g.source == "demo" for g in snap.gpus)
            self.query_one(SummaryBar).show(snap, collector, compact=narrow, demo=demo,
                                            ascii_only=self.ascii_only, scope=self._scope(snap))
            gpus = self.query_one(GpuTable)
            gpus.bar_width = 3 if narrow else 8
            shown_gpus = tuple(g for g in snap.gpus if self.only_gpus is None or g.index in self.only_gpus)
            gpus.show(shown_gpus, snap.currency)
            procs.show(snap.processes, snap.currency_of, no_rate=snap.no_rate_at_all, currency=snap.currency,
                       idle=snap.idle_now())
            by_state = dict(snap.cost_per_hour_by_state)
            useful = by_state.get("busy", 0.0)
            idle = by_state.get("held-idle", 0.0) + by_state.get("free-idle", 0.0)
            chart = self.query_one(SpendChart)
            chart.with_legend = not narrow       # at 80 columns the legend goes in the box title
            chart.show(snap.hourly, (useful, idle), snap.currency)
            title = Text(CHART_TITLE.replace("$", mark(snap.currency), 1))
            if narrow and snap.hourly:
                title.append("  ").append_text(legend(useful, idle, snap.currency, ascii_only=self.ascii_only))
            box = self.query_one("#chart")
            if self._chart_title != title:
                self._chart_title = title
                box.border_title = title
            self.query_one(AlertsPanel).show(alerts, self.ascii_only, one_line=narrow and short)
            n = len(snap.processes)
            shown = procs.row_count
            label = (GROUP_LABEL if procs.grouped else SORTS[procs.sort_key][0]) + \
                (" ascending" if procs.sort_reverse else "")
            title = (f"processes ({shown} of {n})" if shown != n else f"processes ({n})") + f", by {label}"
            box = self.query_one("#procs-box")
            if str(box.border_title) != title:     # setting it repaints the box, even to the same text
                box.border_title = title

    def _scope(self, snap: Snapshot) -> str:
        """The filters in force, so a partial view is never mistaken for the box (totals stay the box's)."""
        parts = []
        if self.only_gpus is not None:
            parts.append("GPUs " + ",".join(str(i) for i in sorted(self.only_gpus)) + f" of {len(snap.gpus)}")
        if self.picked_gpu is not None:
            parts.append(f"processes on GPU {self.picked_gpu}")
        if self.user is not None:
            parts.append(f"user {clean(self.user)}")
        return ("showing " + ", ".join(parts) + ";") if parts else ""

    def _reshow(self) -> None:
        snap = getattr(self.app, "snapshot", None)
        if snap is not None:
            self.show_snapshot(snap, self.app.collector_text, self.app.alert_lines)

    def set_banner(self, text: str | None) -> None:
        shown = clean(text or "")
        if shown == self._banner:
            return                         # Static.update lays the screen out again, even for the same text
        self._banner = shown
        banner = self.query_one("#banner", Static)
        banner.set_class(not text, "-hidden")
        banner.update(shown)

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
        self._reshow()

    # -- sort, user, GPU subset, details ---------------------------------------------------------------
    def action_sort(self) -> None:
        table = self.query_one(ProcessTable)
        table.grouped = False
        table.sort_key = SORT_ORDER[(SORT_ORDER.index(table.sort_key) + 1) % len(SORT_ORDER)]
        table.sort_reverse = False
        self._reshow()
        self.app.notify(f"processes by {SORTS[table.sort_key][0]} (s: next, S: reverse)", timeout=2,
                        markup=False)

    def action_sort_reverse(self) -> None:
        table = self.query_one(ProcessTable)
        table.sort_reverse = not table.sort_reverse
        self._reshow()

    def action_group(self) -> None:
        """Toggle: rows grouped by workload (pod, job, container, notebook), the costliest workload first."""
        table = self.query_one(ProcessTable)
        table.grouped = not table.grouped
        table.sort_reverse = False
        self._reshow()
        self.app.notify(f"processes by {GROUP_LABEL if table.grouped else SORTS[table.sort_key][0]} (w: toggle)",
                        timeout=2, markup=False)

    def action_user(self) -> None:
        """Cycle: every user, then each user on the GPUs now, then every user again."""
        snap = getattr(self.app, "snapshot", None)
        users = sorted({p.user for p in snap.processes}) if snap is not None else []
        order: list[str | None] = [None, *users]
        at = order.index(self.user) if self.user in order else 0
        self.user = order[(at + 1) % len(order)]
        self.query_one(ProcessTable).user_filter = self.user
        self._reshow()
        self.app.notify(f"processes of {clean(self.user)}" if self.user else "processes of every user",
                        timeout=2, markup=False)

    def action_focus_alerts(self) -> None:
        self.query_one(AlertsPanel).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if isinstance(event.data_table, ProcessTable):
            p = event.data_table.selected()
            snap = getattr(self.app, "snapshot", None)
            if p is not None and snap is not None:
                from gpuspend.tui.screens.process import ProcessScreen

                self.app.push_screen(ProcessScreen(p, snap, ascii_only=self.ascii_only))
        elif isinstance(event.data_table, GpuTable):
            snap = getattr(self.app, "snapshot", None)
            if snap is None:
                return
            shown = [g for g in snap.gpus if self.only_gpus is None or g.index in self.only_gpus]
            row = event.cursor_row
            if not 0 <= row < len(shown) or shown[row].index is None:
                return
            index = shown[row].index
            self.picked_gpu = None if self.picked_gpu == index else index
            self.query_one(ProcessTable).only_gpus = self.only_gpus if self.picked_gpu is None \
                else frozenset({self.picked_gpu})
            self._reshow()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            if not event.value:
                event.input.add_class("-hidden")
            self.query_one(ProcessTable).focus()
